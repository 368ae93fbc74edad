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
	"github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/wasm"
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

// TestFormatter runs CheckFormatter and fails t with every violation.
func TestFormatter(t *testing.T, wasmPath string, opts Options) {
	t.Helper()
	if err := CheckFormatter(wasmPath, opts); err != nil {
		t.Fatal(err)
	}
}

// TestTransport runs CheckTransport and fails t with every violation.
func TestTransport(t *testing.T, wasmPath string, opts Options) {
	t.Helper()
	if err := CheckTransport(wasmPath, opts); err != nil {
		t.Fatal(err)
	}
}

var knownTypes = map[string]bool{"string": true, "number": true, "bool": true, "list(string)": true, "map(string)": true, "file": true, "path": true}

func load(wasmPath string, opts Options, kind string) (*wasm.Module, error) {
	b, err := os.ReadFile(wasmPath)
	if err != nil {
		return nil, err
	}
	g := wasm.Grants{Clock: opts.Clock}
	for _, d := range opts.Dirs {
		g.Dirs = append(g.Dirs, wasm.Dir{Host: d})
	}
	m, err := wasm.Load(context.Background(), b, wasm.Options{Name: kind + " under test", Grants: g,
		Limits: wasm.Limits{CallTimeout: opts.CallTimeout}})
	if err != nil {
		return nil, err
	}
	info := m.Info()
	var errs []error
	if info.Kind != kind {
		errs = append(errs, fmt.Errorf("logtk_info: kind %q, want %q", info.Kind, kind))
	}
	if info.ABI != wasm.ABIVersion {
		errs = append(errs, fmt.Errorf("logtk_info: abi %d, want %d", info.ABI, wasm.ABIVersion))
	}
	if info.Name == "" || info.Version == "" {
		errs = append(errs, errors.New("logtk_info: name and version must not be empty"))
	}
	for _, f := range info.Config {
		if !knownTypes[f.Type] || f.Name == "" {
			errs = append(errs, fmt.Errorf("logtk_info: config field %q has unknown type %q", f.Name, f.Type))
		}
	}
	if len(errs) > 0 {
		m.Close(context.Background())
		return nil, errors.Join(errs...)
	}
	return m, nil
}

func configured(ctx context.Context, m *wasm.Module, cfg string) (*wasm.Instance, error) {
	inst, err := m.NewInstance(ctx)
	if err != nil {
		return nil, err
	}
	if cfg == "" {
		cfg = "{}"
	}
	if err := inst.Configure(ctx, []byte(cfg)); err != nil {
		inst.Close(ctx)
		return nil, fmt.Errorf("Configure(%s): %w", cfg, err)
	}
	return inst, nil
}

func batchOf(recs [][]byte) []byte {
	var b []byte
	for _, r := range recs {
		b = entries.Append(b, r)
	}
	return b
}

