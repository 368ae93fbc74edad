// Package host runs and supervises worker processes and routes every log
// record they produce to an Output, losing none.
//
// # Lifecycle
//
//	cfg, err := config.Load("plugins.hcl")     // parse and check; no I/O beyond reading files
//	h, err := host.New(cfg, host.Options{...})  // validate, compile the plugins; starts nothing
//	err = h.Start()                             // start every worker instance
//	h.Send(host.WorkerID{"web", 0}, payload)    // talk to workers while running
//	<-h.Done()                                  // all instances ended for good, or...
//	err = h.Stop(ctx)                           // ...stop: idempotent, drains and flushes
//
// # Guarantees
//
// A record a worker's SDK call returned from reaches the Output, and so does
// every line the worker wrote to stdout and stderr, including when the worker
// panics, exits or is killed: when an instance ends the host first reads its
// IPC channel and output pipes to their end (bounded by DrainTimeout), then
// emits one record describing the exit, with the panic message and goroutine
// trace the worker printed. Records of one instance reach the Output in the
// order the host received them, numbered by a sequence that increases by
// exactly one per record (Record.seq). A slow Output slows the workers
// (back-pressure through the channel); it never drops records.
//
// Worker processes never outlive the host: each leads its own process group,
// which Stop signals and then kills, and each is started with SIGKILL as its
// parent-death signal, so a host that is itself killed takes them along.
package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/metrics"
	"github.com/logtk/logtk/internal/pipeline"
	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/record"
)

// Output receives every record the host routes.
//
// The host calls WriteBatch from one goroutine at a time. Each element of
// records is one encoded logtk.v1.Record, valid only during the call.
// Records of one worker instance arrive in order. If WriteBatch returns an
// error the host retries the same batch with backoff; an Output that cannot
// take a record must say so rather than drop it. Close is called once,
// after the last WriteBatch.
type Output interface {
	WriteBatch(records [][]byte) error
	Close() error
}

// WorkerID names one worker instance.
type WorkerID struct {
	Name  string // worker block name
	Index int    // 0..count-1
}

func (id WorkerID) String() string { return fmt.Sprintf("%s#%d", id.Name, id.Index) }

// Options configure a Host. The zero value is valid.
type Options struct {
	// Output receives the records. Default: NewConsoleOutput(os.Stdout).
	Output Output
	// OnMessage receives the custom messages workers send with sdk.Send.
	// It runs on the goroutine reading that worker's channel: while it
	// runs, that worker's records wait (others are unaffected). Default:
	// messages are logged at debug level and discarded.
	OnMessage func(from WorkerID, payload []byte)
	// Metrics, when set, gets the host's metrics registered with it
	// (docs/metrics.md): its workers, what it routed and did not
	// deliver, its spools, and its pipeline's plugin calls and
	// deliveries. Default: none.
	Metrics prometheus.Registerer
	// Logger receives the host's own diagnostics (not worker records).
	// Default: an hclog logger named "logtk-host" writing to stderr.
	Logger hclog.Logger
	// BatchSize is the most records handed to Output in one call.
	// Default 512. A batch is what is queued when the output is ready,
	// up to this size: the host never waits to fill one, so batching adds
	// no latency when the load is light and grows the batches when it is
	// heavy.
	BatchSize int
	// QueueSize bounds the records waiting for the Output; when it is full
	// the workers wait. Records are queued in batches (all the records a
	// worker's ring held, or one stdout line): the queue holds
	// QueueSize/BatchSize batches (at least one) of at most BatchSize
	// records. Default 8192.
	QueueSize int
}

