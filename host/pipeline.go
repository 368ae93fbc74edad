package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/spool"
	"github.com/logtk/logtk/internal/wasm"
)

// The Wasm pipeline is an Output: batches of records go through format
// stages (a pool of instances each, so formatting uses every core) and then
// to transports (one instance each, writing batches in the order they
// arrived). A batch leaves the pipeline only when every transport has
// written it, or it has been written to the dead-letter directory with the
// reason: a plugin that traps, hangs, exhausts its memory or returns
// garbage is replaced and the batch retried; after repeated failure the
// batch is dead-lettered and an error record says which plugin failed and
// why. Nothing is dropped.

const (
	brokenAttempts  = 3  // broken instances in a row before a batch is dead-lettered
	stoppingRetries = 5  // retryable failures tolerated once the host is stopping
	jobQueue        = 32 // batches in flight per stage
	// spoolReadAttempts is how many times a spooled batch is read before
	// it is set aside as unreadable (0.1 s, 0.2 s... apart).
	spoolReadAttempts = 4
)

type pipeline struct {
	log      hclog.Logger
	formats  map[string]*formatStage
	trans    []*transportStage
	jobs     chan *job
	deadDir  string
	report   func(level int32, msg string, attrs ...slog.Attr)
	stopping func() bool
	workers  sync.WaitGroup
	writers  sync.WaitGroup
	deadSeq  atomic.Int64
	closing  atomic.Bool
	modules  *moduleSet     // where the plugins were loaded
	loaded   []*wasm.Module // released when the pipeline closes
	lost     undelivered
}

// undelivered counts what the pipeline did not deliver.
type undelivered struct {
	deadLettered   atomic.Int64 // records written to the dead-letter directory
	logged         atomic.Int64 // records only in the host log, as text
	droppedBatches atomic.Int64 // batches a spool dropped under when_full = "drop_oldest"
}

type job struct {
	batch []byte // encoded record batch
	count int
	out   map[string][]byte // format name -> formatted batch (empty entries for dead-lettered records)
	ready chan struct{}
}

type formatStage struct {
	name string
	mod  *wasm.Module
	cfg  []byte
	pool chan *wasm.Instance // nil entries are slots for new instances
}

type transportStage struct {
	name   string
	format string
	mod    *wasm.Module
	cfg    []byte
	inst   *wasm.Instance
	q      chan *job
	nextID uint64 // batch ids handed to the plugin
	spool  *spool.Spool
	// ackTimeout: how long batches may be on their way with none
	// acknowledged before the instance is taken for broken.
	ackTimeout time.Duration
}

