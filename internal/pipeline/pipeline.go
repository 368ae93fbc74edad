// Package pipeline runs the Wasm stages every record goes through after
// the host (or the log server's store) has it: format stages, then
// transports. It is a host.Output.
//
// The way of a batch:
//
//	WriteBatch ─► format stage (a pool of instances per format block; format.go)
//	           └► per transport: intake (straight, or through its spool; transport.go)
//	                 ─► delivery (window, retries, ack timeout; delivery.go)
//	                 ─► settled: delivered, or dead-lettered (deadletter.go)
//
// # Guarantees
//
// A batch leaves the pipeline only when every transport has written it,
// or it has been written to the dead-letter directory with the reason. A
// plugin that traps, hangs, exhausts its memory or returns garbage is
// replaced and the batch retried; after repeated failure the batch is
// dead-lettered and a report record says which plugin failed and why. A
// transport writes batches in the order they arrived, each with an id
// that never repeats across runs of the host, so a receiver can drop what
// it already has when batches are sent again. Nothing is dropped, except
// by a spool configured to (when_full = "drop_oldest"), and that is
// counted and reported.
//
// The pipeline compiles the plugins its Options name and owns them: Close
// releases them.
package pipeline

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/internal/kafka"
	"github.com/logtk/logtk/internal/marks"
	"github.com/logtk/logtk/internal/metrics"
	"github.com/logtk/logtk/internal/wasm"
	"github.com/logtk/logtk/record"
)

// Options configure a Pipeline. Report and Stopping may be nil.
type Options struct {
	// Formats and Transports are the stages; each transport names a
	// format. At least one transport.
	Formats    []config.FormatConfig
	Transports []config.TransportConfig
	// DeadLetterDir receives what a stage could not process. Default
	// "logtk-dead-letter" in the working directory.
	DeadLetterDir string
	// Logger receives the pipeline's log and its plugins' output, each
	// plugin under its block's name. Default: none.
	Logger hclog.Logger
	// Report writes a record about the pipeline (a failing transport, a
	// dead-lettered batch) into the stream of records, at a level of
	// record.Level*; the records it writes carry the logger name
	// ReportLogger. Default: the Logger only.
	Report func(level int32, msg string, attrs ...slog.Attr)
	// Stopping reports whether the owner is shutting down, from when the
	// pipeline gives up on a failing destination sooner. Close implies
	// it.
	Stopping func() bool
	// Metrics observes plugin calls, failures, deliveries and dead
	// letters. Default: none.
	Metrics *metrics.Pipeline
	// Settled, when set, is told n each time the first n batches
	// WriteBatch took (counted from 1) have been settled by every
	// transport: delivered, spooled or dead-lettered, so that the death
	// of the process loses none of them. It is called in increasing n,
	// one call at a time, from the pipeline's goroutines, and must not
	// block.
	Settled func(n uint64)
	// KeepMarks asks each transport that can to keep the marks of what
	// it delivered (sdk/plugin.MarkKeeper), from those WriteBatchMarked
	// gives: a transport then reports at open what it already holds, and
	// the pipeline does not write that to it again. For an owner whose
	// durable ingest routes records again after a crash. The owner must
	// call Vouch before the first batch (the transports wait for it).
	KeepMarks bool
}

// Lost counts what a Pipeline did not deliver. Each is also in its log
// with the reason.
type Lost struct {
	DeadLettered    int64 // records written to the dead-letter directory
	Logged          int64 // records only in the log, as text
	DroppedBatches  int64 // batches a spool dropped under when_full = "drop_oldest"
	SetAsideBatches int64 // spooled batches that could not be read back, kept on disk
}

const (
	brokenAttempts  = 3  // broken instances in a row before a batch is dead-lettered
	stoppingRetries = 5  // failures in a row tolerated once stopping
	jobQueue        = 32 // batches in flight per stage
	// spoolReadAttempts is how many times a spooled batch is read before
	// it is set aside as unreadable (0.1 s, 0.2 s... apart).
	spoolReadAttempts = 4
)

