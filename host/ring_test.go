package host

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
)

// sdkRecords returns one instance's SDK records in arrival order, after
// checking the instance's sequence numbers.
func sdkRecords(t *testing.T, c *collector, name string) []*logtkv1.Record {
	t.Helper()
	var out []*logtkv1.Record
	for _, r := range checkSequence(t, c.snapshot(), name, 0) {
		if r.Source == logtkv1.Source_SOURCE_SDK {
			out = append(out, r)
		}
	}
	return out
}

// checkOrder checks that the records carrying an "i" attribute carry
// 0, 1, 2, ... n-1.
func checkOrder(t *testing.T, recs []*logtkv1.Record, n int) {
	t.Helper()
	next := 0
	for _, r := range recs {
		a := attr(r, "i")
		if a == nil {
			continue
		}
		if got := a.GetInt(); got != int64(next) {
			t.Fatalf("record %d carries i=%d (message %q)", next, got, r.Message)
		}
		next++
	}
	if next != n {
		t.Fatalf("%d of %d records arrived", next, n)
	}
}

// TestRingCarriesRecords: with a ring the SDK's records go through it,
// and records too large for it go through the socket in their place,
// whatever the ring's size: order is kept both ways.
func TestRingCarriesRecords(t *testing.T) {
	tests := []struct {
		name                 string
		ringBytes, n         int
		bigEvery, bigBytes   int
		wantRing, wantSocket int // -1: any number above zero
	}{
		{name: "small records", ringBytes: 1 << 20, n: 20_000, wantRing: 20_000, wantSocket: 0},
		{name: "every 7th too large for the ring", ringBytes: 8192, n: 5_000, bigEvery: 7, bigBytes: 5000, wantRing: 5000 - 5000/7, wantSocket: 5000 / 7},
		{name: "tiny ring often full", ringBytes: 4096, n: 20_000, bigEvery: 50, bigBytes: 1500, wantRing: 20_000, wantSocket: 0},
		{name: "no ring", ringBytes: -1, n: 2_000, wantRing: 0, wantSocket: 2_000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := testWorker("flood", "flood", map[string]string{
				"LOGTK_TEST_N": fmt.Sprint(tc.n), "LOGTK_TEST_END": "stats",
				"LOGTK_TEST_BIG_EVERY": fmt.Sprint(tc.bigEvery), "LOGTK_TEST_BIG_BYTES": fmt.Sprint(tc.bigBytes),
			})
			w.RingBytes = tc.ringBytes
			h, c := startHost(t, Options{}, w)
			waitDone(t, h, time.Minute)
			recs := sdkRecords(t, c, "flood")
			checkOrder(t, recs, tc.n)
			stats := recs[len(recs)-1]
			if stats.Message != "stats" {
				t.Fatalf("last record %q, want the stats", stats.Message)
			}
			if got := attr(stats, "ring").GetBool(); got != (tc.ringBytes > 0) {
				t.Errorf("SDK uses a ring: %v, want %v", got, tc.ringBytes > 0)
			}
			for _, want := range []struct {
				key string
				n   int
			}{{"ring_records", tc.wantRing}, {"socket_records", tc.wantSocket}} {
				got := attr(stats, want.key).GetUint()
				if want.n < 0 && got == 0 || want.n >= 0 && got != uint64(want.n) {
					t.Errorf("%s = %d, want %d (-1: some)", want.key, got, want.n)
				}
			}
		})
	}
}

// TestRingHostileWorker: bad entries in the ring become error records
// naming them; a broken ring header makes the host abandon the ring and
// read the socket, through which the SDK then sends. No record of the
// SDK's is lost.
func TestRingHostileWorker(t *testing.T) {
	t.Parallel() // waits on backoffs and timeouts, not the CPU
	h, c := startHost(t, Options{}, testWorker("hostile", "ring-hostile", nil))
	waitDone(t, h, 2*time.Minute)
	if n := h.Undelivered().AbandonedRings; n != 1 {
		t.Errorf("Undelivered counts %d abandoned rings, want 1 (run exits 3 for it)", n)
	}
	all := checkSequence(t, c.snapshot(), "hostile", 0)
	checkOrder(t, all, 5)
	var msgs []string
	for _, r := range all {
		if r.Source == logtkv1.Source_SOURCE_HOST && r.Level >= logtkv1.Level_LEVEL_ERROR {
			msgs = append(msgs, r.Message)
		}
	}
	got := strings.Join(msgs, "\n")
	for _, want := range []string{
		"bad entry in its shared-memory ring: malformed record",
		"bad entry in its shared-memory ring: unknown entry type unknown(0x09)",
		"abandoned the worker's shared-memory ring: shmring: published position not settled: 1099511627776 bytes published",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no error record containing %q; error records:\n%s", want, got)
		}
	}
}

// gatedOutput blocks every WriteBatch until open is closed.
type gatedOutput struct {
	open chan struct{}
	*collector
}

func (g gatedOutput) WriteBatch(recs [][]byte) error {
	<-g.open
	return g.collector.WriteBatch(recs)
}

// TestRingStaysFull: while the host's output is held up the ring fills;
// after its bounded wait the SDK sends through the socket, and once the
// output moves again every record arrives in order.
func TestRingStaysFull(t *testing.T) {
	flag := t.TempDir() + "/fell-back"
	w := testWorker("flood", "flood", map[string]string{
		"LOGTK_TEST_N": "3000", "LOGTK_TEST_END": "stats", "LOGTK_TEST_FLAG": flag,
	})
	w.RingBytes = 8192
	g := gatedOutput{open: make(chan struct{}), collector: newCollector()}
	h, _ := startHost(t, Options{Output: g, QueueSize: 16}, w)
	deadline := time.Now().Add(30 * time.Second)
	for !fileExists(flag) {
		if time.Now().After(deadline) {
			close(g.open)
			t.Fatal("the worker never fell back to the socket")
		}
		time.Sleep(5 * time.Millisecond) // polling for a file another process writes
	}
	close(g.open)
	waitDone(t, h, time.Minute)
	recs := sdkRecords(t, g.collector, "flood")
	checkOrder(t, recs, 3000)
	stats := recs[len(recs)-1]
	if attr(stats, "ring_records").GetUint() == 0 || attr(stats, "socket_records").GetUint() == 0 {
		t.Fatalf("stats %v: want records through both", stats.Attrs)
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// TestRingConcurrentLoggers: goroutines log at once through a small ring,
// some records too large for it; each goroutine's records arrive complete
// and in its order.
func TestRingConcurrentLoggers(t *testing.T) {
	const goroutines, n = 4, 3000
	w := testWorker("conc", "concurrent", map[string]string{
		"LOGTK_TEST_N": fmt.Sprint(n), "LOGTK_TEST_GOROUTINES": fmt.Sprint(goroutines),
		"LOGTK_TEST_BIG_EVERY": "13", "LOGTK_TEST_BIG_BYTES": "3000",
	})
	w.RingBytes = 4096
	h, c := startHost(t, Options{}, w)
	waitDone(t, h, time.Minute)
	next := make([]int64, goroutines)
	for _, r := range sdkRecords(t, c, "conc") {
		g := attr(r, "g").GetInt()
		if i := attr(r, "i").GetInt(); i != next[g] {
			t.Fatalf("goroutine %d: record %d arrived after %d", g, i, next[g]-1)
		}
		next[g]++
	}
	for g, got := range next {
		if got != n {
			t.Errorf("goroutine %d: %d of %d records arrived", g, got, n)
		}
	}
}
