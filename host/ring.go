package host

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/logtk/logtk/internal/ipc"
	"github.com/logtk/logtk/internal/shmring"
	"github.com/logtk/logtk/record"
)

// The methods of run that read a worker's shared-memory ring (docs/ipc.md):
// between socket frames, in the order barriers give.

// ringPoll is how long the host waits between two reads of a worker's
// ring while the worker keeps writing. The ring's records are safe in
// shared memory meanwhile; waiting lets them gather, so one wake-up reads
// many, and the worker makes no system call at all while the host polls:
// it rings the doorbell only after the host found the ring empty and said
// it sleeps. A socket frame ends the wait at once.
const ringPoll = 200 * time.Microsecond

// maxRingErrors bad entries in one read of the ring make the host abandon
// it, as consecutive bad frames close the socket.
const maxRingErrors = maxBadFrames

// maxUnsettled reads in a row that find the ring's published position not
// a valid one (a worker storing it in pieces is seen half-way; at one
// read per ringPoll this is a second) make the host abandon the ring; at
// the worker's end, a few.
const (
	maxUnsettled      = 5000
	maxUnsettledFinal = 100
)

// badEntry is a ring entry that was not a valid record, kept for the error
// record written once the ring's read is over.
type badEntry struct {
	reason  string
	payload []byte
}

// pollRing reads the ring until the socket is worth reading: a frame is
// buffered or data readable, the ring waits on a barrier for RECORD_AT frames,
// or the ring is empty and the host has said it sleeps (the worker then
// rings the doorbell with its next record).
func (r *run) pollRing(rd *ipc.Reader) {
	for r.ring != nil {
		n := r.drainRing(shmring.NoLimit, false)
		if r.ring == nil || r.ringBlocked || rd.FrameBuffered() {
			return
		}
		if n > 0 || r.ringUnsettled > 0 {
			if ipc.WaitReadable(r.conn, ringPoll) {
				return
			}
			continue
		}
		empty := false
		if !r.ringOp(func() {
			r.ring.PrepareSleep()
			if empty = r.ring.Empty(); !empty {
				r.ring.CancelSleep()
			}
		}) || empty {
			return
		}
	}
}

// ringOp runs f, which touches the ring's memory. A ring in a file its
// worker truncated faults: the host then abandons it (ringOp reports
// false) rather than die.
func (r *run) ringOp(f func()) bool {
	if r.ring == nil {
		return false
	}
	if err := shmring.Guard(f); err != nil {
		r.hostRecord(record.LevelError, fmt.Sprintf("abandoned the worker's shared-memory ring: %v; records still in it are lost, the socket is read on", err))
		r.in.h.abandonedRings.Add(1)
		r.closeRing()
		return false
	}
	return true
}