// Host supervises the workers of one Config. Its methods are safe for
// concurrent use.
type Host struct {
	opts Options
	log  hclog.Logger
	// instMu guards the instances (Scale adds and removes them) and the
	// count of their live goroutines; when it falls to zero the host has
	// ended (allEnded).
	instMu    sync.Mutex
	instances []*instance
	byID      map[WorkerID]*instance
	workers   map[string]*config.WorkerConfig // by block name
	live      int
	ended     bool
	allEnded  chan struct{}

	queue    chan queued
	free     chan [][]byte // emptied batches, for the next ones
	stopping chan struct{}
	stopOnce sync.Once
	started  atomic.Bool
	done     chan struct{}
	outErr   error

	// Records the host writes about itself (not about a worker).
	selfMu      sync.Mutex
	selfSeq     uint64
	queueShut   bool
	selfDropped int
	// selfWaiting holds, in seq order, the host's records that found the
	// queue full (the reports of a transport's trouble come when it is):
	// the output loop takes them with its next batch. waitMu guards it
	// alone, so that the loop never waits on selfMu, which a sender
	// waiting for room in the queue holds.
	waitMu      sync.Mutex
	selfWaiting [][]byte
	nWaiting    atomic.Int32

	taps taps // readers of the records (tap.go)

	// The durable ingest (durable.go): nil without a runtime directory.
	state *stateDir
	// durable: the configuration turns the durable ingest on (state is
	// then set once New has opened it).
	durable bool
	settle  settler

	// The output, replaced by a reload (reload.go) between batches.
	outMu    sync.Mutex
	output   Output
	pastLost pipeline.Lost // of the pipelines replaced
	// pastStages holds, by stage name, what the pipelines a reload
	// replaced delivered and dead-lettered: a stage's counts in status
	// go on across its replacement.
	pastStages map[string]pipeline.StageStatus
	swaps      chan outputSwap   // to runOutput
	stages     stageConfig       // what the current pipeline runs
	ownOutput  bool              // built from the configuration (else Options.Output)
	pm         *metrics.Pipeline // the pipelines' metrics, shared across reloads
	reloadMu   sync.Mutex        // one reload at a time
	routed     atomic.Int64      // records handed to the Output

	logged         atomic.Int64 // records the Output never took, only in the host log
	abandonedRings atomic.Int64 // rings abandoned because their worker broke them
}

// Undelivered counts the records a Host did not deliver to its
// transports. Each is also in the host log with the reason.
type Undelivered struct {
	// DeadLettered records were written to the dead-letter directory,
	// each batch beside a .reason file.
	DeadLettered int64
	// Logged records reached only the host's own log, as text (the
	// dead-letter directory could not be written either, or the Output
	// still failed at shutdown).
	Logged int64
	// DroppedBatches were dropped by a spool under when_full =
	// "drop_oldest".
	DroppedBatches int64
	// SetAsideBatches were spooled but could not be read back: kept on
	// disk as *.batch.unreadable, not sent.
	SetAsideBatches int64
	// AbandonedRings is how many workers' shared-memory rings the host
	// abandoned because the worker broke them: what was still in them is
	// lost.
	AbandonedRings int64
}

// Any reports whether anything was not delivered.
func (u Undelivered) Any() bool {
	return u.DeadLettered > 0 || u.Logged > 0 || u.DroppedBatches > 0 || u.SetAsideBatches > 0 || u.AbandonedRings > 0
}

// GaveUp returns the instances the host stopped restarting because they
// crashed max_restarts times within restart_window.
func (h *Host) GaveUp() []WorkerID {
	var ids []WorkerID
	for _, in := range h.instanceList() {
		in.mu.Lock()
		if in.gaveUp {
			ids = append(ids, in.id)
		}
		in.mu.Unlock()
	}
	return ids
}

// Undelivered returns what the host has not delivered so far. After Stop
// (or Done) it is final.
func (h *Host) Undelivered() Undelivered {
	h.selfMu.Lock()
	selfDropped := int64(h.selfDropped)
	h.selfMu.Unlock()
	// A record the host wrote about itself and could not queue is in the
	// host log only.
	u := Undelivered{Logged: h.logged.Load() + selfDropped, AbandonedRings: h.abandonedRings.Load()}
	h.outMu.Lock()
	l := h.pastLost // of the pipelines a reload replaced
	out := h.output
	h.outMu.Unlock()
	if p, ok := out.(*pipeline.Pipeline); ok {
		l = addLost(l, p.Lost())
	}
	u.DeadLettered, u.DroppedBatches, u.SetAsideBatches = l.DeadLettered, l.DroppedBatches, l.SetAsideBatches
	u.Logged += l.Logged
	return u
}

