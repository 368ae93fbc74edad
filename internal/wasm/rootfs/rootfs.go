// Package rootfs is the file system a plugin sees in a directory it was
// granted: every operation stays beneath that directory, whatever the
// symbolic links in it say.
//
// wazero's own directory mount joins the guest's path to the host
// directory and hands it to os.OpenFile, which follows symbolic links
// wherever they point: a link in the directory, old or made by the plugin
// itself, reached the whole host. Here every path is resolved by an
// os.Root (openat component by component, no component allowed to leave
// the directory, through a link or "..") and every call that acts on a
// last name that must not be followed (unlink, rmdir, rename, link,
// symlink, readlink, lstat) acts on it relative to a parent directory
// opened that way.
//
// # What a grant allows
//
//   - Reading, writing, creating, renaming and removing files and
//     directories beneath the granted directory; nothing else on the host.
//   - Following a symbolic link only when it resolves beneath the
//     directory; any other, absolute or relative, fails with EPERM. Links
//     are followed at most 8 deep (ELOOP beyond).
//   - Making a symbolic link only with a relative target without ".."
//     (it can then only point further down from where it is); any other
//     target fails with EPERM. A hard link is made to the link itself,
//     never to what it names.
//   - New files are created with mode 0644, new directories 0755, less the
//     host's umask (WASI has no modes; these let a log shipper running as
//     another user read what a transport wrote). Chmod keeps the
//     permission bits only (no set-id or sticky bits).
//   - Files are opened without blocking: a FIFO in the directory cannot
//     hold the host (its reads and writes may then say EAGAIN).
//   - At most Options.MaxOpen files open at once per instance (EAGAIN
//     beyond: WASI as wazero speaks it has no EMFILE), so that a plugin cannot take the host's descriptors.
//
// Every path is resolved by os.Root; the file it opens is then reopened
// through /proc/self/fd (the open file itself, not its path) as a file of
// wazero's own, which does the I/O: an open file holds two descriptors.
//
// Not covered, as with os.Root: a mount point or bind mount inside the
// directory is crossed like any directory, and device files already in it
// can be opened. Grant directories that hold only what the plugin may
// touch.
//
// An FS serves one instance: wazero calls it from the goroutine that calls
// the instance. Close releases the directory.
package rootfs

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"
)

// Modes of what a plugin creates.
const (
	FileMode = 0o644
	DirMode  = 0o755
)

// DefaultMaxOpen is Options.MaxOpen's default.
const DefaultMaxOpen = 128

// Options configure New. The zero value means all defaults.
type Options struct {
	// MaxOpen bounds the files the instance may have open at once,
	// directories included. Default DefaultMaxOpen.
	MaxOpen int
}

// FS is a wazero file system confined to one host directory.
type FS struct {
	experimentalsys.UnimplementedFS
	root    *os.Root
	open    atomic.Int64
	maxOpen int64
}

var _ experimentalsys.FS = (*FS)(nil)

// New opens dir. The directory must exist.
func New(dir string, opts Options) (*FS, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	if opts.MaxOpen <= 0 {
		opts.MaxOpen = DefaultMaxOpen
	}
	return &FS{root: r, maxOpen: int64(opts.MaxOpen)}, nil
}

// Close releases the directory. Files still open stay usable until closed.
func (f *FS) Close() error { return f.root.Close() }

// String names the directory (wazero prints it in errors).
func (f *FS) String() string { return f.root.Name() }

// name turns a guest path (relative to the mount, as wazero passes it)
// into an os.Root name.
func name(p string) string {
	switch p {
	case "", "/":
		return "."
	}
	return strings.TrimPrefix(p, "/")
}

// errno maps an error of os.Root or of a system call to a WASI errno. A
// path that would leave the directory is EPERM, as a refused link is.
func errno(err error) experimentalsys.Errno {
	if err == nil {
		return 0
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		return experimentalsys.UnwrapOSError(en)
	}
	if e := experimentalsys.UnwrapOSError(err); e != experimentalsys.EIO {
		return e
	}
	// os.Root's "path escapes from parent" is not an errno.
	return experimentalsys.EPERM
}

// parent opens the directory that holds p's last name, resolved beneath
// the root, and returns that name. The name is a single component, never
// "." or "..".
func (f *FS) parent(p string) (*os.File, string, experimentalsys.Errno) {
	n := path.Clean(name(p))
	dir, base := path.Split(n)
	if base == "." || base == ".." || base == "" {
		return nil, "", experimentalsys.EINVAL
	}
	if dir == "" {
		dir = "."
	}
	d, err := f.root.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, "", errno(err)
	}
	return d, base, 0
}

