package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/logtk/logtk/internal/metrics"
	"github.com/logtk/logtk/internal/wasm"
	"github.com/logtk/logtk/record"
)

// A delivery hands one transport its batches in order and settles each
// one: delivered (done) or dead-lettered (failed). It is the policy that
// keeps the zero-loss promise at the transport, in four parts:
//
//   - The window. A synchronous transport takes one batch at a time: its
//     logtk_write delivers the batch or fails. An asynchronous one (it
//     exports logtk_poll) may have up to maxInFlight on their way,
//     acknowledged by id through Poll.
//   - Retries. A failure the plugin calls retryable is retried with
//     jittered exponential backoff, without end while running; every
//     unacknowledged batch is sent again, in order, with its id (the
//     receiver drops what it already has).
//   - Broken instances. An instance that traps, runs out of time or
//     memory, or returns garbage is closed and the next one opened; after
//     brokenAttempts in a row the oldest batch, which may be what breaks
//     it, is dead-lettered. A batch the plugin refuses (an error neither
//     retryable nor broken) is dead-lettered at once.
//   - The ack timeout. An instance that acknowledges nothing for
//     ackTimeout while batches are on their way is taken for broken, so
//     that a plugin that only ever answers "pending" can neither hold the
//     pipeline for ever nor keep the host from stopping.
//
// Once stopping, it gives up at the failure after stoppingRetries of any
// kind with no delivery between them (or after one ack timeout): batches
// not from the spool are dead-lettered, spooled ones stay in the spool
// for the next run. A delivery, or an acknowledgement, ends a run of
// failures: the next starts again from the first backoff.
type delivery struct {
	name       string
	limit      int // the window: 1, or maxInFlight for an async transport
	ackTimeout time.Duration

	// What the delivery works with; newDelivery sets all but open, done
	// and failed, which the caller must.
	open func(context.Context) (conn, error) // a configured, opened instance
	done func(item)                          // delivered
	// prepare, when set, readies an item before each write: false means
	// the transport holds all of it already (it is then done).
	prepare  func(*item) bool
	failed   func(item, error) // to be dead-lettered
	stopping func() bool
	log      hclog.Logger
	report   func(level int32, msg string, attrs ...slog.Attr)
	sleep    func(time.Duration)
	now      func() time.Time
	metrics  *metrics.Pipeline
	// idleEvery is how often an idle async instance is polled.
	idleEvery time.Duration

	inst     conn
	window   []item
	retries  int // retryable failures in a row
	broken   int // broken instances in a row
	stopFail int // failures since stopping began (or since the last delivery then)
	// The records a delivery makes about its transport (report) are
	// routed like any other, to that transport too: at most one failure
	// record each reportEvery, and a recovery record only after a run
	// of failures that made one, so that a transport failing now and
	// then cannot feed itself on its own reports.
	reportEvery time.Duration
	reportedAt  time.Time     // of the last failure record
	runReported bool          // the current run of failures made a record
	delay       time.Duration // the next backoff
	quiet       time.Time     // since when batches have been on their way with no answer
	polledAt    time.Time     // when the last Poll began
}

// conn is what a delivery needs of a transport instance (*wasm.Instance).
type conn interface {
	WriteMarked(ctx context.Context, id uint64, marks, batch []byte) (pending bool, err error)
	Poll(ctx context.Context, wait time.Duration) ([]uint64, error)
	Async() bool
	Flush(ctx context.Context) error
	ClosePlugin(ctx context.Context) error
	Close(ctx context.Context) error
}

var _ conn = (*wasm.Instance)(nil)

// maxInFlight is how many batches an asynchronous transport may have on
// their way at once.
const maxInFlight = 32

// pollWait bounds one logtk_poll call.
const pollWait = 500 * time.Millisecond

// pollIdle is how long the delivery waits before polling again a
// transport whose logtk_poll returned at once with nothing (instead of
// waiting for acknowledgements as it may): without it the host would spin
// on a core.
const pollIdle = 5 * time.Millisecond

