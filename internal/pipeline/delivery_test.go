package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/logtk/logtk/internal/wasm"
)

// The delivery policy against a fake transport instance and a fake
// clock: each rule of delivery's comment, alone.

// fakeConn is a transport instance whose answers the test scripts.
type fakeConn struct {
	n       int // which instance this is (1 for the first opened)
	async   bool
	write   func(c *fakeConn, id uint64) (pending bool, err error) // default: delivered (sync) or pending (async)
	poll    func(c *fakeConn) ([]uint64, error)                    // default: acknowledge everything pending
	clock   *fakeClock
	sent    []uint64 // ids written, in order
	unacked []uint64
	closed  bool
}

func (c *fakeConn) WriteMarked(_ context.Context, id uint64, _, _ []byte) (bool, error) {
	c.sent = append(c.sent, id)
	if c.write != nil {
		return c.write(c, id)
	}
	if c.async {
		c.unacked = append(c.unacked, id)
	}
	return c.async, nil
}

func (c *fakeConn) Poll(_ context.Context, wait time.Duration) ([]uint64, error) {
	if c.poll != nil {
		return c.poll(c)
	}
	ids := c.unacked
	c.unacked = nil
	if len(ids) == 0 {
		c.clock.sleep(wait) // waited for acknowledgements that did not come
	}
	return ids, nil
}

func (c *fakeConn) Async() bool                       { return c.async }
func (c *fakeConn) Flush(context.Context) error       { return nil }
func (c *fakeConn) ClosePlugin(context.Context) error { return nil }
func (c *fakeConn) Close(context.Context) error       { c.closed = true; return nil }

// fakeClock is a clock that only sleeping moves.
type fakeClock struct {
	t      time.Time
	sleeps []time.Duration
}

func (c *fakeClock) now() time.Time { return c.t }
func (c *fakeClock) sleep(d time.Duration) {
	c.sleeps = append(c.sleeps, d)
	c.t = c.t.Add(d)
}

// harness runs a delivery of batches 1..n over instances made by mk.
type harness struct {
	d         *delivery
	clock     *fakeClock
	conns     []*fakeConn
	done      []uint64
	failed    map[uint64]error
	stopping  bool
	mk        func(n int) *fakeConn
	openError error
}

func newHarness(async bool, mk func(n int) *fakeConn) *harness {
	h := &harness{clock: &fakeClock{t: time.Unix(1000, 0)}, failed: map[uint64]error{}, mk: mk}
	d := newDelivery("t", async, time.Minute)
	d.open = func(context.Context) (conn, error) {
		if h.openError != nil {
			return nil, h.openError
		}
		c := &fakeConn{async: async}
		if h.mk != nil {
			c = h.mk(len(h.conns) + 1)
			c.async = async
		}
		c.n, c.clock = len(h.conns)+1, h.clock
		h.conns = append(h.conns, c)
		return c, nil
	}
	d.done = func(it item) { h.done = append(h.done, it.id) }
	d.failed = func(it item, err error) { h.failed[it.id] = err }
	d.stopping = func() bool { return h.stopping }
	d.sleep, d.now = h.clock.sleep, h.clock.now
	h.d = d
	return h
}

// run delivers items with the given ids (spooled ones marked) and
// returns what run returned.
func (h *harness) run(t *testing.T, ids []uint64, spooled ...uint64) bool {
	t.Helper()
	items := make(chan item, len(ids))
	for _, id := range ids {
		items <- item{id: id, data: []byte(fmt.Sprint(id)), job: &job{}, spooled: slices.Contains(spooled, id)}
	}
	close(items)
	return h.d.run(context.Background(), items)
}

func ids(n int) []uint64 {
	var out []uint64
	for i := 1; i <= n; i++ {
		out = append(out, uint64(i))
	}
	return out
}

