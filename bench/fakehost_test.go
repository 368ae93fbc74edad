package bench

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/logtk/logtk/internal/ipc"
	"github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/shmring"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"

	"google.golang.org/protobuf/proto"
)

// fakeHost is the host's side of one worker's channel, in this process, so
// that the SDK's real crash-safe path can be measured with the peers in
// one benchmark binary: a socket pair and a shared-memory ring announced
// in the environment, a goroutine that answers the hello and reads the
// ring as logtk-host does (copy each record out, check it, stamp it; poll
// every 200 µs while records come, sleep on the socket when none do).
type fakeHost struct {
	records   atomic.Int64
	doorbells atomic.Int64
	polls     atomic.Int64
	pollNs    atomic.Int64
}

// startFakeHost must run before the SDK's first use in the process.
func startFakeHost(ringBytes int) (*fakeHost, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fds[0]), "host-end")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	conn := c.(*net.UnixConn)
	os.Setenv(ipc.EnvFD, strconv.Itoa(fds[1]))
	h := &fakeHost{}
	var ring *shmring.Shared
	if ringBytes > 0 {
		r, rf, err := shmring.Create("bench-ring", ringBytes)
		if err != nil {
			return nil, err
		}
		fd, err := unix.Dup(int(rf.Fd()))
		rf.Close()
		if err != nil {
			return nil, err
		}
		ring = r
		os.Setenv(ipc.EnvRingFD, strconv.Itoa(fd))
	}
	go h.serve(conn, ring)
	return h, nil
}

func (h *fakeHost) serve(conn *net.UnixConn, ring *shmring.Shared) {
	rd := ipc.NewReader(conn, ipc.DefaultMaxPayload)
	// The slab is reused: the records go nowhere, and the real host's
	// allocations are in another process, not in this benchmark's heap.
	slab := make([]byte, 0, 1<<20)
	// As logtk-host (host/instance.go, stampLocked): the origin fields are
	// encoded once per worker incarnation, the arrival time read once per
	// drain of the ring.
	origin := record.AppendStampOrigin(nil, "bench", 0, int64(os.Getpid()), 1)
	now := time.Now().UnixNano()
	take := func(body []byte) {
		if cap(slab)-len(slab) < len(body)+len(origin)+32 {
			slab = slab[:0]
		}
		start := len(slab)
		slab = append(slab, body...)
		if err := record.Validate(slab[start:]); err != nil {
			panic(fmt.Sprintf("fake host: bad record: %v", err))
		}
		slab = append(slab, origin...)
		slab = record.AppendStampArrival(slab, uint64(h.records.Add(1)), record.SourceSDK, now)
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