// idlePollEvery is how often an asynchronous transport that has nothing
// on its way is polled, for at most idlePollWait, so that it can keep a
// quiet connection alive (the network transport answers the log server's
// PINGs then).
const (
	idlePollEvery = time.Second
	idlePollWait  = 20 * time.Millisecond
)

const (
	firstDelay = 10 * time.Millisecond
	maxDelay   = 5 * time.Second
)

// backoff returns the wait for a step of delay (a random time between
// half the step and the step, so that a fleet of hosts does not retry
// in step) and the step after it, doubled up to maxDelay.
func backoff(delay time.Duration) (wait, next time.Duration) {
	return delay/2 + rand.N(delay/2+1), min(delay*2, maxDelay)
}

// reportEvery is how often at most a delivery makes a record of its
// transport's failures.
const reportEvery = time.Minute

func newDelivery(name string, async bool, ackTimeout time.Duration) *delivery {
	limit := 1
	if async {
		limit = maxInFlight
	}
	return &delivery{
		name: name, limit: limit, ackTimeout: ackTimeout,
		stopping:    func() bool { return false },
		log:         hclog.NewNullLogger(),
		report:      func(int32, string, ...slog.Attr) {},
		sleep:       time.Sleep,
		now:         time.Now,
		idleEvery:   idlePollEvery,
		reportEvery: reportEvery,
		window:      make([]item, 0, limit),
		delay:       firstDelay,
	}
}

// run delivers items until the channel is closed and every batch taken is
// settled. It returns true if it gave up at shutdown, leaving items
// unread.
func (d *delivery) run(ctx context.Context, items <-chan item) (gaveUp bool) {
	closed := false
	for !closed || len(d.window) > 0 {
		// Take what is ready, up to the limit, and send it.
		from := len(d.window)
	fill:
		for !closed && len(d.window) < d.limit {
			var it item
			var ok bool
			if len(d.window) == 0 {
				it, ok = d.nextIdle(ctx, items)
			} else {
				select {
				case it, ok = <-items:
				default:
					break fill
				}
			}
			if !ok {
				closed = true
				break
			}
			d.window = append(d.window, it)
		}
		if !d.resend(ctx, d.send(ctx, from)) {
			return true
		}
		if len(d.window) == 0 {
			continue
		}
		ids, ok := d.poll(ctx)
		if !ok {
			return true
		}
		if len(ids) > 0 {
			d.answered()
		} else if !d.unanswered(ctx) {
			return true
		}
		d.settle(ids)
	}
	return false
}

// send writes window[from:] in order, settling what the instance delivers
// at once or refuses; it returns the first other error.
func (d *delivery) send(ctx context.Context, from int) error {
	if d.inst == nil {
		inst, err := d.open(ctx)
		if err != nil {
			d.metrics.Failure("transport "+d.name, failureKind(err))
			return err
		}
		d.inst = inst
	}
	for i := from; i < len(d.window); i++ {
		if d.prepare != nil && !d.prepare(&d.window[i]) {
			d.done(d.window[i])
			d.window = append(d.window[:i], d.window[i+1:]...)
			i--
			continue
		}
		start := time.Now()
		pending, err := d.inst.WriteMarked(ctx, d.window[i].id, d.window[i].marks, d.window[i].data)
		d.metrics.Call("transport "+d.name, "write", time.Since(start))
		if err != nil {
			d.metrics.Failure("transport "+d.name, failureKind(err))
			var ce *wasm.CallError
			if errors.As(err, &ce) && !ce.Broken && !ce.Retryable() {
				// The plugin says this batch cannot be written. Set
				// aside, it ends the failures in a row: the next
				// batch gets its own attempts.
				d.failed(d.window[i], err)
				d.window = append(d.window[:i], d.window[i+1:]...)
				i--
				d.broken = 0
				continue
			}
			return err
		}
		if !pending {
			d.done(d.window[i])
			d.window = append(d.window[:i], d.window[i+1:]...)
			i--
			d.answered() // delivered: the failures in a row are over
		}
	}
	return nil
}

