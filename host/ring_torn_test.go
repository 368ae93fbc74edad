package host

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/logtk/logtk/internal/ipc"
	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/shmring"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
	"github.com/logtk/logtk/record"
)

// ringBytewise is a worker in another language that gets one thing of
// docs/ipc.md wrong: it stores the ring's write position a byte at a
// time, not as one 8-byte store, pausing between the bytes, so the host
// now and then sees a position half-way through its store. It publishes
// LOGTK_TEST_N records, each with attribute i.
func ringBytewise() int {
	sock := os.NewFile(3, "ipc")
	hello, _ := proto.Marshal(&logtkv1.Hello{ProtocolVersion: ipc.ProtocolVersion, Sdk: "bytewise/1"})
	if _, err := sock.Write(ipc.AppendFrame(nil, ipc.TypeHello, hello)); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		return 1
	}
	fd := envInt(ipc.EnvRingFD, -1)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		fmt.Fprintln(os.Stderr, "fstat:", err)
		return 1
	}
	mem, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mmap:", err)
		return 1
	}
	data := mem[shmring.HeaderLen:]
	size := uint64(len(data))
	read := (*uint64)(unsafe.Pointer(&mem[128]))
	sleep := (*uint32)(unsafe.Pointer(&mem[192]))
	state := (*uint32)(unsafe.Pointer(&mem[256]))
	doorbell := ipc.AppendFrame(nil, ipc.TypeDoorbell, nil)
	var w uint64
	for i := range envInt("LOGTK_TEST_N", 1000) {
		entry := irecord.AppendHead([]byte{byte(ipc.TypeRecord)}, time.Now(), record.LevelInfo, "bytewise", "")
		entry = irecord.AppendAttr(entry, slog.Int("i", i))
		need := uint64(len(entry)+4+7) &^ 7
		pos := w % size
		total := need
		if size-pos < need {
			total += size - pos
		}
		for w+total-atomic.LoadUint64(read) > size {
			if atomic.LoadUint32(state) != 0 {
				fmt.Fprintln(os.Stderr, "the host abandoned the ring")
				return 2
			}
			time.Sleep(50 * time.Microsecond) // the host drains the ring
		}
		if size-pos < need {
			binary.LittleEndian.PutUint32(data[pos:], 0xFFFFFFFF)
			w += size - pos
			pos = 0
		}
		binary.LittleEndian.PutUint32(data[pos:], uint32(len(entry)))
		copy(data[pos+4:], entry)
		w += need
		// The mistake: the new position, a byte at a time.
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], w)
		for k := range 8 {
			mem[64+k] = b[k]
			if k == 0 && i%3 == 0 {
				time.Sleep(20 * time.Microsecond) // a slow store, as an interpreter's
			}
		}
		if atomic.LoadUint32(sleep) == 1 && atomic.CompareAndSwapUint32(sleep, 1, 0) {
			sock.Write(doorbell)
		}
	}
	return 0
}

// TestRingTornPosition: a worker that stores the ring's write position
// in pieces loses nothing: the host waits for a position that is not a
// valid one to settle instead of abandoning the ring (issue 14: a Python
// worker that wrote it bytewise lost 21,844 published records).
func TestRingTornPosition(t *testing.T) {
	const n = 5000
	w := testWorker("bytewise", "ring-bytewise", map[string]string{"LOGTK_TEST_N": fmt.Sprint(n)})
	w.RingBytes = 8192 // wraps often
	h, c := startHost(t, Options{}, w)
	waitDone(t, h, time.Minute)
	all := checkSequence(t, c.snapshot(), "bytewise", 0)
	for _, r := range all {
		if r.Source == logtkv1.Source_SOURCE_HOST && strings.Contains(r.Message, "abandoned") {
			t.Fatalf("the host abandoned the ring: %s", r.Message)
		}
	}
	checkOrder(t, all, n)
}
