package plugintest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/internal/marks"
	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/wasm"
	"github.com/logtk/logtk/record"
)

// Options configure a conformance run. The zero value runs the plugin with
// an empty configuration and no capabilities.
type Options struct {
	// Config is the plugin's configuration as JSON (what the host would
	// pass from the config block). Default "{}".
	Config string
	// Dirs are granted to a transport, as allow { directories } would.
	Dirs []string
	// Clock grants the real clock.
	Clock bool
	// CallTimeout bounds each call. Default 5s.
	CallTimeout time.Duration
}

// TestFormatter checks the format plugin at wasmPath against the
// contract, each property in a subtest of t named after it (the names of
// CheckFormatter), so that a failure says which property the plugin
// breaks. A case that cannot go on after a failure (the plugin trapped,
// say) ends there; the others report every violation they find. When the
// plugin does not load, or does not accept opts.Config, the cases after
// that one are skipped. Each case can run alone (go test -run).
func TestFormatter(t *testing.T, wasmPath string, opts Options) {
	t.Helper()
	runCases(wasmPath, opts, "format", formatterCases, subtests(t))
}

// TestTransport checks the transport plugin at wasmPath against the
// contract, each property in a subtest of t named after it (the names of
// CheckTransport). The steps from "open" to "close" go through one
// instance in order: once one fails, the steps after it are skipped, and
// a step left out by go test -run leaves out the steps after it.
func TestTransport(t *testing.T, wasmPath string, opts Options) {
	t.Helper()
	runCases(wasmPath, opts, "transport", transportCases, subtests(t))
}

// CheckFormatter loads a format plugin in the host's runtime and checks
// the contract, case by case, each on an instance of its own:
//
//   - info: the module loads, and logtk_info says it is a format plugin of
//     this ABI, with a name, a version and config fields of known types
//   - malformed-config: malformed configuration is an error, not a crash
//   - configure: opts.Config is accepted
//   - samples: the sample records (every schema feature) format in a batch
//   - samples-alone: each sample record formats the same alone as in the
//     batch
//   - empty-batch: an empty batch formats to nothing
//   - large-batch: a batch of 2000 records formats
//   - large-record: a 768 KiB record formats
//   - memory: memory stays flat over 500 identical batches
//
// It returns every violation found, each prefixed with its case's name
// ("samples: ..."), or nil.
func CheckFormatter(wasmPath string, opts Options) error {
	return checkCases(wasmPath, opts, "format", formatterCases)
}

// CheckTransport loads a transport plugin in the host's runtime and
// checks the contract:
//
//   - info: the module loads, and logtk_info says it is a transport plugin
//     of this ABI, with a name, a version and config fields of known types
//   - malformed-config: malformed configuration is an error, not a crash
//   - configure: opts.Config is accepted
//
// and then, in order on that configured instance, each step succeeding:
// open, write-empty-batch, write-batch (the formatted samples),
// write-100-batches, flush, close; then marks, for a transport that keeps
// marks: a batch written with its marks is named by the marks of the
// next instance. It returns every violation found, each prefixed with its
// case's name ("open: ..."), or nil.
func CheckTransport(wasmPath string, opts Options) error {
	return checkCases(wasmPath, opts, "transport", transportCases)
}

// A testCase checks one property of the contract.
type testCase struct {
	name string
	// required: the cases after this one cannot run once it failed.
	required bool
	// needs names a case that must have passed before this one runs (a
	// transport's step before it), for runs that leave some cases out
	// (go test -run).
	needs string
	run   func(f *fixture, r *report)
}

// fixture is what the cases of one run share.
type fixture struct {
	ctx  context.Context
	path string
	kind string
	opts Options

	m       *wasm.Module // loaded by the first case that needs it
	loadErr error
	loaded  bool

	inst *wasm.Instance // a transport's instance, set by the configure case
}

// module returns the module under test, loading it on first use, or nil
// having reported why it does not load.
func (f *fixture) module(r *report) *wasm.Module {
	if !f.loaded {
		f.loaded = true
		f.m, f.loadErr = f.load()
	}
	if f.loadErr != nil {
		r.errorf("loading the module: %w", f.loadErr)
	}
	return f.m
}