func newPipeline(ctx context.Context, cfg *Config, log hclog.Logger, report func(int32, string, ...slog.Attr), stopping func() bool) (_ *pipeline, err error) {
	if cfg.modules == nil {
		cfg.modules = &moduleSet{}
	}
	cfg.modules.logger = log
	p := &pipeline{log: log, formats: map[string]*formatStage{}, report: report, stopping: stopping, deadDir: cfg.DeadLetterDir, modules: cfg.modules}
	defer func() {
		if err != nil {
			cfg.modules.release(ctx, p.loaded)
		}
	}()
	if p.deadDir == "" {
		p.deadDir = "logtk-dead-letter"
	}
	workers := 1
	for _, f := range cfg.Formats {
		mod, err := cfg.modules.load(ctx, f.Plugin, f.SHA256, f.Limits, Allow{}, "format "+f.Name)
		if err != nil {
			return nil, err
		}
		p.loaded = append(p.loaded, mod)
		if mod.Info().Kind != "format" {
			return nil, fmt.Errorf("format %q: %s is a %s plugin", f.Name, f.Plugin, mod.Info().Kind)
		}
		n := f.Instances
		if n == 0 {
			n = 2
		}
		fs := &formatStage{name: f.Name, mod: mod, cfg: f.Config, pool: make(chan *wasm.Instance, n)}
		for range n {
			fs.pool <- nil
		}
		p.formats[f.Name] = fs
		workers = max(workers, n)
	}
	for _, t := range cfg.Transports {
		if _, ok := p.formats[t.Format]; !ok {
			return nil, fmt.Errorf("transport %q: no format %q", t.Name, t.Format)
		}
		// Before the module: its instances open the directories.
		for _, d := range t.Allow.Directories {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, fmt.Errorf("transport %q: granted directory: %w", t.Name, err)
			}
		}
		mod, err := cfg.modules.load(ctx, t.Plugin, t.SHA256, t.Limits, t.Allow, "transport "+t.Name)
		if err != nil {
			return nil, err
		}
		p.loaded = append(p.loaded, mod)
		if mod.Info().Kind != "transport" {
			return nil, fmt.Errorf("transport %q: %s is a %s plugin", t.Name, t.Plugin, mod.Info().Kind)
		}
		// Batch ids must never repeat across runs of the host (a receiver
		// that deduplicates by id would drop a new batch as a resend): they
		// start from the clock in nanoseconds and count up by one.
		ts := &transportStage{name: t.Name, format: t.Format, mod: mod, cfg: t.Config,
			q: make(chan *job, jobQueue), nextID: uint64(time.Now().UnixNano()), ackTimeout: t.AckTimeout}
		if ts.ackTimeout <= 0 {
			ts.ackTimeout = defaultAckTimeout
		}
		if sc := t.Spool; sc != nil {
			policy := spool.Block
			if sc.WhenFull == "drop_oldest" {
				policy = spool.DropOldest
			}
			name := t.Name
			drops := &dropReport{send: func(n, bytes int64, first, last uint64, total int64) {
				report(record.LevelError, fmt.Sprintf("transport %s: spool full (%d bytes): dropped %d batches (%d bytes, ids %d..%d) under when_full = drop_oldest; %d in all", name, sc.MaxBytes, n, bytes, first, last, total),
					slog.String("transport", name), slog.Int64("batches", n), slog.Int64("bytes", bytes),
					slog.Uint64("first_batch", first), slog.Uint64("last_batch", last), slog.Int64("dropped_total", total))
			}}
			sp, err := spool.Open(sc.Dir, spool.Options{MaxBytes: sc.MaxBytes, Policy: policy,
				OnDrop: func(d spool.Dropped) {
					// Called with the spool locked: log and count without
					// waiting. Each drop is in the host log; the records
					// reporting them are gathered (one per second at most), so
					// that under a long overload they do not crowd the records
					// they report on out of the spool.
					log.Error("spool full: dropped the oldest batch", "transport", name, "batch", d.ID, "bytes", d.Bytes)
					p.lost.droppedBatches.Add(1)
					drops.add(d)
				},
				OnWriteError: spoolTrouble(name, sc.Dir, log, report),
			})
			if err != nil {
				return nil, fmt.Errorf("transport %q: spool: %w", t.Name, err)
			}
			if n, b := sp.Len(); n > 0 {
				log.Info("resending batches spooled by an earlier run", "transport", t.Name, "batches", n, "bytes", b)
			}
			ts.spool = sp
		}
		p.trans = append(p.trans, ts)
	}
	p.jobs = make(chan *job, jobQueue)
	for range workers {
		p.workers.Add(1)
		go p.formatWorker()
	}
	for _, t := range p.trans {
		p.writers.Add(1)
		go p.transportLoop(t)
	}
	return p, nil
}

// WriteBatch implements Output. It copies the records into one encoded
// batch and queues it; it blocks while the stages are full.
func (p *pipeline) WriteBatch(records [][]byte) error {
	size := 0
	for _, r := range records {
		size += len(r) + 5
	}
	b := make([]byte, 0, size)
	for _, r := range records {
		b = entries.Append(b, r)
	}
	j := &job{batch: b, count: len(records), out: map[string][]byte{}, ready: make(chan struct{})}
	p.jobs <- j
	for _, t := range p.trans {
		t.q <- j
	}
	return nil
}

// Close implements Output: it drains every stage, flushes and closes the
// transports and releases the plugins. From here on a transport that keeps
// failing gives up after a few retries: its batches are dead-lettered, or
// stay in its spool for the next run.
func (p *pipeline) Close() error {
	p.closing.Store(true)
	// A spool whose disk keeps refusing batches must not hold the
	// shutdown: its batches are given up after a few more attempts.
	for _, t := range p.trans {
		if t.spool != nil {
			t.spool.StopRetrying()
		}
	}
	close(p.jobs)
	p.workers.Wait()
	for _, t := range p.trans {
		close(t.q)
	}
	p.writers.Wait()
	ctx := context.Background()
	for _, f := range p.formats {
		close(f.pool)
		for inst := range f.pool {
			if inst != nil {
				inst.Close(ctx)
			}
		}
	}
	// The compiled plugins go too, unless the Config still holds them.
	p.modules.release(ctx, p.loaded)
	return nil
}