var (
	errRetry  = &wasm.CallError{Plugin: "t", Call: "logtk_write", Status: wasm.StatusRetry, Msg: "connection refused"}
	errBroken = &wasm.CallError{Plugin: "t", Call: "logtk_write", Status: -1, Msg: "trap", Broken: true}
	errRefuse = &wasm.CallError{Plugin: "t", Call: "logtk_write", Status: wasm.StatusInvalid, Msg: "batch too large"}
)

func TestDeliverySyncInOrder(t *testing.T) {
	h := newHarness(false, nil)
	if h.run(t, ids(50)) {
		t.Fatal("gave up")
	}
	if !slices.Equal(h.done, ids(50)) || len(h.failed) != 0 || len(h.conns) != 1 {
		t.Fatalf("done %v, failed %v, %d instances", h.done, h.failed, len(h.conns))
	}
	if !slices.Equal(h.conns[0].sent, ids(50)) {
		t.Fatalf("written in the order %v", h.conns[0].sent)
	}
}

// A retryable failure sends the whole window again, in order, with the
// same ids, after a backoff that doubles with jitter up to its cap; an
// acknowledgement resets it.
func TestDeliveryRetriesWithBackoff(t *testing.T) {
	failures := 12
	h := newHarness(true, func(int) *fakeConn {
		return &fakeConn{poll: func(c *fakeConn) ([]uint64, error) {
			if failures > 0 {
				failures--
				return nil, errRetry
			}
			ids := c.unacked
			c.unacked = nil
			return ids, nil
		}}
	})
	if h.run(t, ids(3)) {
		t.Fatal("gave up")
	}
	if !slices.Equal(h.done, ids(3)) || len(h.failed) != 0 {
		t.Fatalf("done %v, failed %v", h.done, h.failed)
	}
	if len(h.conns) != 1 {
		t.Fatalf("%d instances: a retryable failure replaced the instance", len(h.conns))
	}
	// Every send of the window is 1, 2, 3 again.
	sent := h.conns[0].sent
	if len(sent) != 3*13 {
		t.Fatalf("sent %d batches, want the window of 3 thirteen times: %v", len(sent), sent)
	}
	for i := 0; i < len(sent); i += 3 {
		if !slices.Equal(sent[i:i+3], ids(3)) {
			t.Fatalf("a resend was not the window in order: %v", sent)
		}
	}
	if len(h.clock.sleeps) != 12 {
		t.Fatalf("%d backoff sleeps for 12 failures: %v", len(h.clock.sleeps), h.clock.sleeps)
	}
	want := firstDelay
	for i, s := range h.clock.sleeps {
		if s < want/2 || s > want {
			t.Errorf("backoff %d: %s, want between %s and %s", i, s, want/2, want)
		}
		want = min(want*2, maxDelay)
	}
	if h.d.retries != 0 || h.d.delay != firstDelay {
		t.Errorf("after the acknowledgement: %d retries, delay %s; want 0 and %s", h.d.retries, h.d.delay, firstDelay)
	}
}

// A broken instance is closed and replaced; after brokenAttempts in a
// row the oldest batch is dead-lettered and the rest delivered.
func TestDeliveryBrokenInstances(t *testing.T) {
	h := newHarness(false, func(int) *fakeConn {
		return &fakeConn{write: func(c *fakeConn, id uint64) (bool, error) {
			if id == 2 {
				return false, errBroken // batch 2 breaks every instance
			}
			return false, nil
		}}
	})
	if h.run(t, ids(4)) {
		t.Fatal("gave up")
	}
	if !slices.Equal(h.done, []uint64{1, 3, 4}) {
		t.Fatalf("done %v, want 1, 3, 4", h.done)
	}
	if err, ok := h.failed[2]; !ok || len(h.failed) != 1 || !errors.Is(err, errBroken) {
		t.Fatalf("failed %v, want batch 2 with the trap", h.failed)
	}
	if len(h.conns) != brokenAttempts+1 {
		t.Fatalf("%d instances, want %d broken and a new one", len(h.conns), brokenAttempts)
	}
	for _, c := range h.conns[:brokenAttempts] {
		if !c.closed {
			t.Errorf("broken instance %d was not closed", c.n)
		}
	}
}