// New checks cfg and returns a Host ready to Start.
func New(cfg *config.Config, opts Options) (*Host, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "logtk-host", Output: os.Stderr, Level: hclog.Info})
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 512
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 8192
	}
	h := &Host{
		opts:     opts,
		log:      opts.Logger,
		byID:     map[WorkerID]*instance{},
		queue:    make(chan queued, max(1, opts.QueueSize/opts.BatchSize)),
		free:     make(chan [][]byte, 64),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
		workers:  map[string]*config.WorkerConfig{},
		allEnded: make(chan struct{}),
		swaps:    make(chan outputSwap),
	}
	if opts.Metrics != nil {
		if err := opts.Metrics.Register(hostCollector{h}); err != nil {
			return nil, fmt.Errorf("host: metrics: %w", err)
		}
		h.pm = metrics.NewPipeline(opts.Metrics)
	}
	h.stages = stagesOf(cfg)
	h.durable = cfg.RuntimeDir != "" && (cfg.DurableIngest == nil || *cfg.DurableIngest)
	h.ownOutput = opts.Output == nil
	h.output = opts.Output
	if h.ownOutput {
		out, err := h.newOutput(h.stages)
		if err != nil {
			return nil, err
		}
		h.output = out
	}
	if h.durable {
		sd, err := openStateDir(cfg.RuntimeDir, h.log.Named("durable").Error)
		if err != nil {
			if c, ok := h.output.(interface{ Close() error }); ok && h.ownOutput {
				c.Close()
			}
			return nil, fmt.Errorf("host: %w", err)
		}
		h.state = sd
	}
	names := map[string]bool{}
	for i := range cfg.Workers {
		w := cfg.Workers[i] // copy: the host owns its configuration
		w.SetDefaults()
		if err := w.Validate(); err != nil {
			return nil, err
		}
		if names[w.Name] {
			return nil, fmt.Errorf("duplicate worker name %q", w.Name)
		}
		names[w.Name] = true
		h.workers[w.Name] = &w
		for idx := range w.Count {
			h.addInstance(&w, idx)
		}
	}
	return h, nil
}

// Start starts every worker instance. It returns an error only if the Host
// was already started; a worker that fails to start is reported as a record
// and handled by its restart policy.
func (h *Host) Start() error {
	if !h.started.CompareAndSwap(false, true) {
		return errors.New("host: already started")
	}
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		h.runOutput()
	}()
	if h.state != nil {
		// What a host that died left is queued before anything new,
		// but for what the spools show was settled.
		if p, ok := h.currentOutput().(*pipeline.Pipeline); ok {
			for m, seq := range p.Spooled() {
				h.state.floor[WorkerID{m.Worker, int(m.Index)}] = seq
			}
		}
		leftovers := h.state.leftovers()
		if p, ok := h.currentOutput().(*pipeline.Pipeline); ok {
			// What a dead host left is numbered first (not queued), so
			// that the transports' marks are checked against every seq
			// it may have given.
			for _, id := range leftovers {
				h.state.recover(id)
			}
			p.Vouch(h.state.numberedNow())
			// Seqs go on above what a transport holds even when an
			// instance's journal is gone (a runtime directory in memory
			// after a reboot): a transport drops what its marks name. Only
			// then do the workers wait for the transports to say.
			if h.lostCount(leftovers) {
				for m, seq := range p.Held(heldWait) {
					h.state.seqFloor[WorkerID{m.Worker, int(m.Index)}] = seq
				}
			}
		}
		for _, id := range leftovers {
			h.openStream(id)
		}
	}
	h.instMu.Lock()
	for _, in := range h.instances {
		h.launchLocked(in)
	}
	if h.live == 0 {
		h.ended = true
		close(h.allEnded)
	}
	h.instMu.Unlock()
	go h.sampleRates()
	go func() {
		<-h.allEnded
		h.shutQueue()
		<-outDone
		if h.state != nil {
			h.state.close()
		}
		h.taps.mu.Lock() // no new tap from here on
		close(h.done)
		h.taps.mu.Unlock()
		h.closeTaps()
	}()
	return nil
}

// Done is closed when every instance has ended for good (by its restart
// policy, its crash-loop limit or Stop) and every record has been handed to
// the Output and the Output closed.
func (h *Host) Done() <-chan struct{} { return h.done }