// Pipeline is a running set of stages. WriteBatch is called from one
// goroutine at a time (host.Output's contract); Lost may be called at any
// time.
type Pipeline struct {
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
	loaded   []*wasm.Module // closed with the pipeline
	// formatOrder lists the formats as configured; deadByStage counts
	// the records each stage dead-lettered.
	formatOrder []string
	deadMu      sync.Mutex
	deadByStage map[string]int64
	metrics     *metrics.Pipeline
	// The batches settled: written counts WriteBatch's; settled is how
	// many from the first are settled, ahead those settled after a gap.
	written   uint64
	settledMu sync.Mutex
	settled   uint64
	ahead     map[uint64]bool
	onSettled func(uint64)
	keepMarks bool
	// vouched is closed by Vouch (or Close): numbered then says how far
	// the owner numbered each worker instance.
	vouched   chan struct{}
	vouchOnce sync.Once
	numbered  func(worker string, index uint32) (uint64, bool)
	// heldMu orders the transports' first opens against Held: heldDone
	// once it has given floor (the seqs an owner goes on above).
	heldMu   sync.Mutex
	heldDone bool
	floor    map[Mark]uint64
	lost     struct {
		deadLettered, logged, droppedBatches atomic.Int64
	}
}

// job is one batch on its way through the stages.
type job struct {
	marks []byte       // WriteBatchMarked's, encoded: kept beside the batch in a spool
	n     uint64       // its place among the batches WriteBatch took, from 1
	left  atomic.Int32 // transports that have not settled it
	batch []byte       // encoded record batch
	count int
	out   map[string][]byte // format name -> formatted batch (empty entries for dead-lettered records)
	ready chan struct{}
}