// A batch the plugin refuses (neither retryable nor broken) is
// dead-lettered at once; the instance stays and the rest go through.
func TestDeliveryRefusedBatch(t *testing.T) {
	h := newHarness(false, func(int) *fakeConn {
		return &fakeConn{write: func(c *fakeConn, id uint64) (bool, error) {
			if id == 3 {
				return false, errRefuse
			}
			return false, nil
		}}
	})
	h.run(t, ids(5))
	if !slices.Equal(h.done, []uint64{1, 2, 4, 5}) || len(h.failed) != 1 || h.failed[3] == nil {
		t.Fatalf("done %v, failed %v", h.done, h.failed)
	}
	if len(h.conns) != 1 || len(h.clock.sleeps) != 0 {
		t.Fatalf("%d instances, %d sleeps: a refusal is not a failure of the instance", len(h.conns), len(h.clock.sleeps))
	}
}

// A batch the plugin refuses after instances broke on it starts the
// failures in a row again: the next batch is not set aside for the
// failures of the one before it. (A Kafka refusal, seen twice as a
// broken instance and then as a refused write, had the next batch
// dead-lettered on its first failure.)
func TestDeliveryRefusalEndsTheFailuresInARow(t *testing.T) {
	h := newHarness(false, func(n int) *fakeConn {
		return &fakeConn{write: func(c *fakeConn, id uint64) (bool, error) {
			switch {
			case id == 1 && n < brokenAttempts:
				return false, errBroken
			case id == 1:
				return false, errRefuse
			case id == 2 && n == brokenAttempts:
				return false, errBroken // once, on the instance after
			}
			return false, nil
		}}
	})
	h.run(t, ids(3))
	if !slices.Equal(h.done, []uint64{2, 3}) || len(h.failed) != 1 || h.failed[1] == nil {
		t.Fatalf("done %v, failed %v; want 2 and 3 done, 1 failed", h.done, h.failed)
	}
}

// An asynchronous transport gets up to maxInFlight batches before it must
// acknowledge; acknowledgements may come in any order.
func TestDeliveryAsyncWindow(t *testing.T) {
	most := 0
	h := newHarness(true, func(int) *fakeConn {
		return &fakeConn{poll: func(c *fakeConn) ([]uint64, error) {
			most = max(most, len(c.unacked))
			// Acknowledge the newer half first.
			half := len(c.unacked) / 2
			acked := slices.Clone(c.unacked[half:])
			c.unacked = c.unacked[:half]
			slices.Reverse(acked)
			return acked, nil
		}}
	})
	n := 3 * maxInFlight
	if h.run(t, ids(n)) {
		t.Fatal("gave up")
	}
	if len(h.done) != n || len(h.failed) != 0 {
		t.Fatalf("%d done, failed %v", len(h.done), h.failed)
	}
	if most != maxInFlight {
		t.Fatalf("at most %d batches on their way, want %d", most, maxInFlight)
	}
	if !slices.Equal(h.conns[0].sent, ids(n)) {
		t.Fatal("batches were not written in order")
	}
}

