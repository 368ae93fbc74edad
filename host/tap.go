package host

import (
	"sync"
	"sync/atomic"

	"github.com/logtk/logtk/internal/entries"
)

// A tap lets a reader watch the records the host routes (logtk-host logs
// -f attached to a running host) without slowing it: each batch handed
// to the Output is copied to every tap whose buffer has room, and a tap
// that falls behind is told how many records it missed. With no tap the
// output path pays one atomic load a batch.

// tap is a subscription to the host's records.
type tap struct {
	c      chan TapBatch
	missed atomic.Int64
}

// TapBatch is a batch of records a tap receives: the records one after
// the other as entries (a uvarint length, then the record), and how many
// records the tap missed before them (its buffer was full).
type TapBatch struct {
	Entries []byte
	Missed  int64
}

type taps struct {
	mu   sync.Mutex
	list []*tap
	n    atomic.Int32
}

// Tap subscribes to the records the host routes from now on, with room
// for buffer batches in the channel it returns, which is closed when the
// host is done or stop is called.
func (h *Host) Tap(buffer int) (batches <-chan TapBatch, stop func()) {
	t := &tap{c: make(chan TapBatch, max(buffer, 1))}
	h.taps.mu.Lock()
	defer h.taps.mu.Unlock()
	select {
	case <-h.done:
		close(t.c)
		return t.c, func() {}
	default:
	}
	h.taps.list = append(h.taps.list, t)
	h.taps.n.Add(1)
	return t.c, func() { h.untap(t) }
}

// untap ends a subscription.
func (h *Host) untap(t *tap) {
	h.taps.mu.Lock()
	defer h.taps.mu.Unlock()
	for i, x := range h.taps.list {
		if x == t {
			h.taps.list = append(h.taps.list[:i], h.taps.list[i+1:]...)
			h.taps.n.Add(-1)
			close(t.c)
			return
		}
	}
}

// tapBatch copies a batch to every tap (from the output goroutine).
func (h *Host) tapBatch(batch [][]byte) {
	if h.taps.n.Load() == 0 {
		return
	}
	size := 0
	for _, r := range batch {
		size += len(r) + 5
	}
	b := make([]byte, 0, size)
	for _, r := range batch {
		b = entries.Append(b, r)
	}
	h.taps.mu.Lock()
	defer h.taps.mu.Unlock()
	for _, t := range h.taps.list {
		// (A send's value is evaluated before select chooses: what was
		// missed is taken off only once it is sent.)
		missed := t.missed.Load()
		select {
		case t.c <- TapBatch{Entries: b, Missed: missed}:
			t.missed.Add(-missed)
		default:
			t.missed.Add(int64(len(batch)))
		}
	}
}

// closeTaps closes every tap's channel (the host is done).
func (h *Host) closeTaps() {
	h.taps.mu.Lock()
	defer h.taps.mu.Unlock()
	for _, t := range h.taps.list {
		close(t.c)
	}
	h.taps.list = nil
	h.taps.n.Store(0)
}