func (f *fixture) load() (*wasm.Module, error) {
	b, err := os.ReadFile(f.path)
	if err != nil {
		return nil, err
	}
	g := wasm.Grants{Clock: f.opts.Clock}
	for _, d := range f.opts.Dirs {
		g.Dirs = append(g.Dirs, wasm.Dir{Host: d})
	}
	return wasm.Load(f.ctx, b, wasm.Options{Name: f.kind + " under test", Grants: g,
		Limits: wasm.Limits{CallTimeout: f.opts.CallTimeout}})
}

// report collects what a case found: violations, each a failure of the
// case, or why it did not run.
type report struct {
	errs []error
	skip string
}

func (r *report) errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf(format, args...))
}

// runCases runs the cases in order, handing each to each as its name and
// a function that runs it and returns what it found.
func runCases(wasmPath string, opts Options, kind string, cases []testCase, each func(name string, run func() *report)) {
	f := &fixture{ctx: context.Background(), path: wasmPath, kind: kind, opts: opts}
	defer func() {
		if f.inst != nil {
			f.inst.Close(f.ctx)
		}
		if f.m != nil {
			f.m.Close(f.ctx)
		}
	}()
	blocked := ""
	passed := map[string]bool{}
	for _, c := range cases {
		each(c.name, func() *report {
			r := new(report)
			switch {
			case blocked != "":
				r.skip = fmt.Sprintf("not run: %s failed", blocked)
				return r
			case c.needs != "" && !passed[c.needs]:
				r.skip = fmt.Sprintf("not run: it needs %s to pass first", c.needs)
				return r
			}
			c.run(f, r)
			if len(r.errs) == 0 && r.skip == "" {
				passed[c.name] = true
			}
			if c.required && len(r.errs) > 0 {
				blocked = c.name
			}
			return r
		})
	}
}

// subtests runs each case as a subtest of t.
func subtests(t *testing.T) func(string, func() *report) {
	return func(name string, run func() *report) {
		t.Run(name, func(t *testing.T) {
			r := run()
			for _, err := range r.errs {
				t.Error(err)
			}
			if r.skip != "" {
				t.Skip(r.skip)
			}
		})
	}
}