// An instance that acknowledges nothing for ackTimeout is taken for
// broken: replaced and sent the window again; after brokenAttempts such
// rounds the oldest batch is dead-lettered, with the reason.
func TestDeliveryAckTimeout(t *testing.T) {
	h := newHarness(true, func(n int) *fakeConn {
		return &fakeConn{poll: func(c *fakeConn) ([]uint64, error) {
			if n <= brokenAttempts {
				c.clock.sleep(pollWait) // nothing, ever
				return nil, nil
			}
			ids := c.unacked
			c.unacked = nil
			return ids, nil
		}}
	})
	if h.run(t, ids(2)) {
		t.Fatal("gave up")
	}
	if len(h.conns) != brokenAttempts+1 {
		t.Fatalf("%d instances, want %d timed out and one that acknowledges", len(h.conns), brokenAttempts)
	}
	err := h.failed[1]
	if len(h.failed) != 1 || err == nil || !slices.Equal(h.done, []uint64{2}) {
		t.Fatalf("done %v, failed %v; want batch 1 dead-lettered, 2 delivered", h.done, h.failed)
	}
	if want := "acknowledged none of its 2 batches on their way for 1m0s (ack_timeout)"; !strings.Contains(err.Error(), want) {
		t.Fatalf("reason %q lacks %q", err, want)
	}
	// Each instance was given the ack timeout, and not much more.
	if el := h.clock.t.Sub(time.Unix(1000, 0)); el < brokenAttempts*time.Minute || el > brokenAttempts*(time.Minute+2*pollWait)+time.Second {
		t.Fatalf("%d instances replaced in %s of fake time, want each after its ack timeout of 1m", brokenAttempts, el)
	}
}

// Once stopping, a destination that keeps failing is given up after
// stoppingRetries attempts: batches from the spool stay there, the others
// are dead-lettered, and run says it gave up.
func TestDeliveryGivesUpWhenStopping(t *testing.T) {
	h := newHarness(false, func(int) *fakeConn {
		return &fakeConn{write: func(*fakeConn, uint64) (bool, error) { return false, errRetry }}
	})
	h.stopping = true
	if !h.run(t, ids(1), 1) {
		t.Fatal("did not give up")
	}
	if len(h.failed) != 0 || len(h.done) != 0 {
		t.Fatalf("a spooled batch was settled (done %v, failed %v): it belongs to the spool", h.done, h.failed)
	}
	if got := len(h.conns[0].sent); got != stoppingRetries+1 {
		t.Fatalf("%d attempts, want %d", got, stoppingRetries+1)
	}

	h = newHarness(false, func(int) *fakeConn {
		return &fakeConn{write: func(*fakeConn, uint64) (bool, error) { return false, errRetry }}
	})
	h.stopping = true
	if !h.run(t, ids(1)) {
		t.Fatal("did not give up")
	}
	if !errors.Is(h.failed[1], errRetry) {
		t.Fatalf("failed %v: the batch was not dead-lettered with the last error", h.failed)
	}
}

// While running, a failing destination is retried without end: here an
// instance that cannot even be opened for 200 attempts.
func TestDeliveryRetriesWithoutEnd(t *testing.T) {
	h := newHarness(false, nil)
	attempts := 0
	open := h.d.open
	h.d.open = func(ctx context.Context) (conn, error) {
		if attempts++; attempts <= 200 {
			return nil, errRetry
		}
		return open(ctx)
	}
	if h.run(t, ids(2)) {
		t.Fatal("gave up")
	}
	if !slices.Equal(h.done, ids(2)) {
		t.Fatalf("done %v", h.done)
	}
	if last := h.clock.sleeps[len(h.clock.sleeps)-1]; last > maxDelay || last < maxDelay/2 {
		t.Fatalf("the backoff reached %s, want it capped at %s", last, maxDelay)
	}
}

// Once stopping, an instance that breaks on every batch is given up
// after stoppingRetries failures in all: the failures in a row start
// again each time brokenAttempts of them set a batch aside, and counting
// those held a stop for brokenAttempts backoffs a batch (an outsider's
// transport kept logtk-host stopping for minutes).
func TestDeliveryStopBoundedWhenEveryInstanceBreaks(t *testing.T) {
	for _, async := range []bool{false, true} {
		h := newHarness(async, func(int) *fakeConn {
			return &fakeConn{write: func(*fakeConn, uint64) (bool, error) { return false, errBroken }}
		})
		h.stopping = true
		if !h.run(t, ids(50)) {
			t.Fatalf("async %v: did not give up", async)
		}
		if len(h.conns) > stoppingRetries+2 {
			t.Fatalf("async %v: %d instances opened after the stop, want at most %d", async, len(h.conns), stoppingRetries+2)
		}
		// What it had taken is dead-lettered; its caller dead-letters
		// what it had not (transportLoop).
		if len(h.failed) == 0 || len(h.done) != 0 {
			t.Fatalf("async %v: failed %d, done %d", async, len(h.failed), len(h.done))
		}
	}
}