// CheckFormatter loads a format plugin in the host's runtime and checks
// the contract: its info, that malformed configuration is an error and not
// a crash, that it formats the sample records (every schema feature), an
// empty batch, a large batch and a large record, that a record formats the
// same alone as in a batch, and that its memory stays flat over many
// batches. It returns every violation found, or nil.
func CheckFormatter(wasmPath string, opts Options) error {
	ctx := context.Background()
	m, err := load(wasmPath, opts, "format")
	if err != nil {
		return err
	}
	defer m.Close(ctx)
	var errs []error
	check := func(what string, err error) bool {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			return false
		}
		return true
	}

	// Malformed configuration must be refused with a status, not a trap.
	if inst, err := m.NewInstance(ctx); check("instantiate", err) {
		err := inst.Configure(ctx, []byte(`{"unterminated`))
		var ce *wasm.CallError
		if errors.As(err, &ce) && ce.Broken {
			errs = append(errs, fmt.Errorf("malformed configuration crashed the plugin (it must return an error): %w", err))
		}
		inst.Close(ctx)
	}

	inst, err := configured(ctx, m, opts.Config)
	if !check("configure", err) {
		return errors.Join(errs...)
	}
	defer func() { inst.Close(ctx) }()
	fresh := func() {
		inst.Close(ctx)
		inst, _ = configured(ctx, m, opts.Config)
	}

	samples := SampleRecords()
	batchOut, err := inst.Format(ctx, batchOf(samples), len(samples))
	if check("formatting the sample records", err) {
		var i int
		entries.Each(batchOut, func(got []byte) {
			alone, err := inst.Format(ctx, batchOf(samples[i:i+1]), 1)
			if check(fmt.Sprintf("formatting sample %d alone", i), err) {
				var want []byte
				entries.Each(alone, func(e []byte) { want = e })
				if !bytes.Equal(got, want) {
					errs = append(errs, fmt.Errorf("sample %d formats differently alone (%q) and in a batch (%q)", i, want, got))
				}
			}
			i++
		})
	} else {
		fresh()
	}

	if out, err := inst.Format(ctx, nil, 0); check("formatting an empty batch", err) && len(out) != 0 {
		errs = append(errs, fmt.Errorf("an empty batch produced %d bytes", len(out)))
	} else if err != nil {
		fresh()
	}

	var large [][]byte
	for len(large) < 2000 {
		large = append(large, samples...)
	}
	if _, err := inst.Format(ctx, batchOf(large), len(large)); !check("formatting a batch of 2000 records", err) {
		fresh()
	}

	big := record.AppendHead(nil, time.Unix(1700000000, 0), record.LevelInfo, strings.Repeat("big ", 128<<10), "")
	big = record.AppendAttr(big, slog.String("blob", strings.Repeat("x", 256<<10)))
	if _, err := inst.Format(ctx, batchOf([][]byte{big}), 1); !check("formatting a 768 KiB record", err) {
		fresh()
	}

	// Memory must not grow with the number of batches.
	warm := batchOf(samples)
	for range 20 {
		if _, err := inst.Format(ctx, warm, len(samples)); !check("formatting repeatedly", err) {
			return errors.Join(errs...)
		}
	}
	before := inst.MemorySize()
	for range 500 {
		if _, err := inst.Format(ctx, warm, len(samples)); !check("formatting repeatedly", err) {
			return errors.Join(errs...)
		}
	}
	if after := inst.MemorySize(); after > before+(4<<20) {
		errs = append(errs, fmt.Errorf("memory grew from %d to %d bytes over 500 identical batches: the plugin keeps what it formats", before, after))
	}
	return errors.Join(errs...)
}

// CheckTransport loads a transport plugin and checks the contract:
// configure, open, write the formatted sample batches, flush and close,
// and that malformed configuration is an error and not a crash.
func CheckTransport(wasmPath string, opts Options) error {
	ctx := context.Background()
	m, err := load(wasmPath, opts, "transport")
	if err != nil {
		return err
	}
	defer m.Close(ctx)
	var errs []error
	if inst, err := m.NewInstance(ctx); err == nil {
		err := inst.Configure(ctx, []byte(`{"unterminated`))
		var ce *wasm.CallError
		if errors.As(err, &ce) && ce.Broken {
			errs = append(errs, fmt.Errorf("malformed configuration crashed the plugin: %w", err))
		}
		inst.Close(ctx)
	}
	inst, err := configured(ctx, m, opts.Config)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	defer inst.Close(ctx)
	steps := []struct {
		name string
		fn   func() error
	}{
		{"open", func() error { return inst.Open(ctx) }},
		{"write an empty batch", func() error { _, err := inst.Write(ctx, 1, nil); return err }},
		{"write a batch", func() error {
			var b []byte
			for _, s := range SampleRecords() {
				b = entries.Append(b, append([]byte("entry: "), s...))
			}
			_, err := inst.Write(ctx, 2, b)
			return err
		}},
		{"write 100 batches", func() error {
			b := entries.Append(nil, []byte("line\n"))
			for i := range 100 {
				if _, err := inst.Write(ctx, uint64(3+i), b); err != nil {
					return err
				}
			}
			return nil
		}},
		{"flush", func() error { return inst.Flush(ctx) }},
		{"close", func() error { return inst.ClosePlugin(ctx) }},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			return errors.Join(append(errs, fmt.Errorf("%s: %w", s.name, err))...)
		}
	}
	return errors.Join(errs...)
}