func (p *pipeline) formatWorker() {
	defer p.workers.Done()
	ctx := context.Background()
	for j := range p.jobs {
		needed := map[string]bool{}
		for _, t := range p.trans {
			needed[t.format] = true
		}
		for name := range needed {
			// The output may be j.batch itself (a formatter that answers
			// "unchanged"): both are read-only from here on.
			j.out[name] = p.formatIsolating(ctx, p.formats[name], j.batch, j.count)
		}
		close(j.ready)
	}
}

// formatIsolating formats a batch; when it keeps failing, it splits the
// batch in halves until the records that fail are alone, dead-letters just
// those (an empty entry stands in for each) and formats the rest.
func (p *pipeline) formatIsolating(ctx context.Context, f *formatStage, batch []byte, count int) []byte {
	out, err := f.format(ctx, batch, count)
	if err == nil {
		return out
	}
	if count == 1 {
		p.deadLetter("format "+f.name, &job{batch: batch, count: 1}, err)
		return entries.Append(nil, nil)
	}
	half := count / 2
	var first, second []byte
	i := 0
	entries.Each(batch, func(e []byte) {
		if i < half {
			first = entries.Append(first, e)
		} else {
			second = entries.Append(second, e)
		}
		i++
	})
	return append(p.formatIsolating(ctx, f, first, half), p.formatIsolating(ctx, f, second, count-half)...)
}

// format formats a batch on a pooled instance, replacing broken instances.
//
// A batch of many records gets one attempt before formatIsolating splits
// it; a single record gets brokenAttempts, so that one flaky failure does
// not dead-letter it.
func (f *formatStage) format(ctx context.Context, batch []byte, count int) ([]byte, error) {
	var last error
	attempts := 1
	if count == 1 {
		attempts = brokenAttempts
	}
	for attempt := 0; attempt < attempts; attempt++ {
		inst := <-f.pool
		if inst == nil {
			var err error
			inst, err = f.mod.NewInstance(ctx)
			if err == nil {
				if err = inst.Configure(ctx, f.cfg); err != nil {
					inst.Close(ctx)
					inst = nil
				}
			}
			if err != nil {
				f.pool <- nil
				last = err
				continue
			}
		}
		out, err := inst.Format(ctx, batch, count)
		if err != nil {
			last = err
			if inst.Broken() {
				inst.Close(ctx)
				inst = nil
			}
			f.pool <- inst
			continue
		}
		f.pool <- inst
		return out, nil
	}
	return nil, fmt.Errorf("%d attempts failed; last: %w", attempts, last)
}

// item is one batch on its way to a transport.
type item struct {
	id      uint64
	data    []byte
	job     *job // nil for a batch read from the spool
	spooled bool
}