// drainRing reads the ring's entries that start before limit, stamping and
// queueing the records. It stops at a barrier for RECORD_AT frames not yet
// read from the socket, unless final (the worker is gone: what is left is
// read whatever it says). It returns how many entries it took.
func (r *run) drainRing(limit uint64, final bool) int {
	if r.ring == nil {
		return 0
	}
	var bad []badEntry
	now := time.Now().UnixNano()
	r.in.emitMu.Lock()
	r.ringBlocked = false
	if r.rf != nil {
		r.inRead, r.chunkDue, r.chunkAt = true, true, r.ring.Next()
	}
	var n int
	var err error
	ferr := shmring.Guard(func() {
		n, err = r.ring.Read(limit, func(e []byte) bool {
			if len(e) == 0 {
				bad = append(bad, badEntry{reason: "empty entry"})
				return true
			}
			switch t := ipc.Type(e[0]); t {
			case ipc.TypeRecord:
				if err := r.stampLocked(record.SourceSDK, e[1:], true, now); err != nil {
					bad = append(bad, badEntry{"malformed record: " + err.Error(), append([]byte(nil), e[1:]...)})
				}
			case ipc.TypeBarrier:
				if len(e) != 9 {
					bad = append(bad, badEntry{fmt.Sprintf("barrier of %d bytes, want 9", len(e)), append([]byte(nil), e...)})
					return true
				}
				if k := binary.LittleEndian.Uint64(e[1:]); k > r.sockRecs && !final {
					r.ringBlocked = true
					return false
				}
			default:
				bad = append(bad, badEntry{"unknown entry type " + t.String(), append([]byte(nil), e...)})
			}
			return true
		})
	})
	if ferr != nil {
		err = ferr
	}
	if r.rf != nil {
		r.inRead, r.chunkDue = false, false
		// Also with no record read (barriers, bad entries): the space is
		// given back once what was queued before is settled.
		if pos := r.ring.Next(); pos != r.markedAt || len(r.in.pending) > 0 {
			r.markedAt = pos
			r.flushMarkLocked(r.rf, pos)
		}
	} else {
		r.flushLocked()
	}
	r.in.emitMu.Unlock()
	for _, b := range bad {
		r.hostRecord(record.LevelError, "worker wrote a bad entry in its shared-memory ring: "+b.reason, slog.Any("payload", b.payload))
	}
	if errors.Is(err, shmring.ErrUnsettled) {
		// Perhaps a position caught half-way through its store: the
		// entries before it were read, the rest are read once it settles.
		r.ringUnsettled++
		limit := maxUnsettled
		if final {
			limit = maxUnsettledFinal
		}
		if r.ringUnsettled < limit {
			return n
		}
		err = fmt.Errorf("%w for %d reads in a row (positions must be stored whole, as one aligned 8-byte atomic store: docs/ipc.md)", err, r.ringUnsettled)
	} else {
		r.ringUnsettled = 0
	}
	switch {
	case err != nil:
		r.hostRecord(record.LevelError, fmt.Sprintf("abandoned the worker's shared-memory ring: %v; records still in it are lost, the socket is read on", err))
		r.in.h.abandonedRings.Add(1)
		r.closeRing()
	case len(bad) >= maxRingErrors:
		r.hostRecord(record.LevelError, fmt.Sprintf("abandoned the worker's shared-memory ring after %d bad entries in a row; the socket is read on", len(bad)))
		r.in.h.abandonedRings.Add(1)
		r.closeRing()
	}
	return n
}

// drainSettled is drainRing for a caller that cannot come back later (a
// RECORD_AT frame waits on the ring's records before it; the worker is
// gone): it reads again while the ring's position is unsettled, until it
// settles or the ring is abandoned.
func (r *run) drainSettled(limit uint64, final bool) {
	for r.drainRing(limit, final); r.ring != nil && r.ringUnsettled > 0; r.drainRing(limit, final) {
		time.Sleep(ringPoll) // as pollRing reads again: the limits count reads ringPoll apart
	}
}

// recordAt handles a RECORD_AT frame: the ring's records before its
// position first, then the record.
func (r *run) recordAt(p []byte) error {
	if len(p) < 8 {
		return fmt.Errorf("RECORD_AT frame of %d bytes has no ring position", len(p))
	}
	r.drainSettled(binary.LittleEndian.Uint64(p), false)
	r.sockRecs++
	r.in.emitMu.Lock()
	err := r.stampLocked(record.SourceSDK, p[8:], true, time.Now().UnixNano())
	r.flushLocked()
	r.in.emitMu.Unlock()
	return err
}

// closeRing tells the worker that the ring is abandoned (its writes fail
// from now on, and go through the socket) and unmaps it.
func (r *run) closeRing() {
	if r.ring == nil {
		return
	}
	shmring.Guard(r.ring.Abandon)
	if r.rf != nil {
		r.rf.abandon()
		r.rf = nil
	} else {
		r.ring.Close()
	}
	r.ring = nil
}

// endRing lets go of the ring at the end of the run. A ring file stays
// until what was read from it is settled.
func (r *run) endRing() {
	if r.rf == nil {
		r.closeRing()
		return
	}
	shmring.Guard(r.ring.Abandon) // the worker is gone: nobody is told
	r.rf.end(r.ring.Next())
	r.rf, r.ring = nil, nil
}