// OpenFile implements experimentalsys.FS.
func (f *FS) OpenFile(p string, flag experimentalsys.Oflag, _ fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	if f.open.Add(1) > f.maxOpen {
		f.open.Add(-1)
		return nil, experimentalsys.EAGAIN // wazero has no EMFILE
	}
	file, en := f.openFile(p, flag)
	if en != 0 {
		f.open.Add(-1)
		return nil, en
	}
	return file, 0
}

func (f *FS) openFile(p string, flag experimentalsys.Oflag) (experimentalsys.File, experimentalsys.Errno) {
	n := name(p)
	if flag&experimentalsys.O_NOFOLLOW != 0 {
		// os.Root follows a link it can keep beneath the root; a caller
		// that asked not to follow one gets ELOOP, as open(2) says. (Were
		// the name swapped for a link after this check, the open would
		// still stay beneath the root.)
		if fi, err := f.root.Lstat(n); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, experimentalsys.ELOOP
		}
	}
	// Never a blocking open: a FIFO in the directory would hold the
	// host function, which the call's time budget cannot interrupt.
	osf, err := f.root.OpenFile(n, osFlag(flag)|syscall.O_NONBLOCK, FileMode)
	if err != nil {
		return nil, errno(err)
	}
	// Creating and truncating are done; the reopen takes the rest (not
	// O_NOFOLLOW: the magic link is a link).
	rest := flag&^(experimentalsys.O_CREAT|experimentalsys.O_EXCL|experimentalsys.O_TRUNC|experimentalsys.O_NOFOLLOW) | experimentalsys.O_NONBLOCK
	wf, en := procFD.OpenFile(strconv.Itoa(int(osf.Fd())), rest, 0)
	if en != 0 {
		osf.Close()
		return nil, en
	}
	if flag&experimentalsys.O_NONBLOCK == 0 {
		// Blocking, as asked, where that cannot hold the host: a
		// regular file or a directory. A FIFO or device stays
		// non-blocking.
		if st, en := wf.Stat(); en == 0 && (st.Mode.IsRegular() || st.Mode.IsDir()) {
			if pf, ok := wf.(experimentalsys.PollableFile); ok {
				pf.SetNonblock(false)
			}
		}
	}
	return &file{File: wf, fs: f, held: osf}, 0
}

// osFlag converts WASI's open flags.
func osFlag(flag experimentalsys.Oflag) int {
	var o int
	switch {
	case flag&experimentalsys.O_RDWR != 0:
		o = os.O_RDWR
	case flag&experimentalsys.O_WRONLY != 0:
		o = os.O_WRONLY
	default:
		o = os.O_RDONLY
	}
	for _, m := range []struct {
		w experimentalsys.Oflag
		o int
	}{
		{experimentalsys.O_APPEND, os.O_APPEND},
		{experimentalsys.O_CREAT, os.O_CREATE},
		{experimentalsys.O_EXCL, os.O_EXCL},
		{experimentalsys.O_TRUNC, os.O_TRUNC},
		{experimentalsys.O_SYNC, os.O_SYNC},
		{experimentalsys.O_DSYNC, syscall.O_DSYNC},
		{experimentalsys.O_RSYNC, syscall.O_RSYNC},
		{experimentalsys.O_DIRECTORY, syscall.O_DIRECTORY},
		{experimentalsys.O_NONBLOCK, syscall.O_NONBLOCK},
	} {
		if flag&m.w != 0 {
			o |= m.o
		}
	}
	return o
}

// Lstat implements experimentalsys.FS.
func (f *FS) Lstat(p string) (sys.Stat_t, experimentalsys.Errno) {
	fi, err := f.root.Lstat(name(p))
	if err != nil {
		return sys.Stat_t{}, errno(err)
	}
	return sys.NewStat_t(fi), 0
}

// Stat implements experimentalsys.FS.
func (f *FS) Stat(p string) (sys.Stat_t, experimentalsys.Errno) {
	fi, err := f.root.Stat(name(p))
	if err != nil {
		return sys.Stat_t{}, errno(err)
	}
	return sys.NewStat_t(fi), 0
}

// Mkdir implements experimentalsys.FS.
func (f *FS) Mkdir(p string, _ fs.FileMode) experimentalsys.Errno {
	en := errno(f.root.Mkdir(name(p), DirMode))
	if en == experimentalsys.ENOTDIR {
		en = experimentalsys.ENOENT
	}
	return en
}