// New compiles the plugins, opens the spools and starts the stages. It
// does not open the transports: each opens at its first batch.
func New(ctx context.Context, opts Options) (_ *Pipeline, err error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	log := opts.Logger
	if opts.Report == nil {
		opts.Report = func(level int32, msg string, _ ...slog.Attr) { logAt(log, level, msg) }
	}
	if opts.Stopping == nil {
		opts.Stopping = func() bool { return false }
	}
	if len(opts.Transports) == 0 {
		return nil, fmt.Errorf("pipeline: no transport")
	}
	p := &Pipeline{log: log, formats: map[string]*formatStage{}, report: opts.Report, deadDir: opts.DeadLetterDir, metrics: opts.Metrics,
		deadByStage: map[string]int64{}, ahead: map[uint64]bool{}, onSettled: opts.Settled, keepMarks: opts.KeepMarks,
		vouched: make(chan struct{})}
	p.stopping = func() bool { return opts.Stopping() || p.closing.Load() }
	defer func() {
		if err != nil {
			for _, m := range p.loaded {
				m.Close(ctx)
			}
		}
	}()
	if p.deadDir == "" {
		p.deadDir = "logtk-dead-letter"
	}
	workers := 1
	for _, f := range opts.Formats {
		mod, err := p.load(ctx, "format "+f.Name, f.Plugin, f.SHA256, f.Limits, config.Allow{})
		if err != nil {
			return nil, err
		}
		p.formats[f.Name] = newFormatStage(f, mod, opts.Metrics)
		p.formatOrder = append(p.formatOrder, f.Name)
		workers = max(workers, cap(p.formats[f.Name].pool))
	}
	for _, t := range opts.Transports {
		if _, ok := p.formats[t.Format]; !ok {
			return nil, fmt.Errorf("transport %q: no format %q", t.Name, t.Format)
		}
		// Before the module: its instances open the directories.
		for _, d := range t.Allow.Directories {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, fmt.Errorf("transport %q: granted directory: %w", t.Name, err)
			}
		}
		mod, err := p.load(ctx, "transport "+t.Name, t.Plugin, t.SHA256, t.Limits, t.Allow)
		if err != nil {
			return nil, err
		}
		ts, err := p.newTransportStage(t, mod)
		if err != nil {
			return nil, err
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

// load compiles a stage's plugin with the capabilities its block grants,
// checking that it is a plugin of the stage's kind.
func (p *Pipeline) load(ctx context.Context, name, path, sha string, limits config.PluginLimits, allow config.Allow) (*wasm.Module, error) {
	b, err := config.ReadPlugin(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	grants := wasm.Grants{Clock: allow.Clock}
	for _, d := range allow.Directories {
		grants.Dirs = append(grants.Dirs, wasm.Dir{Host: d})
	}
	if allow.Stdout {
		grants.Stdout = os.Stdout
	}
	if allow.Stderr {
		grants.Stderr = os.Stderr
	}
	for ep, c := range allow.Endpoints {
		we := wasm.Endpoint{Address: c.Address, DialTimeout: c.DialTimeout, IOTimeout: c.IOTimeout}
		if c.TLS != nil {
			if we.TLS, err = c.TLS.Build(); err != nil {
				return nil, fmt.Errorf("%s: endpoint %q: %w", name, ep, err)
			}
		}
		if grants.Endpoints == nil {
			grants.Endpoints = map[string]wasm.Endpoint{}
		}
		grants.Endpoints[ep] = we
	}
	for cluster, c := range allow.Kafka {
		// The host's client, which the plugin produces through
		// (kafka_produce); the module closes it.
		kp, err := kafka.NewProducer(c)
		if err != nil {
			for _, g := range grants.Kafka {
				g.Producer.Close()
			}
			return nil, fmt.Errorf("%s: kafka cluster %q: %w", name, cluster, err)
		}
		if grants.Kafka == nil {
			grants.Kafka = map[string]wasm.KafkaGrant{}
		}
		grants.Kafka[cluster] = wasm.KafkaGrant{Topics: c.Topics, Producer: kp}
	}
	m, err := wasm.Load(ctx, b, wasm.Options{
		Name:   name,
		Limits: wasm.Limits{MemoryBytes: limits.MemoryBytes, CallTimeout: limits.CallTimeout, NoCallTimeout: limits.NoCallTimeout},
		Grants: grants,
		SHA256: sha,
		Logger: p.log.Named(strings.ReplaceAll(name, " ", ".")),
	})
	if err != nil {
		for _, g := range grants.Kafka {
			g.Producer.Close()
		}
		return nil, err
	}
	p.loaded = append(p.loaded, m)
	kind, _, _ := strings.Cut(name, " ")
	if got := m.Info().Kind; got != kind {
		return nil, fmt.Errorf("%s: %s is a %s plugin", name, path, got)
	}
	return m, nil
}

// WriteBatch implements host.Output. It copies the records into one
// encoded batch and queues it; it blocks while the stages are full.
func (p *Pipeline) WriteBatch(records [][]byte) error { return p.WriteBatchMarked(records, nil) }

// A Mark says that a batch holds the records of a worker instance up to
// Seq: the owner's durable ingest, routing again after a crash, skips
// what a spool kept (Spooled).
type Mark struct {
	Worker string
	Index  uint32
	Seq    uint64
}

// WriteBatchMarked is WriteBatch with the batch's marks, kept beside it
// in every spool that takes it.
func (p *Pipeline) WriteBatchMarked(records [][]byte, marks []Mark) error {
	size := 0
	for _, r := range records {
		size += len(r) + 5
	}
	b := make([]byte, 0, size)
	for _, r := range records {
		b = entries.Append(b, r)
	}
	p.written++
	j := &job{n: p.written, batch: b, count: len(records), out: map[string][]byte{}, ready: make(chan struct{}), marks: encodeMarks(marks)}
	j.left.Store(int32(len(p.trans)))
	p.jobs <- j
	for _, t := range p.trans {
		t.q <- j
	}
	return nil
}

func encodeMarks(ms []Mark) []byte {
	if len(ms) == 0 {
		return nil
	}
	var b []byte
	for _, m := range ms {
		if m.Worker == "" {
			continue // records of no worker instance are never held
		}
		b = marks.Append(b, m.Worker, m.Index, m.Seq)
	}
	return b
}

// eachMark yields the marks encoded in b, stopping at a malformed one.
func eachMark(b []byte) iter.Seq[Mark] {
	return func(yield func(Mark) bool) {
		var all []Mark
		marks.Each(b, func(w []byte, index uint32, seq uint64) {
			all = append(all, Mark{Worker: string(w), Index: index, Seq: seq})
		})
		for _, m := range all {
			if !yield(m) {
				return
			}
		}
	}
}

// Spooled returns, per worker instance, the highest seq that the marks
// beside the batches in every transport's spool name: a transport's
// batches are settled in order, so each transport holds every record up
// to it. Empty unless every transport has a spool.
func (p *Pipeline) Spooled() map[Mark]uint64 {
	var out map[Mark]uint64
	for _, t := range p.trans {
		if t.spool == nil {
			return nil
		}
		got := map[Mark]uint64{}
		for _, b := range t.spool.Metas() {
			for m := range eachMark(b) {
				k := Mark{Worker: m.Worker, Index: m.Index}
				got[k] = max(got[k], m.Seq)
			}
		}
		if out == nil {
			out = got
			continue
		}
		for k, v := range out {
			if g, ok := got[k]; ok {
				out[k] = min(v, g)
			} else {
				delete(out, k)
			}
		}
	}
	return out
}

// settle notes that one more transport settled j (delivered, spooled or
// dead-lettered it) and, when it was the last, tells Options.Settled how
// many batches from the first are now settled.
func (p *Pipeline) settle(j *job) {
	if j == nil || j.left.Add(-1) != 0 {
		return
	}
	p.settledMu.Lock()
	defer p.settledMu.Unlock()
	if j.n != p.settled+1 {
		p.ahead[j.n] = true
		return
	}
	p.settled++
	for p.ahead[p.settled+1] {
		delete(p.ahead, p.settled+1)
		p.settled++
	}
	if p.onSettled != nil {
		p.onSettled(p.settled)
	}
}

// Close implements host.Output: it drains every stage, flushes and closes
// the transports and closes the plugins. From here on a transport that
// keeps failing gives up after a few retries: its batches are
// dead-lettered, or stay in its spool for the next run.
func (p *Pipeline) Close() error {
	p.closing.Store(true)
	p.vouchOnce.Do(func() { close(p.vouched) }) // numbered nil: nothing is vouched for
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
		f.close(ctx)
	}
	for _, m := range p.loaded {
		m.Close(ctx)
	}
	return nil
}

// Lost returns what the pipeline has not delivered so far; after Close it
// is final.
func (p *Pipeline) Lost() Lost {
	l := Lost{
		DeadLettered:   p.lost.deadLettered.Load(),
		Logged:         p.lost.logged.Load(),
		DroppedBatches: p.lost.droppedBatches.Load(),
	}
	for _, t := range p.trans {
		if t.spool != nil {
			l.SetAsideBatches += t.spool.SetAsideCount()
		}
	}
	return l
}

// StageStatus is what Status reports of one stage.
type StageStatus struct {
	Name      string // "format NAME" or "transport NAME"
	Plugin    string // the module's path
	Instances int    // format: the pool's size; transport: 1
	// Queued is how many batches wait for the stage: for formats, those
	// WriteBatch queued for formatting (all formats share the queue);
	// for a transport, the formatted batches not yet taken into its
	// window or spool.
	Queued       int
	Delivered    int64 // transport: records delivered
	SpoolBatches int   // transport with a spool: what it holds
	SpoolBytes   int64
	DeadLettered int64 // records the stage failed on, dead-lettered
}

// Status reports every stage, formats first, in configuration order.
func (p *Pipeline) Status() []StageStatus {
	var out []StageStatus
	for _, name := range p.formatOrder {
		f := p.formats[name]
		out = append(out, StageStatus{Name: "format " + name, Plugin: f.plugin, Instances: cap(f.pool), Queued: len(p.jobs),
			DeadLettered: p.deadLetteredBy("format " + name)})
	}
	for _, t := range p.trans {
		st := StageStatus{Name: "transport " + t.name, Plugin: t.plugin, Instances: 1, Queued: len(t.q),
			Delivered: t.delivered.Load(), DeadLettered: p.deadLetteredBy("transport " + t.name)}
		if t.spool != nil {
			st.SpoolBatches, st.SpoolBytes = t.spool.Len()
		}
		out = append(out, st)
	}
	return out
}

func (p *Pipeline) deadLetteredBy(stage string) int64 {
	p.deadMu.Lock()
	defer p.deadMu.Unlock()
	return p.deadByStage[stage]
}

// SpoolStatus is what a transport's spool holds.
type SpoolStatus struct {
	Transport string
	Batches   int
	Bytes     int64
}

// Spools reports the spools' contents.
func (p *Pipeline) Spools() []SpoolStatus {
	var out []SpoolStatus
	for _, t := range p.trans {
		if t.spool != nil {
			n, b := t.spool.Len()
			out = append(out, SpoolStatus{Transport: t.name, Batches: n, Bytes: b})
		}
	}
	return out
}

// logAt logs msg at the hclog level nearest a record level.
func logAt(log hclog.Logger, level int32, msg string) {
	switch {
	case level >= record.LevelError:
		log.Error(msg)
	case level >= record.LevelWarn:
		log.Warn(msg)
	default:
		log.Info(msg)
	}
}
