package shmring

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// Shared is a ring in a memfd mapped into this process.
type Shared struct {
	*Ring
	mem []byte
}

// Create makes a sealed memfd holding an empty ring with capacity data
// bytes, maps it, and returns the mapping and the memfd (to pass to the
// producer; close it once passed). The memfd's size is sealed: a producer
// cannot shrink it under the consumer's mapping, which would make the
// consumer's reads fault.
func Create(name string, capacity int) (*Shared, *os.File, error) {
	if capacity < 4096 || capacity&(capacity-1) != 0 {
		return nil, nil, fmt.Errorf("shmring: capacity %d is not a power of two >= 4096", capacity)
	}
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, nil, fmt.Errorf("shmring: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	fail := func(what string, err error) (*Shared, *os.File, error) {
		f.Close()
		return nil, nil, fmt.Errorf("shmring: %s: %w", what, err)
	}
	if err := unix.Ftruncate(fd, int64(Size(capacity))); err != nil {
		return fail("ftruncate", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		return fail("sealing the memfd", err)
	}
	mem, err := unix.Mmap(fd, 0, Size(capacity), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail("mmap", err)
	}
	r, err := Init(mem)
	if err != nil {
		unix.Munmap(mem)
		f.Close()
		return nil, nil, err
	}
	return &Shared{Ring: r, mem: mem}, f, nil
}

// CreateFile is Create with the ring in a new file at path (created
// exclusively, mode 0600) instead of a memfd, so that it outlives the
// processes that map it: in a memory file system (tmpfs), a record
// published in it survives the consumer's death as well as the
// producer's. The file cannot be sealed: a producer may truncate it, and
// the consumer must then make every access to it under Guard.
func CreateFile(path string, capacity int) (*Shared, *os.File, error) {
	if capacity < 4096 || capacity&(capacity-1) != 0 {
		return nil, nil, fmt.Errorf("shmring: capacity %d is not a power of two >= 4096", capacity)
	}
	// Made whole under a temporary name, then renamed: a file with the
	// ring's name is always a formatted ring, whenever its maker died.
	tmp := path + TempSuffix
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("shmring: %w", err)
	}
	fail := func(what string, err error) (*Shared, *os.File, error) {
		f.Close()
		os.Remove(tmp)
		return nil, nil, fmt.Errorf("shmring: %s %s: %w", what, path, err)
	}
	// The space is taken now, not at the first write to each page: a
	// page the file system cannot give would kill the worker writing it
	// with SIGBUS. A full file system fails here instead, and the host
	// gives the worker the socket. (A file system without fallocate
	// gets its pages as they are written, as before.)
	if err := unix.Fallocate(int(f.Fd()), 0, 0, int64(Size(capacity))); err != nil && err != unix.EOPNOTSUPP {
		return fail("reserving the space of", err)
	}
	if err := f.Truncate(int64(Size(capacity))); err != nil {
		return fail("sizing", err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, Size(capacity), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail("mapping", err)
	}
	r, err := Init(mem)
	if err != nil {
		unix.Munmap(mem)
		return fail("formatting", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		unix.Munmap(mem)
		return fail("naming", err)
	}
	return &Shared{Ring: r, mem: mem}, f, nil
}

// TempSuffix ends the name of a ring file CreateFile has not finished:
// one left behind (its maker died) holds nothing and may be removed.
const TempSuffix = ".new"

// OpenFile maps the ring in the file at path, as a consumer taking over
// from one that died: reads start at the shared read position and the
// ring is in ManualRelease mode.
func OpenFile(path string) (*Shared, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("shmring: %w", err)
	}
	defer f.Close()
	s, err := Map(int(f.Fd()))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s.ManualRelease()
	return s, nil
}

// ErrFault: the ring's memory could not be read (its file was truncated
// under the mapping).
var ErrFault = errors.New("shmring: memory fault reading the ring (its file was truncated?)")

// Guard runs f, turning a memory fault in it (a SIGBUS from a file-backed
// ring whose producer truncated the file) into ErrFault instead of the
// death of the process. f must leave nothing half done that matters if
// it stops at any load or store of the ring.
func Guard(f func()) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if e := recover(); e != nil {
			if fe, ok := e.(interface{ Addr() uintptr }); ok {
				err = fmt.Errorf("%w at %#x", ErrFault, fe.Addr())
				return
			}
			panic(e)
		}
	}()
	f()
	return nil
}

// Map maps the ring in the memfd fd (its whole size) and checks its header.
// The descriptor can be closed afterwards.
func Map(fd int) (*Shared, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("shmring: fstat: %w", err)
	}
	if st.Size < int64(Size(4096)) || st.Size > 1<<34 {
		return nil, fmt.Errorf("shmring: descriptor %d has %d bytes, not a ring", fd, st.Size)
	}
	mem, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shmring: mmap: %w", err)
	}
	r, err := Attach(mem)
	if err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	return &Shared{Ring: r, mem: mem}, nil
}

// Close unmaps the ring. The Ring must not be used afterwards.
func (s *Shared) Close() error {
	if s.mem == nil {
		return nil
	}
	err := unix.Munmap(s.mem)
	s.mem = nil
	return err
}