func (p *pipeline) transportLoop(t *transportStage) {
	defer p.writers.Done()
	ctx := context.Background()
	// Buffered, so that batches ready while the transport waits for acks
	// are taken together into its window (unbuffered, the window held one).
	items := make(chan item, maxInFlight)
	intakeDone := make(chan struct{})
	if t.spool == nil {
		go func() {
			defer close(intakeDone)
			defer close(items)
			for j := range t.q {
				<-j.ready
				t.nextID++
				items <- item{id: t.nextID, data: j.out[t.format], job: j}
			}
		}()
	} else {
		if max := t.spool.MaxID(); max >= t.nextID {
			t.nextID = max
		}
		go func() {
			defer close(intakeDone)
			for j := range t.q {
				<-j.ready
				t.nextID++
				if err := t.spool.Put(t.nextID, j.out[t.format]); err != nil {
					p.deadLetter("transport "+t.name, j, fmt.Errorf("spooling: %w", err))
				}
			}
			t.spool.CloseInput()
		}()
		go func() {
			defer close(items)
			var after uint64
			failures := 0
			for {
				id, data, err := t.spool.Next(after)
				if errors.Is(err, spool.ErrClosed) {
					return
				}
				if err != nil {
					// One file that cannot be read must not stop the
					// batches after it: tried again (the cause may pass),
					// then set aside, kept on disk and reported.
					if failures++; failures < spoolReadAttempts {
						p.log.Warn("reading a spooled batch failed; trying again", "transport", t.name, "batch", id, "attempt", failures, "error", err)
						time.Sleep(time.Duration(failures) * 100 * time.Millisecond)
						continue
					}
					failures = 0
					after = id
					path, serr := t.spool.SetAside(id)
					if serr != nil {
						err = errors.Join(err, fmt.Errorf("setting it aside: %w", serr))
					}
					n := t.spool.SetAsideCount()
					p.log.Error("a spooled batch cannot be read; set aside, not sent", "transport", t.name, "batch", id, "file", path, "set_aside_total", n, "error", err)
					p.report(record.LevelError, fmt.Sprintf("transport %s: spooled batch %d cannot be read after %d attempts; set aside as %s, not sent (%d in all): %v", t.name, id, spoolReadAttempts, path, n, err),
						slog.String("transport", t.name), slog.Uint64("batch", id), slog.String("file", path), slog.Int64("set_aside_total", n))
					continue
				}
				failures = 0
				items <- item{id: id, data: data, spooled: true}
				after = id
			}
		}()
	}
	if p.deliver(ctx, t, items) {
		// Gave up at shutdown: what is still coming is kept, in the spool
		// (without waiting for room nobody will make now) or the
		// dead-letter directory.
		if t.spool != nil {
			n, b := t.spool.Len()
			p.log.Warn("stopping with batches in the spool; the next run sends them", "transport", t.name, "batches", n, "bytes", b)
			t.spool.Unbound()
		}
		for it := range items {
			if !it.spooled {
				p.deadLetter("transport "+t.name, it.job, errors.New("the destination still failed at shutdown"))
			}
		}
	}
	<-intakeDone
	if t.spool != nil {
		t.spool.Close()
		if n, b := t.spool.Len(); n > 0 {
			p.report(record.LevelWarn, fmt.Sprintf("transport %s: %d batches (%d bytes) wait in the spool for the next run", t.name, n, b))
		}
	}
	if t.inst != nil {
		if err := t.inst.Flush(ctx); err != nil {
			p.log.Error("transport flush failed", "transport", t.name, "error", err)
		}
		if err := t.inst.ClosePlugin(ctx); err != nil {
			p.log.Error("transport close failed", "transport", t.name, "error", err)
		}
		t.inst.Close(ctx)
		t.inst = nil
	}
}

// done and failed settle a batch: delivered, or dead-lettered.
func (p *pipeline) done(t *transportStage, it item) {
	if it.spooled {
		if err := t.spool.Remove(it.id); err != nil {
			p.log.Error("removing a delivered batch from the spool failed; it may be sent again", "transport", t.name, "batch", it.id, "error", err)
		}
	}
}

func (p *pipeline) failed(t *transportStage, it item, err error) {
	if it.job != nil {
		p.deadLetter("transport "+t.name, it.job, err)
	} else {
		p.deadLetterBytes("transport "+t.name, it.data, -1, err)
	}
	p.done(t, it)
}

// maxInFlight is how many batches an asynchronous transport (one that
// exports logtk_poll) may have on their way at once.
const maxInFlight = 32

// pollWait bounds one logtk_poll call.
const pollWait = 500 * time.Millisecond

// pollIdle is how long the host waits before polling again a transport
// whose logtk_poll returned at once with nothing (instead of waiting for
// acknowledgements as it may): without it the host would spin on a core.
const pollIdle = 5 * time.Millisecond

// idlePollEvery is how often the host polls an asynchronous transport that
// has nothing on its way, for at most idlePollWait, so that it can keep a
// quiet connection alive (the network transport answers the log server's
// PINGs then).
const (
	idlePollEvery = time.Second
	idlePollWait  = 20 * time.Millisecond
)

// defaultAckTimeout is TransportConfig.AckTimeout's default.
const defaultAckTimeout = 60 * time.Second

