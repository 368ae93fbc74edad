package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/pipeline"
	"github.com/logtk/logtk/record"
)

// Reload applies a new configuration to a running host, as an operator's
// reload (or SIGHUP) asks: only what changed is touched.
//
//   - Stages. When a format or transport block (or the dead-letter
//     directory) changed, the pipeline is replaced between two batches:
//     the old one takes every record the host routed before the switch,
//     drains and closes (its transports deliver, its spools keep what
//     they could not, for the new one to send), and the new one, built
//     from the new blocks, every record after. No record reaches both
//     generations and none is left out; each worker instance's seq stays
//     gap-free, because the host numbers records before they reach any
//     stage. Should the new pipeline fail to start, the old blocks are
//     started again and Reload returns the error.
//   - Workers. An unchanged block is left alone: its processes keep
//     running. A changed one has its instances restarted one after the
//     other with the new configuration (each restart graceful, the next
//     once the previous has started again), then is scaled to its new
//     count. A removed block's instances are stopped gracefully; an added
//     block's start.
//
// The configuration must be valid as a whole (config.Load checked it);
// Reload checks the worker blocks again and changes nothing if one is
// wrong. Reloads are serialised.

// ReloadResult says what a reload changed.
type ReloadResult struct {
	Added, Removed, Changed, Unchanged []string // worker blocks
	// Scaled lists the blocks whose count alone changed, as "NAME
	// FROM->TO" (the configuration's count wins over an operator's
	// scale).
	Scaled []string
	// StagesReplaced: the pipeline was replaced by one built from the
	// new format and transport blocks.
	StagesReplaced bool
}

// stageConfig is what a pipeline is built from.
type stageConfig struct {
	Formats       []config.FormatConfig
	Transports    []config.TransportConfig
	DeadLetterDir string
}

func stagesOf(cfg *config.Config) stageConfig {
	return stageConfig{Formats: cfg.Formats, Transports: cfg.Transports, DeadLetterDir: cfg.DeadLetterDir}
}

// newOutput builds the output stages run: a pipeline, or the console when
// there is no transport.
//
// With the durable ingest, its transports keep marks (pipeline.KeepMarks):
// Start learns the first output's before it numbers records, and raises
// the seqs above them; swapOutput checks a reload's against what the
// outputs before it settled.
func (h *Host) newOutput(s stageConfig) (Output, error) {
	if len(s.Transports) == 0 {
		return NewConsoleOutput(os.Stdout), nil
	}
	base := h.settle.base()
	return pipeline.New(context.Background(), pipeline.Options{
		Formats: s.Formats, Transports: s.Transports, DeadLetterDir: s.DeadLetterDir,
		Logger: h.log.Named("pipeline"), Report: h.selfRecord, Stopping: h.isStopping,
		Metrics: h.pm, Settled: func(n uint64) { h.settle.upTo(base + n) },
		KeepMarks: h.durable,
	})
}

func (h *Host) currentOutput() Output {
	h.outMu.Lock()
	defer h.outMu.Unlock()
	return h.output
}

// outputSwap asks runOutput to replace the output.
type outputSwap struct {
	next, prev stageConfig
	done       chan error
}

// swapOutput closes out (draining it) and returns its replacement: the
// pipeline of sw.next, or, when that cannot start, one of sw.prev again.
func (h *Host) swapOutput(out Output, sw outputSwap) Output {
	if err := out.Close(); err != nil {
		h.log.Error("closing the replaced output failed", "error", err)
	}
	h.settle.closed(out)
	h.outMu.Lock()
	if p, ok := out.(*pipeline.Pipeline); ok {
		h.pastLost = addLost(h.pastLost, p.Lost())
		if h.pastStages == nil {
			h.pastStages = map[string]pipeline.StageStatus{}
		}
		for _, st := range p.Status() {
			past := h.pastStages[st.Name]
			past.Delivered += st.Delivered
			past.DeadLettered += st.DeadLettered
			h.pastStages[st.Name] = past
		}
	}
	h.outMu.Unlock()
	next, err := h.newOutput(sw.next)
	if err != nil {
		h.log.Error("the reloaded stages failed to start; starting the previous ones again", "error", err)
		var err2 error
		if next, err2 = h.newOutput(sw.prev); err2 != nil {
			// Neither: the records are printed rather than held for
			// ever, and the host says so loudly.
			h.log.Error("the previous stages failed to start again; records go to standard output as text until the next reload", "error", err2)
			next = NewConsoleOutput(os.Stdout)
			err = errors.Join(err, err2)
		}
	}
	if p, ok := next.(*pipeline.Pipeline); ok {
		// The records numbered so far and not settled wait in the queue,
		// above every seq settled: a transport whose marks go beyond
		// those holds records of another numbering and is not cut by them.
		p.Vouch(h.settledNow())
	}
	h.outMu.Lock()
	h.output = next
	h.outMu.Unlock()
	sw.done <- err
	return next
}

