package sdk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/logtk/logtk/internal/ipc"
	"github.com/logtk/logtk/internal/shmring"
)

// ringWait bounds how long a log call waits for room in a full ring before
// it sends its record through the socket instead. The host drains a busy
// ring every few hundred microseconds, so a ring stays full only while the
// host itself is held up (its outputs are slow): then the socket path's
// back-pressure applies as it would without a ring. A ring the host holds
// across its own death (shmring.FlagHolds: the durable ingest) is waited
// for without bound: a record in it survives the host, one in the socket's
// buffer does not, and the wait is the same back-pressure.
const ringWait = time.Second

// ringWriter is the producer side of the shared-memory ring (docs/ipc.md,
// "The shared-memory ring"). Records go into the ring; a record goes
// through the socket as RECORD_AT only when it is too large for the ring
// or the ring stayed full for ringWait. Order is kept both ways: a
// RECORD_AT carries the ring position it follows, and the first ring entry
// after RECORD_AT frames is a BARRIER naming how many were sent.
type ringWriter struct {
	mu       sync.Mutex
	r        *shmring.Shared
	sockRecs uint64 // RECORD_AT frames sent
	ringRecs uint64 // records written to the ring
	behind   bool   // RECORD_AT frames were sent since the last ring entry
	stalled  bool   // the last wait for room ran out; don't wait again until the ring takes a record
	scratch  []byte // RECORD_AT frames are built here
	room     int    // what a log call reserves to encode in place
	holds    bool   // the host keeps the ring across its death: wait for room, never the socket
}

var doorbellFrame = ipc.AppendFrame(nil, ipc.TypeDoorbell, nil)

// attachRing maps the ring the host announced, if any. The descriptor is
// closed either way, so it does not leak into the worker's children.
func (c *client) attachRing(usable bool) {
	s, ok := os.LookupEnv(ipc.EnvRingFD)
	if !ok {
		return
	}
	os.Unsetenv(ipc.EnvRingFD)
	fd, err := strconv.Atoi(s)
	if err != nil || fd < 3 {
		if usable {
			fmt.Fprintf(c.fallback, "logtk: %s=%q is not a file descriptor; records go through the socket\n", ipc.EnvRingFD, s)
		}
		return
	}
	defer syscall.Close(fd)
	if !usable {
		return
	}
	r, err := shmring.Map(fd)
	if err != nil {
		fmt.Fprintf(c.fallback, "logtk: the host's shared-memory ring is unusable (%v); records go through the socket\n", err)
		return
	}
	c.useRing(r)
}

// useRing makes r the ring the client's records go through.
func (c *client) useRing(r *shmring.Shared) {
	c.ring = &ringWriter{r: r, room: min(inPlaceRoom, r.Capacity()/8), holds: r.Flags()&shmring.FlagHolds != 0}
	// A RECORD_AT frame carries 8 bytes of position before the record.
	c.maxRecord = c.maxPayload - 8
}

// inPlaceRoom is the room a log call asks of the ring to encode its record
// in place (an eighth of the ring if that is less): more than all but rare
// records need. A record that outgrows the room it was given is encoded in
// a buffer of its own (one allocation) and copied in, or sent through the
// socket if it is too large for the ring.
const inPlaceRoom = 4 << 10

// logInPlace encodes a record straight into the ring, as the frame it
// would be on the socket (a ring entry has the same layout), and publishes
// it: no pooled buffer and no copy. It does so only when no other
// goroutine is writing to the ring (it holds the ring's lock while it
// encodes, and concurrent log calls should not wait for that), the ring
// has room and no RECORD_AT frame awaits its barrier; otherwise, and for
// a record over the size limit, it reports false and logAt takes the path
// through a pooled buffer.
func (l *Logger) logInPlace(t int64, level Level, msg string, pc uintptr, attrs []Attr, r *slog.Record) bool {
	done, outgrown := l.encodeInPlace(t, level, msg, pc, attrs, r)
	if outgrown != nil {
		// It outgrew the room it was given: the frame is on the heap.
		return l.c.ringRecord(outgrown)
	}
	return done
}

// encodeInPlace is logInPlace's work under the ring's lock. The lock is
// released by a deferred call, so that it is released also when encoding
// panics (an attribute value's String or Error method may): a lock left
// held would hang every later log call of the process.
func (l *Logger) encodeInPlace(t int64, level Level, msg string, pc uintptr, attrs []Attr, r *slog.Record) (done bool, outgrown []byte) {
	c := l.c
	rw := c.ring
	if !rw.mu.TryLock() {
		return false, nil
	}
	defer rw.mu.Unlock()
	if rw.behind || !c.connected() {
		return false, nil
	}
	b := rw.r.Reserve(rw.room)
	if b == nil {
		return false, nil
	}
	b = l.encode(b, t, level, msg, pc, attrs, r)
	if len(b)-ipc.HeaderSize > c.maxRecord {
		return false, nil
	}
	ipc.PatchHeader(b, ipc.TypeRecord)
	wake, ok := rw.r.Commit(b)
	if !ok {
		return false, b
	}
	rw.took(c, wake)
	return true, nil
}

// ringRecord writes an encoded record frame through the ring (or, when it
// must, the socket). It returns false when the host is gone.
func (c *client) ringRecord(frame []byte) bool {
	rw := c.ring
	rw.mu.Lock()
	defer rw.mu.Unlock()
	entry := frame[ipc.HeaderSize-1:] // the type byte and the record
	var deadline time.Time
	for spins := 0; ; spins++ {
		err := rw.put(c, entry)
		if err == nil {
			return true
		}
		if errors.Is(err, shmring.ErrTooLarge) || errors.Is(err, shmring.ErrAbandoned) || rw.stalled {
			break // the socket at once: a host that abandoned the ring reads it no more
		}
		// Full: the host is draining; wait for room, but not for ever.
		if spins < 100 {
			runtime.Gosched()
			continue
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(ringWait)
		} else if now.After(deadline) && !rw.holds {
			rw.stalled = true
			break
		}
		time.Sleep(50 * time.Microsecond)
	}
	b := ipc.AppendHeader(rw.scratch[:0], ipc.TypeRecordAt, 8+len(frame)-ipc.HeaderSize)
	b = binary.LittleEndian.AppendUint64(b, rw.r.Published())
	b = append(b, frame[ipc.HeaderSize:]...)
	if cap(b) <= maxPooled {
		rw.scratch = b
	}
	if c.writeFrame(b) != nil {
		return false
	}
	rw.sockRecs++
	rw.behind = true
	return true
}

// put writes entry into the ring, preceded by a barrier when RECORD_AT
// frames went out since the last entry, and rings the doorbell when the
// host sleeps.
func (rw *ringWriter) put(c *client, entry []byte) error {
	if rw.behind {
		var bar [9]byte
		bar[0] = byte(ipc.TypeBarrier)
		binary.LittleEndian.PutUint64(bar[1:], rw.sockRecs)
		wake, err := rw.r.Write(bar[:])
		if err != nil {
			return err
		}
		rw.behind = false
		if wake {
			c.writeFrame(doorbellFrame)
		}
	}
	wake, err := rw.r.Write(entry)
	if err != nil {
		return err
	}
	rw.took(c, wake)
	return nil
}

// took accounts for a record the ring took, and rings the doorbell when
// the host sleeps.
func (rw *ringWriter) took(c *client, wake bool) {
	rw.stalled = false
	rw.ringRecs++
	if wake {
		c.writeFrame(doorbellFrame)
	}
}