// resend handles err (nil: nothing to do) with retry and sends the window
// again until that succeeds; false when retry gives up.
func (d *delivery) resend(ctx context.Context, err error) bool {
	for err != nil {
		if !d.retry(ctx, err) {
			return false
		}
		err = d.send(ctx, 0)
	}
	return true
}

// poll asks the instance which batches it has delivered, handling
// failures as resend does; false when it gave up.
func (d *delivery) poll(ctx context.Context) ([]uint64, bool) {
	d.polledAt = d.now()
	ids, err := d.inst.Poll(ctx, pollWait)
	d.metrics.Call("transport "+d.name, "poll", time.Since(d.polledAt))
	if err != nil {
		d.metrics.Failure("transport "+d.name, failureKind(err))
	}
	for err != nil {
		if !d.retry(ctx, err) {
			return nil, false
		}
		err = d.send(ctx, 0)
		if err == nil && len(d.window) > 0 {
			d.polledAt = d.now()
			ids, err = d.inst.Poll(ctx, pollWait)
		}
	}
	return ids, true
}

// retry handles a failure: true to send the window again, false to give
// up (only once stopping).
func (d *delivery) retry(ctx context.Context, err error) bool {
	d.quiet = time.Time{} // a failure is an answer: the window goes again
	var ce *wasm.CallError
	if errors.As(err, &ce) && ce.Retryable() {
		d.retries++
		d.log.Debug("transport failed", "transport", d.name, "attempt", d.retries, "in_flight", len(d.window), "error", err)
		if d.retries == 1 || d.retries%100 == 0 {
			d.log.Warn("transport failed; resending what is on its way", "transport", d.name, "attempt", d.retries, "in_flight", len(d.window), "error", err)
			d.failureRecord(record.LevelWarn, fmt.Sprintf("transport %s failed (attempt %d); resending the %d batches on their way: %v", d.name, d.retries, len(d.window), err),
				slog.String("transport", d.name), slog.Int("attempt", d.retries), slog.Int("in_flight", len(d.window)), slog.String("error", err.Error()))
		}
	} else {
		d.broken++
		d.drop(ctx)
		d.log.Error("transport instance failed; replacing it", "transport", d.name, "attempt", d.broken, "error", err)
		d.failureRecord(record.LevelError, fmt.Sprintf("transport %s: its plugin instance failed (attempt %d); replacing it: %v", d.name, d.broken, err),
			slog.String("transport", d.name), slog.Int("attempt", d.broken), slog.String("error", err.Error()))
		if d.broken >= brokenAttempts && len(d.window) > 0 {
			// The oldest batch may be what breaks it: set it aside.
			d.failed(d.window[0], fmt.Errorf("%d attempts failed; last: %w", d.broken, err))
			d.window = d.window[1:]
			d.broken = 0
		}
	}
	if d.stopping() {
		// Counted apart from the failures in a row: those start again
		// each time a batch is set aside, and an instance that breaks
		// on every batch would hold the stop for brokenAttempts
		// backoffs a batch (and the host's reports of it, routed to
		// it, would feed it more).
		if d.stopFail++; d.stopFail > stoppingRetries {
			d.giveUp(err)
			return false
		}
	}
	// Backoff between delivery attempts, with jitter, so that a fleet of
	// hosts does not reconnect in step after a server restart.
	wait, next := backoff(d.delay)
	d.sleep(wait)
	d.delay = next
	return true
}

// answered notes an acknowledgement: the failures in a row are over.
func (d *delivery) answered() {
	if n := d.retries + d.broken; n > 0 {
		d.log.Info("transport delivers again", "transport", d.name, "failed_attempts", n)
		if d.runReported {
			d.report(record.LevelInfo, fmt.Sprintf("transport %s delivers again after %d failed attempts", d.name, n),
				slog.String("transport", d.name), slog.Int("failed_attempts", n))
		}
	}
	d.retries, d.broken, d.stopFail, d.delay = 0, 0, 0, firstDelay
	d.runReported = false
	d.quiet = time.Time{}
}

