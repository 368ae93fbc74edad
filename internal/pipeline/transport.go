package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/internal/spool"
	"github.com/logtk/logtk/internal/wasm"
	"github.com/logtk/logtk/record"
)

// A transport stage takes each batch, formatted by its format stage, in
// the order WriteBatch was called, gives it an id, and hands it to its
// delivery: straight, or through its spool, from which delivered batches
// are removed and which a later run sends again. It runs one plugin
// instance, so that the transport sees batches in order.

// defaultAckTimeout is TransportConfig.AckTimeout's default.
const defaultAckTimeout = 60 * time.Second

type transportStage struct {
	name      string
	plugin    string
	delivered atomic.Int64 // records
	format    string
	mod       *wasm.Module
	cfg       []byte
	q         chan *job
	nextID    uint64 // batch ids handed to the plugin
	spool     *spool.Spool
	// ackTimeout: how long batches may be on their way with none
	// acknowledged before the instance is taken for broken.
	ackTimeout time.Duration
	// held: what the open instance said it holds (Options.KeepMarks),
	// per worker instance (Seq 0) the highest seq, for the instances
	// whose next batch may still hold some of it. Used by the delivery's
	// goroutine only.
	held map[Mark]uint64
	// firstOpen is closed once an instance opened with KeepMarks, its
	// marks in held, firstFailure once an open failed (Held waits for
	// either); unvouched is set when the owner could not raise its seqs
	// above the marks in time, and turns cutting off.
	firstOpen, firstFailure chan struct{}
	opened, failed          sync.Once
	unvouched               atomic.Bool
	inFloor                 bool // opened before Held was done: its marks are in the floor (heldMu)
}

// item is one batch on its way to a transport.
type item struct {
	id      uint64
	data    []byte
	marks   []byte // encoded, for a transport that keeps them
	job     *job   // nil for a batch read from the spool
	spooled bool
	// past: the instances whose records in this batch go past the
	// transport's marks (unheld); once it is delivered, their marks
	// need not be checked again.
	past []Mark
}

func (p *Pipeline) newTransportStage(t config.TransportConfig, mod *wasm.Module) (*transportStage, error) {
	// Batch ids must never repeat across runs of the host (a receiver
	// that deduplicates by id would drop a new batch as a resend): they
	// start from the clock in nanoseconds and count up by one.
	ts := &transportStage{name: t.Name, plugin: t.Plugin, format: t.Format, mod: mod, cfg: t.Config,
		q: make(chan *job, jobQueue), nextID: uint64(time.Now().UnixNano()), ackTimeout: t.AckTimeout,
		firstOpen: make(chan struct{}), firstFailure: make(chan struct{})}
	if ts.ackTimeout <= 0 {
		ts.ackTimeout = defaultAckTimeout
	}
	sc := t.Spool
	if sc == nil {
		return ts, nil
	}
	policy := spool.Block
	if sc.WhenFull == "drop_oldest" {
		policy = spool.DropOldest
	}
	name := t.Name
	drops := &dropReport{send: func(n, bytes int64, first, last uint64, total int64) {
		p.report(record.LevelError, fmt.Sprintf("transport %s: spool full (%d bytes): dropped %d batches (%d bytes, ids %d..%d) under when_full = drop_oldest; %d in all", name, sc.MaxBytes, n, bytes, first, last, total),
			slog.String("transport", name), slog.Int64("batches", n), slog.Int64("bytes", bytes),
			slog.Uint64("first_batch", first), slog.Uint64("last_batch", last), slog.Int64("dropped_total", total))
	}}
	sp, err := spool.Open(sc.Dir, spool.Options{MaxBytes: sc.MaxBytes, Policy: policy,
		OnDrop: func(d spool.Dropped) {
			// Called with the spool locked: log and count without
			// waiting. Each drop is in the log; the records reporting
			// them are gathered (one per second at most), so that under
			// a long overload they do not crowd the records they report
			// on out of the spool.
			p.log.Error("spool full: dropped the oldest batch", "transport", name, "batch", d.ID, "bytes", d.Bytes)
			p.lost.droppedBatches.Add(1)
			drops.add(d)
		},
		OnWriteError: spoolTrouble(name, sc.Dir, p.log, p.report),
	})
	if err != nil {
		return nil, fmt.Errorf("transport %q: spool: %w", t.Name, err)
	}
	if n, b := sp.Len(); n > 0 {
		p.log.Info("resending batches spooled by an earlier run", "transport", t.Name, "batches", n, "bytes", b)
	}
	ts.spool = sp
	if max := sp.MaxID(); max >= ts.nextID {
		ts.nextID = max
	}
	return ts, nil
}