// Stop stops the host: no more restarts; each running instance gets its stop
// signal, then SIGKILL after its StopTimeout; their channels and pipes are
// drained, the Output is flushed and closed. Stop waits for all of that or
// for ctx; when ctx ends first every remaining process group is killed at
// once and Stop still waits for the drain (itself bounded by each worker's
// DrainTimeout). Stop may be called any number of times, concurrently; every
// call returns the Output's close error, if any.
func (h *Host) Stop(ctx context.Context) error {
	h.stopOnce.Do(func() {
		close(h.stopping)
		if !h.started.Load() {
			h.started.Store(true)
			h.shutQueue()
			h.currentOutput().Close()
			if h.state != nil {
				h.state.close()
			}
			h.taps.mu.Lock()
			close(h.done)
			h.taps.mu.Unlock()
			h.closeTaps()
		}
	})
	select {
	case <-h.done:
	case <-ctx.Done():
		for _, in := range h.instanceList() {
			in.kill()
		}
		<-h.done
	}
	return h.outErr
}

func (h *Host) isStopping() bool {
	select {
	case <-h.stopping:
		return true
	default:
		return false
	}
}

// Send sends a custom message to a running worker instance, which receives
// it through sdk.OnMessage. It fails if the instance is not running or its
// program does not speak the IPC protocol.
func (h *Host) Send(id WorkerID, payload []byte) error {
	in, err := h.instance(id)
	if err != nil {
		return err
	}
	return in.send(payload)
}

// Workers returns the ids of all worker instances.
func (h *Host) Workers() []WorkerID {
	list := h.instanceList()
	ids := make([]WorkerID, len(list))
	for i, in := range list {
		ids[i] = in.id
	}
	return ids
}

// queued is what goes through the queue: records, and what is settled
// once they are.
type queued struct {
	recs [][]byte
	mark mark
}

// enqueue hands finished records (at most BatchSize) to the output stage,
// waiting while the queue is full. The slice belongs to the queue.
func (h *Host) enqueue(recs [][]byte, m mark) { h.queue <- queued{recs, m} }

// getBatch returns an empty batch to fill, reusing one runOutput emptied.
func (h *Host) getBatch() [][]byte {
	select {
	case b := <-h.free:
		return b
	default:
		return make([][]byte, 0, 64)
	}
}

// putBatch recycles a batch whose records were copied out.
func (h *Host) putBatch(b [][]byte) {
	clear(b) // the records may be collected
	select {
	case h.free <- b[:0]:
	default:
	}
}

// runOutput hands the queued records to the Output in batches of at most
// BatchSize, as soon as no more are waiting: light load is not delayed,
// heavy load makes large batches.
func (h *Host) runOutput() {
	out := h.currentOutput()
	batch := make([][]byte, 0, h.opts.BatchSize)
	var marks []mark // of the records in batch
	write := func() {
		h.writeBatch(out, batch, spoolMarks(marks))
		h.settle.given(out, marks)
		batch, marks = batch[:0], marks[:0]
	}
	for {
		var q queued
		var ok bool
		// A reload's swap is taken only between batches, with none
		// held: everything taken so far has gone to the old output,
		// which drains as it closes; what comes next goes to the new
		// one. No record reaches both, none neither.
		var swaps chan outputSwap
		if len(batch) == 0 {
			swaps = h.swaps
		}
		select {
		case q, ok = <-h.queue:
		case sw := <-swaps:
			out = h.swapOutput(out, sw)
			continue
		}
		if !ok {
			break
		}
		recs := q.recs
		if len(batch)+len(recs) > h.opts.BatchSize && len(batch) > 0 {
			write()
		}
		batch = append(batch, recs...)
		if recs != nil {
			h.putBatch(recs)
		}
		batch = h.takeSelfWaiting(batch)
		if q.mark != (mark{}) {
			marks = append(marks, q.mark)
		}
		if len(batch) == 0 && len(marks) > 0 {
			// Only marks: settled with everything given so far.
			h.settle.given(nil, marks)
			marks = marks[:0]
		} else if len(batch) > 0 && (len(h.queue) == 0 || len(batch) >= h.opts.BatchSize) {
			write()
		}
	}
	// The queue is shut: no record of the host's joins the waiting ones
	// now.
	if batch = h.takeSelfWaiting(batch); len(batch) > 0 {
		write()
	}
	if len(marks) > 0 {
		h.settle.given(nil, marks)
	}
	if err := out.Close(); err != nil {
		h.log.Error("closing the output failed", "error", err)
		h.outErr = err
	}
	h.settle.closed(out)
}

