package bench

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/logtk/logtk/internal/ipc"
	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/shmring"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
	"github.com/logtk/logtk/record"

	"google.golang.org/protobuf/proto"
)

// fakeHost is the host's side of one worker's channel, started by this
// benchmark binary, so that the SDK's real crash-safe path can be
// measured with the peers in one run: a socket pair and a shared-memory
// ring announced in the environment, and a loop that answers the hello
// and reads the ring as logtk-host does (copy each record out, check it, stamp it; poll
// every 200 µs while records come, sleep on the socket when none do).
type fakeHost struct {
	*hostStats
	child *exec.Cmd // the host's process, if it has one
}

// stop ends the host's process, if it has one, and waits for it.
func (h *fakeHost) stop() {
	if h.child != nil {
		h.child.Process.Kill()
		h.child.Wait()
	}
}

// hostStats are the fake host's counters. They live in a shared mapping,
// so that a host in a process of its own can keep them too.
type hostStats struct {
	records   atomic.Int64
	doorbells atomic.Int64
	polls     atomic.Int64
	pollNs    atomic.Int64
}

// The fake host runs in a process of its own, as logtk-host does
// (LOGTK_BENCH_HOST=process, the default), or as a goroutine of the
// benchmark's process (LOGTK_BENCH_HOST=goroutine).
const (
	envHostMode  = "LOGTK_BENCH_HOST"
	envHostChild = "LOGTK_BENCH_FAKEHOST_CHILD"
)

// sharedStats maps the counters in a memfd (fd < 0: a new one) and
// returns them with the memfd.
func sharedStats(fd int) (*hostStats, *os.File, error) {
	if fd < 0 {
		var err error
		if fd, err = unix.MemfdCreate("bench-stats", 0); err != nil {
			return nil, nil, err
		}
		if err := unix.Ftruncate(fd, 4096); err != nil {
			return nil, nil, err
		}
	}
	mem, err := unix.Mmap(fd, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return (*hostStats)(unsafe.Pointer(&mem[0])), os.NewFile(uintptr(fd), "bench-stats"), nil
}

// startFakeHost must run before the SDK's first use in the process.
func startFakeHost(ringBytes int) (*fakeHost, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	hostEnd := os.NewFile(uintptr(fds[0]), "host-end")
	os.Setenv(ipc.EnvFD, strconv.Itoa(fds[1]))
	stats, statsFile, err := sharedStats(-1)
	if err != nil {
		return nil, err
	}
	h := &fakeHost{hostStats: stats}
	var ring *shmring.Shared
	var ringFile *os.File
	if ringBytes > 0 {
		r, rf, err := shmring.Create("bench-ring", ringBytes)
		if err != nil {
			return nil, err
		}
		fd, err := unix.Dup(int(rf.Fd()))
		if err != nil {
			return nil, err
		}
		ring, ringFile = r, rf
		os.Setenv(ipc.EnvRingFD, strconv.Itoa(fd))
	}
	if os.Getenv(envHostMode) == "goroutine" {
		c, err := net.FileConn(hostEnd)
		hostEnd.Close()
		if err != nil {
			return nil, err
		}
		go h.serve(c.(*net.UnixConn), ring)
		return h, nil
	}
	// A process of its own: this test binary again, told so by the
	// environment. It ends when this process closes its end of the
	// socket (or dies: Pdeathsig).
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, ipc.EnvFD+"=") && !strings.HasPrefix(kv, ipc.EnvRingFD+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	child := "socket"
	if ringFile != nil {
		child = "ring"
	}
	cmd.Env = append(cmd.Env, envHostChild+"="+child)
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{hostEnd, statsFile} // fds 3, 4
	if ringFile != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, ringFile) // fd 5
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	hostEnd.Close()
	if ring != nil {
		ring.Close() // the child maps its own
	}
	h.child = cmd
	return h, nil
}

// runFakeHostChild is the fake host's process (startFakeHost).
func runFakeHostChild() error {
	c, err := net.FileConn(os.NewFile(3, "host-end"))
	if err != nil {
		return err
	}
	stats, _, err := sharedStats(4)
	if err != nil {
		return err
	}
	var ring *shmring.Shared
	if os.Getenv(envHostChild) == "ring" { // told, not guessed: fd 5 may be the runtime's epoll
		if ring, err = shmring.Map(5); err != nil {
			return err
		}
	}
	(&fakeHost{hostStats: stats}).serve(c.(*net.UnixConn), ring)
	return nil
}

func (h *fakeHost) serve(conn *net.UnixConn, ring *shmring.Shared) {
	rd := ipc.NewReader(conn, ipc.DefaultMaxPayload)
	// The slab is reused: the records go nowhere, and the real host's
	// allocations are in another process, not in this benchmark's heap.
	slab := make([]byte, 0, 1<<20)
	// As logtk-host (host/instance.go, stampLocked): the origin fields are
	// encoded once per worker incarnation, the arrival time read once per
	// drain of the ring.
	origin := irecord.AppendStampOrigin(nil, "bench", 0, int64(os.Getpid()), 1)
	now := time.Now().UnixNano()
	take := func(body []byte) {
		if cap(slab)-len(slab) < len(body)+len(origin)+32 {
			slab = slab[:0]
		}
		start := len(slab)
		slab = append(slab, body...)
		if err := irecord.Validate(slab[start:]); err != nil {
			panic(fmt.Sprintf("fake host: bad record: %v", err))
		}
		slab = append(slab, origin...)
		slab = irecord.AppendStampArrival(slab, uint64(h.records.Add(1)), record.SourceSDK, now)
	}
	drain := func(limit uint64) int {
		if ring == nil {
			return 0
		}
		now = time.Now().UnixNano()
		n, err := ring.Read(limit, func(e []byte) bool {
			if ipc.Type(e[0]) == ipc.TypeRecord {
				take(e[1:])
			}
			return true
		})
		if err != nil {
			panic(err)
		}
		return n
	}
	for {
		for ring != nil && rd.Buffered() == 0 {
			h.polls.Add(1)
			if drain(shmring.NoLimit) > 0 {
				t0 := time.Now()
				ready := ipc.WaitReadable(conn, 200*time.Microsecond)
				h.pollNs.Add(int64(time.Since(t0)))
				if ready {
					break
				}
				continue
			}
			ring.PrepareSleep()
			if ring.Empty() {
				break
			}
			ring.CancelSleep()
		}
		t, p, err := rd.Next()
		if ring != nil {
			ring.CancelSleep()
		}
		if err != nil {
			return
		}
		switch t {
		case ipc.TypeHello:
			w, _ := proto.Marshal(&logtkv1.Welcome{ProtocolVersion: ipc.ProtocolVersion, MaxFrameBytes: ipc.DefaultMaxPayload, Worker: "bench"})
			conn.Write(ipc.AppendFrame(nil, ipc.TypeWelcome, w))
		case ipc.TypeDoorbell:
			h.doorbells.Add(1)
		case ipc.TypeRecord:
			take(p)
		case ipc.TypeRecordAt:
			drain(binary.LittleEndian.Uint64(p))
			take(p[8:])
		}
	}
}