// deliver hands the items to the transport in order and settles each one.
// A synchronous transport takes one batch at a time; an asynchronous one
// up to maxInFlight, acknowledged through logtk_poll. Broken instances are
// replaced (the oldest batch is set aside after brokenAttempts in a row),
// retryable failures are retried with backoff (without end while running,
// stoppingRetries times once stopping), a batch the plugin refuses is
// dead-lettered. On a failure every unacknowledged batch is sent again, in
// order, with its id (the receiver drops what it already has). A
// transport that acknowledges nothing for t.ackTimeout while batches are
// on their way is taken for broken (replaced, and its oldest batch set
// aside after brokenAttempts rounds), so that a plugin that only ever
// answers "pending" can neither hold the pipeline for ever nor keep the
// host from stopping. It returns true if it gave up at shutdown, leaving
// items unread.
func (p *pipeline) deliver(ctx context.Context, t *transportStage, items <-chan item) (gaveUp bool) {
	// A synchronous transport is the same loop with a window of one: its
	// logtk_write either delivers the batch or fails.
	window := make([]item, 0, maxInFlight)
	limit := 1
	if t.mod.Exports("logtk_poll") {
		limit = maxInFlight
	}
	closed := false
	// quiet: since when batches have been on their way with none
	// acknowledged and no failure reported.
	var quiet time.Time
	retries, broken := 0, 0
	delay := 10 * time.Millisecond
	// retry handles a failure: true to resend the window, false to give up.
	retry := func(err error) bool {
		quiet = time.Time{} // a failure is an answer: the window goes again
		var ce *wasm.CallError
		if errors.As(err, &ce) && ce.Retryable() {
			retries++
			p.log.Debug("transport failed", "transport", t.name, "attempt", retries, "in_flight", len(window), "error", err)
			if retries == 1 || retries%100 == 0 {
				p.log.Warn("transport failed; resending what is on its way", "transport", t.name, "attempt", retries, "in_flight", len(window), "error", err)
				p.report(record.LevelWarn, fmt.Sprintf("transport %s failed (attempt %d); resending the %d batches on their way: %v", t.name, retries, len(window), err),
					slog.String("transport", t.name), slog.Int("attempt", retries), slog.Int("in_flight", len(window)), slog.String("error", err.Error()))
			}
		} else {
			broken++
			if t.inst != nil {
				t.inst.Close(ctx)
				t.inst = nil
			}
			p.log.Error("transport instance failed; replacing it", "transport", t.name, "attempt", broken, "error", err)
			p.report(record.LevelError, fmt.Sprintf("transport %s: its plugin instance failed (attempt %d); replacing it: %v", t.name, broken, err),
				slog.String("transport", t.name), slog.Int("attempt", broken), slog.String("error", err.Error()))
			if broken >= brokenAttempts && len(window) > 0 {
				// The oldest batch may be what breaks it: set it aside.
				p.failed(t, window[0], fmt.Errorf("%d attempts failed; last: %w", broken, err))
				window = window[1:]
				broken = 0
			}
		}
		if (p.stopping() || p.closing.Load()) && retries+broken > stoppingRetries {
			for _, it := range window {
				if !it.spooled {
					p.failed(t, it, err)
				}
			}
			window = nil
			return false
		}
		// Backoff between delivery attempts, with jitter, so that a
		// fleet of hosts does not reconnect in step after a server restart.
		time.Sleep(delay/2 + rand.N(delay/2+1))
		delay = min(delay*2, 5*time.Second)
		return true
	}
	// send writes window[from:] in order; it returns the first error.
	send := func(from int) error {
		if err := t.ensure(ctx); err != nil {
			return err
		}
		for i := from; i < len(window); i++ {
			pending, err := t.inst.Write(ctx, window[i].id, window[i].data)
			if err != nil {
				var ce *wasm.CallError
				if errors.As(err, &ce) && !ce.Broken && !ce.Retryable() {
					// The plugin says this batch cannot be written.
					p.failed(t, window[i], err)
					window = append(window[:i], window[i+1:]...)
					i--
					continue
				}
				return err
			}
			if !pending {
				p.done(t, window[i])
				window = append(window[:i], window[i+1:]...)
				i--
			}
		}
		return nil
	}
	// resend handles err (nil: nothing to do) with retry and sends the
	// window again until that succeeds; false when retry gives up.
	resend := func(err error) bool {
		for err != nil {
			if !retry(err) {
				return false
			}
			err = send(0)
		}
		return true
	}
	for !closed || len(window) > 0 {
		// Take what is ready, up to the limit, and send it.
		from := len(window)
	fill:
		for !closed && len(window) < limit {
			var it item
			var ok bool
			if len(window) == 0 {
				it, ok = p.nextIdle(ctx, t, items)
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
			window = append(window, it)
		}
		if !resend(send(from)) {
			return true
		}
		if len(window) == 0 {
			continue
		}
		polled := time.Now()
		ids, err := t.inst.Poll(ctx, pollWait)
		for err != nil {
			if !retry(err) {
				return true
			}
			err = send(0)
			if err == nil && len(window) > 0 {
				polled = time.Now()
				ids, err = t.inst.Poll(ctx, pollWait)
			}
		}
		if len(ids) > 0 {
			if retries+broken > 0 {
				p.log.Info("transport delivers again", "transport", t.name, "failed_attempts", retries+broken)
				p.report(record.LevelInfo, fmt.Sprintf("transport %s delivers again after %d failed attempts", t.name, retries+broken),
					slog.String("transport", t.name), slog.Int("failed_attempts", retries+broken))
			}
			retries, broken, delay = 0, 0, 10*time.Millisecond
			quiet = time.Time{}
		} else if len(window) > 0 {
			switch {
			case quiet.IsZero():
				quiet = polled
			case time.Since(quiet) > t.ackTimeout:
				quiet = time.Time{}
				err := fmt.Errorf("transport %s acknowledged none of its %d batches on their way for %s (ack_timeout)", t.name, len(window), t.ackTimeout)
				if p.stopping() || p.closing.Load() {
					p.log.Error("giving up on unacknowledged batches at shutdown", "transport", t.name, "batches", len(window), "error", err)
					for _, it := range window {
						if !it.spooled {
							p.failed(t, it, err)
						}
					}
					return true
				}
				// As a broken instance: replaced, the window sent again.
				if !resend(err) {
					return true
				}
				continue
			}
			if time.Since(polled) < pollWait/2 {
				time.Sleep(pollIdle) // it answered at once with nothing
			}
		}
		for _, id := range ids {
			for i, it := range window {
				if it.id == id {
					p.done(t, it)
					window = append(window[:i], window[i+1:]...)
					break
				}
			}
		}
	}
	return false
}

// nextIdle waits for the next item while nothing is on its way, polling
// an asynchronous transport's instance every idlePollEvery meanwhile (its
// answer is only that it is alive: a failure drops a broken instance,
// which the next batch replaces, and is otherwise the plugin's business).
func (p *pipeline) nextIdle(ctx context.Context, t *transportStage, items <-chan item) (item, bool) {
	if t.inst == nil || !t.inst.Async() {
		it, ok := <-items
		return it, ok
	}
	tick := time.NewTimer(idlePollEvery)
	defer tick.Stop()
	for {
		select {
		case it, ok := <-items:
			return it, ok
		case <-tick.C:
		}
		if _, err := t.inst.Poll(ctx, idlePollWait); err != nil {
			var ce *wasm.CallError
			if errors.As(err, &ce) && ce.Broken {
				p.log.Warn("idle transport instance failed; the next batch replaces it", "transport", t.name, "error", err)
				t.inst.Close(ctx)
				t.inst = nil
				it, ok := <-items
				return it, ok
			}
			p.log.Debug("idle transport reported a failure", "transport", t.name, "error", err)
		}
		tick.Reset(idlePollEvery)
	}
}

// ensure makes a configured, opened transport instance.
func (t *transportStage) ensure(ctx context.Context) error {
	if t.inst != nil {
		return nil
	}
	inst, err := t.mod.NewInstance(ctx)
	if err != nil {
		return err
	}
	if err := inst.Configure(ctx, t.cfg); err != nil {
		inst.Close(ctx)
		return err
	}
	if err := inst.Open(ctx); err != nil {
		inst.Close(ctx)
		return err
	}
	t.inst = inst
	return nil
}

// deadLetter writes a batch a stage could not process to the dead-letter
// directory, with the reason beside it, and reports it. If even that fails
// the records go to the host log as text.
func (p *pipeline) deadLetter(stage string, j *job, cause error) {
	p.deadLetterBytes(stage, j.batch, j.count, cause)
}

// deadLetterBytes dead-letters a batch: encoded records (count >= 0) or,
// with count -1, a formatted batch taken from a spool.
func (p *pipeline) deadLetterBytes(stage string, batch []byte, count int, cause error) error {
	j := &job{batch: batch, count: count}
	what := "uvarint length + logtk.v1.Record, repeated"
	if count < 0 {
		j.count, _ = entries.Count(batch)
		what = "uvarint length + formatted record, repeated (from the transport's spool)"
	}
	n := p.deadSeq.Add(1)
	base := filepath.Join(p.deadDir, fmt.Sprintf("%d-%d", time.Now().UnixNano(), n))
	reason := fmt.Sprintf("stage: %s\nrecords: %d\ntime: %s\nerror: %v\nformat: logtk batch (%s)\n",
		stage, j.count, time.Now().UTC().Format(time.RFC3339Nano), cause, what)
	err := os.MkdirAll(p.deadDir, 0o755)
	if err == nil {
		err = writeFileSync(base+".batch", j.batch)
	}
	if err == nil {
		err = writeFileSync(base+".reason", []byte(reason))
	}
	if err != nil {
		p.lost.logged.Add(int64(j.count))
		p.log.Error("dead-lettering failed; records follow in this log", "stage", stage, "error", err)
		entries.Each(j.batch, func(e []byte) {
			if count < 0 {
				p.log.Error("undelivered record", "formatted", string(e))
			} else {
				p.log.Error("undelivered record", "record", string(renderText(e)))
			}
		})
		return err
	}
	p.lost.deadLettered.Add(int64(j.count))
	p.log.Error("plugin failed; batch dead-lettered", "stage", stage, "records", j.count, "file", base+".batch", "error", cause)
	if count >= 0 && onlyReports(j.batch) {
		return nil // a report about a report would loop while the plugin stays broken
	}
	p.report(record.LevelError, fmt.Sprintf("%s failed; %d records dead-lettered to %s: %v", stage, j.count, base+".batch", cause),
		slog.String("stage", stage), slog.Int("records", j.count), slog.String("file", base+".batch"))
	return nil
}

func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

// reportLogger names the records the pipeline writes about itself.
const reportLogger = "logtk.pipeline"

func onlyReports(batch []byte) bool {
	all := true
	entries.Each(batch, func(e []byte) {
		var v record.View
		v.Parse(e)
		all = all && string(v.Logger) == reportLogger
	})
	return all
}

// spoolTrouble reports a spool whose disk refuses batches: once when it
// starts (and every minute while it lasts, in the host log), once when it
// ends. Meanwhile the transport's intake waits, and with it the workers.
func spoolTrouble(name, dir string, log hclog.Logger, report func(int32, string, ...slog.Attr)) func(int, error) {
	var since time.Time
	return func(attempt int, err error) {
		switch {
		case err == nil:
			log.Info("the spool takes batches again", "transport", name, "dir", dir, "attempts", attempt, "after", time.Since(since).Round(time.Millisecond))
			report(record.LevelWarn, fmt.Sprintf("transport %s: the spool in %s takes batches again after %s; records were held, none lost", name, dir, time.Since(since).Round(time.Millisecond)),
				slog.String("transport", name), slog.String("dir", dir))
		case attempt == 1:
			since = time.Now()
			log.Error("the spool cannot write a batch; holding records until it can", "transport", name, "dir", dir, "error", err)
			report(record.LevelError, fmt.Sprintf("transport %s: the spool in %s cannot write a batch (%v); records are held, and the workers slowed, until it can", name, dir, err),
				slog.String("transport", name), slog.String("dir", dir), slog.String("error", err.Error()))
		case attempt%60 == 0:
			log.Error("the spool still cannot write a batch", "transport", name, "dir", dir, "attempts", attempt, "for", time.Since(since).Round(time.Second), "error", err)
		}
	}
}

// dropReport gathers a spool's drops into at most one report per
// dropReportEvery.
type dropReport struct {
	mu          sync.Mutex
	n, bytes    int64
	first, last uint64
	total       int64
	pending     bool
	send        func(n, bytes int64, first, last uint64, total int64)
}

const dropReportEvery = time.Second

func (d *dropReport) add(x spool.Dropped) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == 0 {
		d.first = x.ID
	}
	d.n++
	d.total++
	d.bytes += x.Bytes
	d.last = x.ID
	if !d.pending {
		d.pending = true
		time.AfterFunc(dropReportEvery, d.flush)
	}
}

func (d *dropReport) flush() {
	d.mu.Lock()
	n, bytes, first, last, total := d.n, d.bytes, d.first, d.last, d.total
	d.n, d.bytes, d.pending = 0, 0, false
	d.mu.Unlock()
	if n > 0 {
		d.send(n, bytes, first, last, total)
	}
}