// writeBatch retries a failing Output with backoff. Once the host is
// stopping it gives up after a few attempts and writes the batch to its own
// log as text, so that even then no record disappears silently.
func (h *Host) writeBatch(out Output, batch [][]byte, marks []pipeline.Mark) {
	h.tapBatch(batch)
	h.routed.Add(int64(len(batch)))
	delay := 10 * time.Millisecond
	p, _ := out.(*pipeline.Pipeline)
	for attempt := 1; ; attempt++ {
		var err error
		if p != nil && marks != nil {
			err = p.WriteBatchMarked(batch, marks)
		} else {
			err = out.WriteBatch(batch)
		}
		if err == nil {
			return
		}
		h.log.Error("output failed; retrying", "attempt", attempt, "records", len(batch), "error", err)
		if h.isStopping() && attempt >= 5 {
			h.log.Error("output still failing at shutdown; writing the batch to the host log", "records", len(batch))
			h.logged.Add(int64(len(batch)))
			for _, r := range batch {
				h.log.Error("undelivered record", "record", string(renderText(r)))
			}
			return
		}
		time.Sleep(delay) // backoff between attempts, not synchronisation
		delay = min(delay*2, 5*time.Second)
	}
}

func (h *Host) shutQueue() {
	h.selfMu.Lock()
	h.queueShut = true
	close(h.queue)
	h.selfMu.Unlock()
}

// selfRecord queues a record the host writes about itself (logger
// logtk.pipeline). It never blocks: the same message is always in the host
// log; when the queue is full the record waits beside it for the output
// loop (selfWaiting), and once the queue is shut only the log has it.
func (h *Host) selfRecord(level int32, msg string, attrs ...slog.Attr) {
	h.queueSelf(false, level, msg, attrs...)
}

// queueSelf is selfRecord; with wait it waits for room in the queue.
func (h *Host) queueSelf(wait bool, level int32, msg string, attrs ...slog.Attr) {
	b := irecord.AppendHead(nil, time.Now(), level, msg, pipeline.ReportLogger)
	for _, a := range attrs {
		b = irecord.AppendAttr(b, a)
	}
	h.selfMu.Lock()
	defer h.selfMu.Unlock()
	if h.queueShut {
		return
	}
	h.selfSeq++
	b = irecord.AppendStamp(b, &irecord.Stamp{PID: int64(os.Getpid()), Seq: h.selfSeq, Source: record.SourceHost, Received: time.Now()})
	h.waitMu.Lock()
	if len(h.selfWaiting) > 0 { // after those, in seq order
		if wait || len(h.selfWaiting) < maxSelfWaiting {
			h.selfWaiting = append(h.selfWaiting, b)
			h.nWaiting.Store(int32(len(h.selfWaiting)))
		} else {
			h.selfDropped++
		}
		h.waitMu.Unlock()
		return
	}
	h.waitMu.Unlock()
	if wait {
		h.queue <- queued{recs: [][]byte{b}}
		return
	}
	select {
	case h.queue <- queued{recs: [][]byte{b}}:
	default:
		h.waitMu.Lock()
		h.selfWaiting = append(h.selfWaiting, b)
		h.nWaiting.Store(int32(len(h.selfWaiting)))
		h.waitMu.Unlock()
		// An empty item wakes an output loop that drained the queue
		// meanwhile; if the queue is still full, an item it takes later
		// does.
		select {
		case h.queue <- queued{}:
		default:
		}
	}
}

// maxSelfWaiting bounds the host's records waiting beside a full queue;
// past it they are in the host log only (and counted as such).
const maxSelfWaiting = 4096

// takeSelfWaiting appends the host's records that found the queue full
// to batch.
func (h *Host) takeSelfWaiting(batch [][]byte) [][]byte {
	if h.nWaiting.Load() == 0 {
		return batch
	}
	h.waitMu.Lock()
	batch = append(batch, h.selfWaiting...)
	clear(h.selfWaiting)
	h.selfWaiting = h.selfWaiting[:0]
	h.nWaiting.Store(0)
	h.waitMu.Unlock()
	return batch
}