// checkCases runs the cases and returns their violations, each prefixed
// with its case's name.
func checkCases(wasmPath string, opts Options, kind string, cases []testCase) error {
	var errs []error
	runCases(wasmPath, opts, kind, cases, func(name string, run func() *report) {
		for _, err := range run().errs {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	})
	return errors.Join(errs...)
}

var knownTypes = map[string]bool{"string": true, "number": true, "bool": true, "list(string)": true, "map(string)": true, "file": true, "path": true}

// checkInfo checks that the module loads and what logtk_info says.
func checkInfo(f *fixture, r *report) {
	m := f.module(r)
	if m == nil {
		return
	}
	info := m.Info()
	if info.Kind != f.kind {
		r.errorf("logtk_info: kind %q, want %q", info.Kind, f.kind)
	}
	// The host refuses the rest at load (module above): a missing name
	// or version, an "abi" other than logtk_abi_version's. An "abi" left
	// out is fine.
	if info.ABI != 0 && (info.ABI < wasm.MinABIVersion || info.ABI > wasm.ABIVersion) {
		r.errorf("logtk_info: abi %d, want %d to %d", info.ABI, wasm.MinABIVersion, wasm.ABIVersion)
	}
	for _, fd := range info.Config {
		if !knownTypes[fd.Type] || fd.Name == "" {
			r.errorf("logtk_info: config field %q has unknown type %q", fd.Name, fd.Type)
		}
	}
}

// checkMalformedConfig: malformed configuration must be refused with a
// status, not a trap.
func checkMalformedConfig(f *fixture, r *report) {
	m := f.module(r)
	if m == nil {
		return
	}
	inst, err := m.NewInstance(f.ctx)
	if err != nil {
		r.errorf("instantiate: %w", err)
		return
	}
	defer inst.Close(f.ctx)
	err = inst.Configure(f.ctx, []byte(`{"unterminated`))
	var ce *wasm.CallError
	if errors.As(err, &ce) && ce.Broken {
		r.errorf("malformed configuration crashed the plugin (it must return an error): %w", err)
	}
}

// configured returns a new instance configured with opts.Config, or nil
// having reported why not.
func (f *fixture) configured(r *report) *wasm.Instance {
	m := f.module(r)
	if m == nil {
		return nil
	}
	inst, err := m.NewInstance(f.ctx)
	if err != nil {
		r.errorf("instantiate: %w", err)
		return nil
	}
	cfg := f.opts.Config
	if cfg == "" {
		cfg = "{}"
	}
	if err := inst.Configure(f.ctx, []byte(cfg)); err != nil {
		inst.Close(f.ctx)
		r.errorf("Configure(%s): %w", cfg, err)
		return nil
	}
	return inst
}

// formatCase is a formatter case on an instance of its own.
func formatCase(name string, run func(f *fixture, inst *wasm.Instance, r *report)) testCase {
	return testCase{name: name, run: func(f *fixture, r *report) {
		if inst := f.configured(r); inst != nil {
			defer inst.Close(f.ctx)
			run(f, inst, r)
		}
	}}
}

func batchOf(recs [][]byte) []byte {
	var b []byte
	for _, r := range recs {
		b = entries.Append(b, r)
	}
	return b
}

var formatterCases = []testCase{
	{name: "info", required: true, run: checkInfo},
	{name: "malformed-config", run: checkMalformedConfig},
	{name: "configure", required: true, run: func(f *fixture, r *report) {
		if inst := f.configured(r); inst != nil {
			inst.Close(f.ctx)
		}
	}},
	formatCase("samples", func(f *fixture, inst *wasm.Instance, r *report) {
		samples := SampleRecords()
		if _, err := inst.Format(f.ctx, batchOf(samples), len(samples)); err != nil {
			r.errorf("formatting the sample records: %w", err)
		}
	}),
	formatCase("samples-alone", func(f *fixture, inst *wasm.Instance, r *report) {
		samples := SampleRecords()
		batchOut, err := inst.Format(f.ctx, batchOf(samples), len(samples))
		if err != nil {
			r.skip = "the sample records do not format in a batch (see samples)"
			return
		}
		var inBatch [][]byte
		entries.Each(batchOut, func(e []byte) { inBatch = append(inBatch, bytes.Clone(e)) })
		if len(inBatch) != len(samples) {
			r.errorf("%d sample records formatted to %d entries", len(samples), len(inBatch))
			return
		}
		for i, got := range inBatch {
			alone, err := inst.Format(f.ctx, batchOf(samples[i:i+1]), 1)
			if err != nil {
				r.errorf("formatting sample %d alone: %w", i, err)
				return
			}
			var want []byte
			entries.Each(alone, func(e []byte) { want = e })
			if !bytes.Equal(got, want) {
				r.errorf("sample %d formats differently alone (%q) and in a batch (%q)", i, want, got)
			}
		}
	}),
	formatCase("empty-batch", func(f *fixture, inst *wasm.Instance, r *report) {
		out, err := inst.Format(f.ctx, nil, 0)
		if err != nil {
			r.errorf("formatting an empty batch: %w", err)
		} else if len(out) != 0 {
			r.errorf("an empty batch produced %d bytes", len(out))
		}
	}),
	formatCase("large-batch", func(f *fixture, inst *wasm.Instance, r *report) {
		samples := SampleRecords()
		var large [][]byte
		for len(large) < 2000 {
			large = append(large, samples...)
		}
		if _, err := inst.Format(f.ctx, batchOf(large), len(large)); err != nil {
			r.errorf("formatting a batch of 2000 records: %w", err)
		}
	}),
	formatCase("large-record", func(f *fixture, inst *wasm.Instance, r *report) {
		big := irecord.AppendHead(nil, time.Unix(1700000000, 0), record.LevelInfo, strings.Repeat("big ", 128<<10), "")
		big = irecord.AppendAttr(big, slog.String("blob", strings.Repeat("x", 256<<10)))
		if _, err := inst.Format(f.ctx, batchOf([][]byte{big}), 1); err != nil {
			r.errorf("formatting a 768 KiB record: %w", err)
		}
	}),
	formatCase("memory", func(f *fixture, inst *wasm.Instance, r *report) {
		samples := SampleRecords()
		warm := batchOf(samples)
		for range 20 {
			if _, err := inst.Format(f.ctx, warm, len(samples)); err != nil {
				r.errorf("formatting repeatedly: %w", err)
				return
			}
		}
		before := inst.MemorySize()
		for range 500 {
			if _, err := inst.Format(f.ctx, warm, len(samples)); err != nil {
				r.errorf("formatting repeatedly: %w", err)
				return
			}
		}
		if after := inst.MemorySize(); after > before+(4<<20) {
			r.errorf("memory grew from %d to %d bytes over 500 identical batches: the plugin keeps what it formats", before, after)
		}
	}),
}

// transport returns the transport's configured instance, configuring it
// on first use, or nil having reported why it cannot be.
func (f *fixture) transport(r *report) *wasm.Instance {
	if f.inst == nil {
		f.inst = f.configured(r)
	}
	return f.inst
}

// transportStep is a step of the transport's sequence on the configured
// instance, after the step named after (none for the first): once one
// fails, the steps after it are skipped.
func transportStep(name, after string, run func(f *fixture) error) testCase {
	return testCase{name: name, required: true, needs: after, run: func(f *fixture, r *report) {
		if f.transport(r) == nil {
			return
		}
		if err := run(f); err != nil {
			r.errorf("%w", err)
		}
	}}
}

var transportCases = []testCase{
	{name: "info", required: true, run: checkInfo},
	{name: "malformed-config", run: checkMalformedConfig},
	{name: "configure", required: true, run: func(f *fixture, r *report) { f.transport(r) }},
	transportStep("open", "", func(f *fixture) error { return f.inst.Open(f.ctx) }),
	transportStep("write-empty-batch", "open", func(f *fixture) error { _, err := f.inst.Write(f.ctx, 1, nil); return err }),
	transportStep("write-batch", "write-empty-batch", func(f *fixture) error {
		var b []byte
		for _, s := range SampleRecords() {
			b = entries.Append(b, append([]byte("entry: "), s...))
		}
		_, err := f.inst.Write(f.ctx, 2, b)
		return err
	}),
	transportStep("write-100-batches", "write-batch", func(f *fixture) error {
		b := entries.Append(nil, []byte("line\n"))
		for i := range 100 {
			if _, err := f.inst.Write(f.ctx, uint64(3+i), b); err != nil {
				return err
			}
		}
		return nil
	}),
	transportStep("flush", "write-100-batches", func(f *fixture) error { return f.inst.Flush(f.ctx) }),
	transportStep("close", "flush", func(f *fixture) error { return f.inst.ClosePlugin(f.ctx) }),
	{name: "marks", needs: "close", run: checkMarks},
}

// checkMarks: a transport that keeps marks (docs/plugin-abi.md, "Marks")
// names, on a later instance, what an earlier one wrote with its marks.
func checkMarks(f *fixture, r *report) {
	open := func() (*wasm.Instance, map[string]uint64) {
		inst := f.configured(r)
		if inst == nil {
			return nil, nil
		}
		if err := inst.Open(f.ctx); err != nil {
			inst.Close(f.ctx)
			r.errorf("open: %w", err)
			return nil, nil
		}
		held, keeps, err := inst.KeepMarks(f.ctx)
		if err != nil || !keeps {
			inst.Close(f.ctx)
			if err != nil {
				r.errorf("logtk_marks: %w", err)
			} else {
				r.skip = "the transport does not keep marks"
			}
			return nil, nil
		}
		got := map[string]uint64{}
		marks.Each(held, func(w []byte, index uint32, seq uint64) { got[fmt.Sprintf("%s#%d", w, index)] = seq })
		return inst, got
	}
	inst, held := open()
	if inst == nil {
		return
	}
	seq := held["plugintest#0"] + 10
	b := entries.Append(nil, []byte("marked line\n"))
	_, err := inst.WriteMarked(f.ctx, 1, marks.Append(nil, "plugintest", 0, seq), b)
	if err == nil {
		err = inst.ClosePlugin(f.ctx)
	}
	inst.Close(f.ctx)
	if err != nil {
		r.errorf("writing a marked batch: %w", err)
		return
	}
	inst, held = open()
	if inst == nil {
		return
	}
	defer inst.Close(f.ctx)
	if held["plugintest#0"] < seq {
		r.errorf("wrote a batch marked plugintest#0 seq %d, and the next instance's logtk_marks names seq %d", seq, held["plugintest#0"])
	}
}