// A synchronous transport's delivery ends its run of failures: the next
// failure backs off from the first delay again (it stayed at the last
// one: a transport that failed now and then waited maxDelay each time).
func TestDeliverySyncSuccessResetsBackoff(t *testing.T) {
	fail := map[uint64]int{1: 6, 2: 1}
	h := newHarness(false, func(int) *fakeConn {
		return &fakeConn{write: func(_ *fakeConn, id uint64) (bool, error) {
			if fail[id] > 0 {
				fail[id]--
				return false, errRetry
			}
			return false, nil
		}}
	})
	if h.run(t, ids(2)) {
		t.Fatal("gave up")
	}
	if !slices.Equal(h.done, ids(2)) || len(h.clock.sleeps) != 7 {
		t.Fatalf("done %v after %d sleeps, want 1, 2 after 7", h.done, len(h.clock.sleeps))
	}
	if last := h.clock.sleeps[6]; last > firstDelay {
		t.Fatalf("batch 2's first retry waited %s, want at most %s: batch 1's delivery did not end the failures", last, firstDelay)
	}
}

// Once stopping, failures count to stoppingRetries only between
// deliveries: a transport that delivers, with a failure now and then
// (a server restart during the drain), is not given up on (the first
// count of failures in all gave up after 576 of 1000 batches).
func TestDeliveryStoppingKeepsAHealthyDrain(t *testing.T) {
	for _, async := range []bool{false, true} {
		polls, writes := 0, 0
		h := newHarness(async, func(int) *fakeConn {
			c := &fakeConn{}
			if async {
				c.poll = func(c *fakeConn) ([]uint64, error) {
					if polls++; polls%4 == 0 {
						return nil, errRetry
					}
					ids := c.unacked
					c.unacked = nil
					return ids, nil
				}
			} else {
				c.write = func(*fakeConn, uint64) (bool, error) {
					if writes++; writes%4 == 0 {
						return false, errRetry
					}
					return false, nil
				}
			}
			return c
		})
		h.stopping = true
		if h.run(t, ids(1000)) {
			t.Fatalf("async %v: gave up after %d delivered", async, len(h.done))
		}
		if len(h.done) != 1000 || len(h.failed) != 0 {
			t.Fatalf("async %v: done %d, failed %d", async, len(h.done), len(h.failed))
		}
	}
}

// A transport that fails once on every batch makes one failure record
// (and one of its recovery) a minute, not two a batch: the records are
// routed to it too, and would feed it (the host log has every failure).
func TestDeliveryReportsAreBounded(t *testing.T) {
	failed := map[uint64]bool{}
	h := newHarness(false, func(int) *fakeConn {
		return &fakeConn{write: func(_ *fakeConn, id uint64) (bool, error) {
			if !failed[id] {
				failed[id] = true
				return false, errRetry
			}
			return false, nil
		}}
	})
	records := 0
	h.d.report = func(int32, string, ...slog.Attr) { records++ }
	if h.run(t, ids(100)) || len(h.done) != 100 {
		t.Fatalf("done %d", len(h.done))
	}
	// Each failure backs off at most firstDelay (a delivery follows it),
	// so the 100 fall within one reportEvery.
	if el := h.clock.t.Sub(time.Unix(1000, 0)); el >= reportEvery {
		t.Fatalf("the run took %s of fake time, past reportEvery", el)
	}
	if records > 2 {
		t.Fatalf("%d records for 100 failures within reportEvery, want at most 2 (the failure and the recovery)", records)
	}
}
