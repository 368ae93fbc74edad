package host

import "testing"

// TestTapCountsMissed: a tap whose buffer is full is told, with the next
// batch it gets, how many records it missed in all.
func TestTapCountsMissed(t *testing.T) {
	h := &Host{done: make(chan struct{})}
	batches, stop := h.Tap(1)
	defer stop()
	recs := func(n int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = []byte{0x08, 0x01}
		}
		return out
	}
	h.tapBatch(recs(1)) // fills the buffer
	for range 10 {
		h.tapBatch(recs(7)) // missed: 70 records
	}
	if b := <-batches; b.Missed != 0 {
		t.Fatalf("the first batch says %d missed", b.Missed)
	}
	h.tapBatch(recs(2))
	if b := <-batches; b.Missed != 70 {
		t.Fatalf("missed %d, want 70", b.Missed)
	}
	h.tapBatch(recs(2))
	if b := <-batches; b.Missed != 0 {
		t.Fatalf("missed %d after it was told, want 0", b.Missed)
	}
}