func addLost(a, b pipeline.Lost) pipeline.Lost {
	return pipeline.Lost{
		DeadLettered:    a.DeadLettered + b.DeadLettered,
		Logged:          a.Logged + b.Logged,
		DroppedBatches:  a.DroppedBatches + b.DroppedBatches,
		SetAsideBatches: a.SetAsideBatches + b.SetAsideBatches,
	}
}

// Reload applies cfg (see the comment at the top of reload.go).
func (h *Host) Reload(cfg *config.Config) (ReloadResult, error) {
	h.reloadMu.Lock()
	defer h.reloadMu.Unlock()
	var res ReloadResult
	if !h.started.Load() || h.Stopping() {
		return res, errors.New("host: not running")
	}
	workers := map[string]*config.WorkerConfig{}
	for i := range cfg.Workers {
		w := cfg.Workers[i]
		w.SetDefaults()
		if err := w.Validate(); err != nil {
			return res, err
		}
		if workers[w.Name] != nil {
			return res, fmt.Errorf("duplicate worker name %q", w.Name)
		}
		workers[w.Name] = &w
	}

	// Stages first, so that the records of changed workers go through
	// the new ones.
	if next := stagesOf(cfg); !reflect.DeepEqual(next, h.stages) {
		if !h.ownOutput {
			return res, errors.New("host: the output was given in code (Options.Output): its stages cannot be reloaded")
		}
		sw := outputSwap{next: next, prev: h.stages, done: make(chan error, 1)}
		select {
		case h.swaps <- sw:
		case <-h.done:
			return res, errors.New("host: stopped during the reload")
		}
		if err := <-sw.done; err != nil {
			return res, fmt.Errorf("host: the new stages failed to start (the previous ones run again): %w", err)
		}
		h.stages = next
		res.StagesReplaced = true
	}

	h.instMu.Lock()
	old := h.workers
	h.instMu.Unlock()
	var errs []error
	for _, name := range sortedNames(old) {
		if _, ok := workers[name]; !ok {
			res.Removed = append(res.Removed, name)
			if err := h.Scale(name, 0); err != nil {
				errs = append(errs, err)
			}
			h.instMu.Lock()
			delete(h.workers, name)
			h.instMu.Unlock()
		}
	}
	for _, name := range sortedNames(workers) {
		w := workers[name]
		prev, ok := old[name]
		switch {
		case !ok:
			res.Added = append(res.Added, name)
			target := w.Count
			w.Count = 0
			h.instMu.Lock()
			h.workers[name] = w
			h.instMu.Unlock()
			if err := h.Scale(name, target); err != nil {
				errs = append(errs, err)
			}
		case sameWorker(prev, w) && prev.Count == w.Count:
			res.Unchanged = append(res.Unchanged, name)
		case sameWorker(prev, w): // only scaled: nothing restarts
			res.Scaled = append(res.Scaled, fmt.Sprintf("%s %d->%d", name, prev.Count, w.Count))
			if err := h.Scale(name, w.Count); err != nil {
				errs = append(errs, err)
			}
		default:
			res.Changed = append(res.Changed, name)
			if err := h.replaceWorker(name, w); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(res.Added)+len(res.Removed)+len(res.Changed)+len(res.Scaled) > 0 || res.StagesReplaced {
		h.selfRecord(record.LevelInfo, fmt.Sprintf("configuration reloaded: workers added %v, removed %v, changed %v, scaled %v; stages replaced: %v",
			res.Added, res.Removed, res.Changed, res.Scaled, res.StagesReplaced))
	}
	return res, errors.Join(errs...)
}

// sameWorker compares two blocks, the count aside (scaling is not a
// change that restarts anything).
func sameWorker(a, b *config.WorkerConfig) bool {
	x, y := *a, *b
	x.Count, y.Count = 0, 0
	return reflect.DeepEqual(x, y)
}

// replaceWorker restarts a block's instances one after the other with w,
// then scales it to w's count.
func (h *Host) replaceWorker(name string, w *config.WorkerConfig) error {
	target := w.Count
	h.instMu.Lock()
	w.Count = h.workers[name].Count
	h.workers[name] = w
	var list []*instance
	for _, in := range h.instances {
		if in.id.Name == name && !in.removed {
			list = append(list, in)
		}
	}
	h.instMu.Unlock()
	var errs []error
	for _, in := range list {
		err := in.sendReq(ctlRequest{op: opReplace, cfg: w})
		if errors.Is(err, errNotRunning) { // ended: its next start takes it
			h.instMu.Lock()
			if !in.alive {
				in.mu.Lock()
				in.cfg = w
				in.mu.Unlock()
			}
			h.instMu.Unlock()
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", in.id, err))
		}
	}
	if target != w.Count {
		errs = append(errs, h.Scale(name, target))
	}
	return errors.Join(errs...)
}

func sortedNames(m map[string]*config.WorkerConfig) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