// failureRecord reports a failure as a record, at most one each
// reportEvery (the host log has every one).
func (d *delivery) failureRecord(level int32, msg string, attrs ...slog.Attr) {
	if now := d.now(); d.reportedAt.IsZero() || now.Sub(d.reportedAt) >= d.reportEvery {
		d.reportedAt = now
		d.runReported = true
		d.report(level, msg, attrs...)
	}
}

// unanswered notes a poll that acknowledged nothing while batches are on
// their way: past the ack timeout the instance is taken for broken (or,
// once stopping, given up on: false).
func (d *delivery) unanswered(ctx context.Context) bool {
	if len(d.window) == 0 {
		return true
	}
	switch {
	case d.quiet.IsZero():
		d.quiet = d.polledAt
	case d.now().Sub(d.quiet) > d.ackTimeout:
		d.quiet = time.Time{}
		err := fmt.Errorf("transport %s acknowledged none of its %d batches on their way for %s (ack_timeout)", d.name, len(d.window), d.ackTimeout)
		d.metrics.Failure("transport "+d.name, "ack_timeout")
		if d.stopping() {
			d.log.Error("giving up on unacknowledged batches at shutdown", "transport", d.name, "batches", len(d.window), "error", err)
			d.giveUp(err)
			return false
		}
		// As a broken instance: replaced, the window sent again.
		return d.resend(ctx, err)
	}
	if d.now().Sub(d.polledAt) < pollWait/2 {
		d.sleep(pollIdle) // it answered at once with nothing
	}
	return true
}

// settle marks the acknowledged batches delivered.
func (d *delivery) settle(ids []uint64) {
	for _, id := range ids {
		for i, it := range d.window {
			if it.id == id {
				d.done(it)
				d.window = append(d.window[:i], d.window[i+1:]...)
				break
			}
		}
	}
}

// giveUp dead-letters the window's batches that are not in a spool (which
// keeps the others for the next run).
func (d *delivery) giveUp(err error) {
	for _, it := range d.window {
		if !it.spooled {
			d.failed(it, err)
		}
	}
	d.window = nil
}

// nextIdle waits for the next item while nothing is on its way, polling
// an asynchronous transport's instance every idleEvery meanwhile (its
// answer is only that it is alive: a failure drops a broken instance,
// which the next batch replaces, and is otherwise the plugin's business).
func (d *delivery) nextIdle(ctx context.Context, items <-chan item) (item, bool) {
	if d.inst == nil || !d.inst.Async() {
		it, ok := <-items
		return it, ok
	}
	tick := time.NewTimer(d.idleEvery)
	defer tick.Stop()
	for {
		select {
		case it, ok := <-items:
			return it, ok
		case <-tick.C:
		}
		if _, err := d.inst.Poll(ctx, idlePollWait); err != nil {
			var ce *wasm.CallError
			if errors.As(err, &ce) && ce.Broken {
				d.log.Warn("idle transport instance failed; the next batch replaces it", "transport", d.name, "error", err)
				d.drop(ctx)
				it, ok := <-items
				return it, ok
			}
			d.log.Debug("idle transport reported a failure", "transport", d.name, "error", err)
		}
		tick.Reset(d.idleEvery)
	}
}

// drop closes the instance; the next send opens another.
func (d *delivery) drop(ctx context.Context) {
	if d.inst != nil {
		d.inst.Close(ctx)
		d.inst = nil
	}
}

// close flushes and closes the instance, if there is one.
func (d *delivery) close(ctx context.Context) {
	if d.inst == nil {
		return
	}
	if err := d.inst.Flush(ctx); err != nil {
		d.log.Error("transport flush failed", "transport", d.name, "error", err)
	}
	if err := d.inst.ClosePlugin(ctx); err != nil {
		d.log.Error("transport close failed", "transport", d.name, "error", err)
	}
	d.drop(ctx)
}