// Chmod implements experimentalsys.FS.
func (f *FS) Chmod(p string, perm fs.FileMode) experimentalsys.Errno {
	return errno(f.root.Chmod(name(p), perm&fs.ModePerm))
}

// Rename implements experimentalsys.FS.
func (f *FS) Rename(from, to string) experimentalsys.Errno {
	if from == to {
		_, err := f.root.Lstat(name(from)) // rename(2) of a missing name is ENOENT
		return errno(err)
	}
	return errno(f.root.Rename(name(from), name(to)))
}

// Rmdir implements experimentalsys.FS.
func (f *FS) Rmdir(p string) experimentalsys.Errno {
	d, base, en := f.parent(p)
	if en != 0 {
		return en
	}
	defer d.Close()
	return errno(unix.Unlinkat(int(d.Fd()), base, unix.AT_REMOVEDIR))
}

// Unlink implements experimentalsys.FS.
func (f *FS) Unlink(p string) experimentalsys.Errno {
	if strings.HasSuffix(p, "/") {
		// "f/" names a directory: unlink(2) refuses it, and never
		// removes a file f.
		if fi, err := f.root.Lstat(name(p)); err != nil {
			return errno(err)
		} else if !fi.IsDir() {
			return experimentalsys.ENOTDIR
		}
		return experimentalsys.EISDIR
	}
	d, base, en := f.parent(p)
	if en != 0 {
		return en
	}
	defer d.Close()
	en = errno(unix.Unlinkat(int(d.Fd()), base, 0))
	if en == experimentalsys.EPERM { // Linux says EISDIR as EPERM's cousin; WASI wants EISDIR
		if fi, err := f.root.Lstat(name(p)); err == nil && fi.IsDir() {
			en = experimentalsys.EISDIR
		}
	}
	return en
}

// Link implements experimentalsys.FS.
func (f *FS) Link(oldPath, newPath string) experimentalsys.Errno {
	return errno(f.root.Link(name(oldPath), name(newPath)))
}

// Symlink implements experimentalsys.FS. The target must be relative and
// must not contain "..": the link can only point further down.
func (f *FS) Symlink(target, link string) experimentalsys.Errno {
	if !downward(target) {
		return experimentalsys.EPERM
	}
	return errno(f.root.Symlink(target, name(link)))
}

// downward reports whether a link target stays beneath the link's own
// directory whatever that directory is.
func downward(target string) bool {
	if target == "" || path.IsAbs(target) || strings.ContainsRune(target, 0) {
		return false
	}
	for _, c := range strings.Split(target, "/") {
		if c == ".." {
			return false
		}
	}
	return true
}

// Readlink implements experimentalsys.FS.
func (f *FS) Readlink(p string) (string, experimentalsys.Errno) {
	s, err := f.root.Readlink(name(p))
	return s, errno(err)
}

// Utimens implements experimentalsys.FS. It follows a last link, beneath
// the root only.
func (f *FS) Utimens(p string, atim, mtim int64) experimentalsys.Errno {
	if f.open.Add(1) > f.maxOpen {
		f.open.Add(-1)
		return experimentalsys.EAGAIN
	}
	file, en := f.openFile(p, experimentalsys.O_RDONLY)
	if en == experimentalsys.EACCES || en == experimentalsys.EPERM {
		file, en = f.openFile(p, experimentalsys.O_WRONLY)
	}
	if en != 0 {
		f.open.Add(-1)
		return en
	}
	defer file.Close()
	return file.Utimens(atim, mtim)
}

// procFD reopens, through /proc/self/fd, a file rootfs has opened beneath
// the root, as a file of wazero's own: the magic link reopens the open
// file itself, never its path, and wazero's file does all the I/O.
var procFD = sysfs.DirFS("/proc/self/fd")

// file is wazero's file for an open file or directory of an FS, with the
// descriptor rootfs opened it by, held so that when wazero reopens it (a
// directory to read it again, a file to change O_APPEND) it finds the same
// file.
type file struct {
	experimentalsys.File
	fs     *FS
	held   *os.File
	closed bool
}

// Close implements experimentalsys.File.
func (f *file) Close() experimentalsys.Errno {
	if f.closed {
		return 0
	}
	f.closed = true
	f.fs.open.Add(-1)
	en := f.File.Close()
	f.held.Close()
	return en
}
