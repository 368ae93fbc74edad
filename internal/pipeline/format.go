package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/internal/metrics"
	"github.com/logtk/logtk/internal/wasm"
)

// A format stage formats each batch once for every transport that names
// it, on a pool of instances, so that formatting uses every core. A
// format plugin that fails on a batch is given the batch again in halves
// until the records it fails on are alone; those are dead-lettered and
// the rest formatted.

// defaultInstances is FormatConfig.Instances's default.
const defaultInstances = 2

type formatStage struct {
	name    string
	plugin  string
	metrics *metrics.Pipeline
	mod     *wasm.Module
	cfg     []byte
	pool    chan *wasm.Instance // nil entries are slots for new instances
	sleep   func(time.Duration) // the backoff after a retry
}

func newFormatStage(f config.FormatConfig, mod *wasm.Module, m *metrics.Pipeline) *formatStage {
	n := f.Instances
	if n == 0 {
		n = defaultInstances
	}
	fs := &formatStage{name: f.Name, plugin: f.Plugin, metrics: m, mod: mod, cfg: f.Config, pool: make(chan *wasm.Instance, n), sleep: time.Sleep}
	for range n {
		fs.pool <- nil
	}
	return fs
}

// close closes the pooled instances; the stage is not used after.
func (f *formatStage) close(ctx context.Context) {
	close(f.pool)
	for inst := range f.pool {
		if inst != nil {
			inst.Close(ctx)
		}
	}
}

func (p *Pipeline) formatWorker() {
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
// those (an empty entry stands in for each) and formats the rest. A batch
// the plugin still answers "retry" for is dead-lettered whole: a retry is
// about the moment, not about a record, and halves would only wait more.
func (p *Pipeline) formatIsolating(ctx context.Context, f *formatStage, batch []byte, count int) []byte {
	out, err := f.format(ctx, batch, count)
	if err == nil {
		return out
	}
	if ce := (*wasm.CallError)(nil); count == 1 || (errors.As(err, &ce) && ce.Retryable()) {
		p.deadLetter("format "+f.name, &job{batch: batch, count: count}, err)
		var empty []byte
		for range count {
			empty = entries.Append(empty, nil)
		}
		return empty
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
// not dead-letter it. A retry (status 1) is waited for, backing off from
// firstDelay, and gives any batch brokenAttempts attempts. A broken
// instance (a trap, garbage, a status other than 1 or 2) is replaced.
// The error returned is the last attempt's.
func (f *formatStage) format(ctx context.Context, batch []byte, count int) ([]byte, error) {
	var last error
	attempts := 1
	if count == 1 {
		attempts = brokenAttempts
	}
	delay := firstDelay
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
				f.metrics.Failure("format "+f.name, failureKind(err))
				f.pool <- nil
				last = err
				continue
			}
		}
		start := time.Now()
		out, err := inst.Format(ctx, batch, count)
		f.metrics.Call("format "+f.name, "format", time.Since(start))
		if err == nil {
			f.pool <- inst
			return out, nil
		}
		last = err
		f.metrics.Failure("format "+f.name, failureKind(err))
		if inst.Broken() { // a trap, garbage, or status 3 (the runtime's call)
			inst.Close(ctx)
			inst = nil
		}
		f.pool <- inst
		if ce := (*wasm.CallError)(nil); errors.As(err, &ce) && ce.Retryable() {
			attempts = brokenAttempts
			if attempt+1 < attempts {
				var wait time.Duration
				wait, delay = backoff(delay)
				f.sleep(wait)
			}
		}
	}
	return nil, fmt.Errorf("%d attempts failed; last: %w", attempts, last)
}

// failureKind names a failed call for the plugin failures metric.
func failureKind(err error) string {
	var ce *wasm.CallError
	switch {
	case !errors.As(err, &ce) || ce.Broken:
		return "broken"
	case ce.Retryable():
		return "retryable"
	}
	return "refused"
}