// transportLoop runs a transport stage until its queue is closed and
// everything taken is settled (or, at shutdown, kept for the next run).
func (p *Pipeline) transportLoop(t *transportStage) {
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
				items <- item{id: t.nextID, data: j.out[t.format], job: j, marks: j.marks}
			}
		}()
	} else {
		go func() {
			defer close(intakeDone)
			for j := range t.q {
				<-j.ready
				t.nextID++
				// Settled as soon as a host started after this one died
				// would find the batch in the spool, not a sync later.
				err := t.spool.PutNotify(t.nextID, j.out[t.format], j.marks, func() { p.settle(j) })
				if err != nil {
					p.deadLetter("transport "+t.name, j, fmt.Errorf("spooling: %w", err))
					p.settle(j)
				}
			}
			t.spool.CloseInput()
		}()
		go p.readSpool(t, items)
	}
	d := p.newDelivery(t)
	if p.keepMarks {
		// Opened before its first batch, so that the owner learns its
		// marks (Held) before it numbers records.
		d.resend(ctx, d.send(ctx, 0))
	}
	if d.run(ctx, items) {
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
				p.settle(it.job)
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
	d.close(ctx)
}

// readSpool sends the spooled batches to items in order, until the spool
// is closed and empty.
func (p *Pipeline) readSpool(t *transportStage, items chan<- item) {
	defer close(items)
	var after uint64
	failures := 0
	for {
		id, data, err := t.spool.Next(after)
		if errors.Is(err, spool.ErrClosed) {
			return
		}
		if err != nil {
			// One file that cannot be read must not stop the batches
			// after it: tried again (the cause may pass), then set aside,
			// kept on disk and reported.
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
		var marks []byte
		if p.keepMarks {
			marks = t.spool.Meta(id)
		}
		items <- item{id: id, data: data, marks: marks, spooled: true}
		after = id
	}
}

// newDelivery is the delivery of a transport stage: its instances are
// the stage's module's, configured and opened; a settled batch leaves the
// spool; a failed one is dead-lettered.
func (p *Pipeline) newDelivery(t *transportStage) *delivery {
	done := func(it item) {
		for _, k := range it.past {
			delete(t.held, k)
		}
		// The records are the job's count; walking the entries (for a
		// batch from the spool, or the bytes metric) only when needed.
		n, bytes := 0, 0
		if it.job != nil {
			n = it.job.count
		}
		if p.metrics != nil || it.job == nil {
			n = 0
			entries.Each(it.data, func(e []byte) { n, bytes = n+1, bytes+len(e) })
			p.metrics.Delivered(t.name, n, bytes)
		}
		t.delivered.Add(int64(n))
		if !it.spooled {
			p.settle(it.job)
		}
		if it.spooled {
			if err := t.spool.Remove(it.id); err != nil {
				p.log.Error("removing a delivered batch from the spool failed; it may be sent again", "transport", t.name, "batch", it.id, "error", err)
			}
		}
	}
	d := newDelivery(t.name, t.mod.Exports("logtk_poll"), t.ackTimeout)
	d.open = func(ctx context.Context) (conn, error) {
		inst, err := openInstance(ctx, t.mod, t.cfg)
		if err != nil {
			t.failed.Do(func() { close(t.firstFailure) })
			return nil, err
		}
		if !p.keepMarks {
			return inst, nil
		}
		held, keeps, err := inst.KeepMarks(ctx)
		if err != nil {
			inst.Close(ctx)
			t.failed.Do(func() { close(t.firstFailure) })
			return nil, err
		}
		t.held = nil
		if keeps {
			t.held = decodeMarks(held)
		}
		t.opened.Do(func() {
			// Checked once, against what the owner had numbered when it
			// vouched (Vouch): later marks are of this numbering.
			<-p.vouched
			p.heldMu.Lock()
			p.vouch(t)
			t.inFloor = !p.heldDone
			p.heldMu.Unlock()
			close(t.firstOpen)
		})
		return inst, nil
	}
	d.prepare = func(it *item) bool { return p.unheld(t, it) }
	d.done = done
	d.failed = func(it item, err error) {
		if it.job != nil {
			p.deadLetter("transport "+t.name, it.job, err)
			if !it.spooled {
				p.settle(it.job)
			}
		} else {
			p.deadLetterBytes("transport "+t.name, it.data, -1, err)
		}
		if it.spooled {
			if err := t.spool.Remove(it.id); err != nil {
				p.log.Error("removing a dead-lettered batch from the spool failed; it may be sent again", "transport", t.name, "batch", it.id, "error", err)
			}
		}
	}
	d.metrics = p.metrics
	d.stopping = p.stopping
	d.log = p.log
	d.report = p.report
	return d
}

// openInstance makes a configured, opened transport instance.
func openInstance(ctx context.Context, mod *wasm.Module, cfg []byte) (*wasm.Instance, error) {
	inst, err := mod.NewInstance(ctx)
	if err != nil {
		return nil, err
	}
	if err := inst.Configure(ctx, cfg); err != nil {
		inst.Close(ctx)
		return nil, err
	}
	if err := inst.Open(ctx); err != nil {
		inst.Close(ctx)
		return nil, err
	}
	return inst, nil
}

// unheld cuts from it the records its transport's instance said it holds
// (transportStage.held) and reports whether anything is left to write.
// What is cut counts as delivered: the transport has it from before. It
// starts from the job's whole batch each time, so that a batch sent again
// to a new instance is cut by that instance's marks; the marks it then
// passes are those of the records left.
func (p *Pipeline) unheld(t *transportStage, it *item) bool {
	if it.job == nil {
		// From the spool: only the batch's marks are known. A batch
		// every mark of which the transport holds is not written again.
		if t.unvouched.Load() {
			it.marks = nil
			return true
		}
		return len(t.held) == 0 || !heldAll(t.held, it.marks)
	}
	whole := it.job.out[t.format]
	if t.unvouched.Load() {
		// Its marks are of another numbering: it gets none, so that it
		// does not take new records for ones it holds.
		it.data, it.marks = whole, nil
		return true
	}
	if len(t.held) == 0 {
		it.data, it.marks = whole, it.job.marks
		return true
	}
	overlaps := false
	for m := range eachMark(it.job.marks) {
		if _, ok := t.held[Mark{Worker: m.Worker, Index: m.Index}]; ok {
			overlaps = true
		}
	}
	if !overlaps {
		it.data, it.marks = whole, it.job.marks
		return true
	}
	// Walk the records beside their formatted entries (one each, in
	// order) and keep the entries of the records not held: a copy only
	// from the first record cut.
	var rec record.Record
	var kept []byte
	var keptMarks []Mark
	var k Mark // the last record's instance: a batch's records share few
	cut, ok := 0, true
	past := it.past[:0]
	formatted := whole
	entries.EachWhile(it.job.batch, func(r []byte) bool {
		_, n := entries.Next(formatted)
		if n <= 0 {
			ok = false // (cannot happen: the format stage checked the count)
			return false
		}
		at := len(whole) - len(formatted)
		formatted = formatted[n:]
		rec.Parse(r)
		// A record of no worker (the host's own, numbered per run) is
		// never held: only the records of a worker instance have seqs
		// that go on.
		if len(rec.Worker) > 0 {
			if k.Index != rec.WorkerIndex || k.Worker != string(rec.Worker) {
				k = Mark{Worker: string(rec.Worker), Index: rec.WorkerIndex}
			}
			if h, held := t.held[k]; held {
				if rec.Seq <= h {
					if cut == 0 {
						kept = append(make([]byte, 0, len(whole)), whole[:at]...)
					}
					cut++
					return true
				}
				if !slices.Contains(past, k) {
					past = append(past, k)
				}
			}
			i := slices.IndexFunc(keptMarks, func(m Mark) bool { return m.Worker == k.Worker && m.Index == k.Index })
			if i < 0 {
				keptMarks = append(keptMarks, Mark{Worker: k.Worker, Index: k.Index, Seq: rec.Seq})
			} else {
				keptMarks[i].Seq = max(keptMarks[i].Seq, rec.Seq)
			}
		}
		if cut > 0 {
			kept = append(kept, whole[at:at+n]...)
		}
		return true
	})
	if !ok {
		it.data, it.marks = whole, it.job.marks
		return true
	}
	// Seqs rise within an instance: once a batch past its mark is
	// delivered (done), the later ones hold nothing the transport has,
	// and its records need not be read again.
	it.past = past
	if cut == 0 {
		it.data, it.marks = whole, it.job.marks
		return true
	}
	p.log.Info("the transport already holds records of this batch (its marks): not writing them again", "transport", t.name, "batch", it.id, "records", cut, "of", it.job.count)
	it.data, it.marks = kept, encodeMarks(keptMarks)
	return len(kept) > 0
}

func decodeMarks(b []byte) map[Mark]uint64 {
	out := map[Mark]uint64{}
	for m := range eachMark(b) {
		k := Mark{Worker: m.Worker, Index: m.Index}
		out[k] = max(out[k], m.Seq)
	}
	return out
}

// maxMarkSeq bounds the seqs of marks an owner raises its seqs to: a
// plugin naming more has lied, and its marks are not used.
const maxMarkSeq = 1 << 53

// Vouch gives the transports, which wait for it before their first
// batch, what the owner has numbered: for a worker instance, the
// highest seq it gave a record that may have reached a transport
// (known false: it does not know, having lost its count). numbered is
// asked once per transport, at its first open, and must answer as of
// the call to Vouch.
//
// A transport naming a seq above that holds records of another
// numbering (its file outlived the journals); it, and one naming an
// absurd seq, is unvouched for the pipeline's life: its marks are
// neither used to cut nor passed on, so what it holds may come again,
// and nothing is lost.
func (p *Pipeline) Vouch(numbered func(worker string, index uint32) (seq uint64, known bool)) {
	p.vouchOnce.Do(func() {
		p.numbered = numbered
		close(p.vouched)
	})
}

// vouch checks t's marks (held, from its first open) against numbered.
func (p *Pipeline) vouch(t *transportStage) {
	for k, seq := range t.held {
		if seq > maxMarkSeq {
			t.unvouched.Store(true)
			p.log.Error("the transport names an absurd seq among what it holds; not using its marks", "transport", t.name, "worker", k.Worker, "index", k.Index, "seq", seq)
			return
		}
		if p.numbered == nil {
			continue
		}
		n, known := p.numbered(k.Worker, k.Index)
		if !known && p.heldDone {
			// Numbered from the floor Held gave, without this transport.
			n, known = p.floor[Mark{Worker: k.Worker, Index: k.Index}], true
		}
		if known && seq > n {
			t.unvouched.Store(true)
			p.log.Warn("the transport holds records of a worker instance numbered beyond this host's count (written under another numbering, before its journal was lost): not using its marks; records routed again after a crash may reach it twice", "transport", t.name, "worker", k.Worker, "index", k.Index, "held_seq", seq, "numbered", n)
			return
		}
	}
}

// Held waits up to timeout for every transport to open (after Vouch),
// or to fail its first open, and returns, per worker instance, the
// highest seq any vouched transport holds. An owner that lost its count
// of an instance (a runtime directory in memory is gone after a reboot;
// the file and its marks are not) must number that instance's records
// above it: a transport cuts records at or below its marks. A transport
// that opens later is checked against that floor for such an instance
// (Vouch's numbered not knowing it), and unvouched if it holds more.
func (p *Pipeline) Held(timeout time.Duration) map[Mark]uint64 {
	out := map[Mark]uint64{}
	if !p.keepMarks {
		return out
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
wait:
	for _, t := range p.trans {
		select {
		case <-t.firstOpen:
		case <-t.firstFailure:
		case <-deadline.C:
			break wait // the rest are checked at their first open
		}
	}
	p.heldMu.Lock()
	defer p.heldMu.Unlock()
	for _, t := range p.trans {
		if !t.inFloor || t.unvouched.Load() {
			continue
		}
		for k, seq := range t.held {
			out[k] = max(out[k], seq)
		}
	}
	for _, t := range p.trans {
		select {
		case <-t.firstOpen:
		default:
			p.log.Warn("the transport has not opened yet (its open failed, or is slow): its marks are checked against the seqs given when it opens", "transport", t.name)
		}
	}
	p.floor, p.heldDone = out, true
	return out
}

// heldAll reports whether encoded marks name records and every mark is
// at or below held's.
func heldAll(held map[Mark]uint64, b []byte) bool {
	n := 0
	for m := range eachMark(b) {
		n++
		if h, ok := held[Mark{Worker: m.Worker, Index: m.Index}]; !ok || h < m.Seq {
			return false
		}
	}
	return n > 0
}
