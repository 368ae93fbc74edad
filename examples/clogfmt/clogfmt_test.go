// Package clogfmt holds the tests of the C example plugin clogfmt.c:
// the conformance kit on the committed module, its output beside a Go
// rendering of the same format on sample and random records, and that
// the committed module is what the sources build.
package clogfmt

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/internal/wasm"
	"github.com/logtk/logtk/sdk/plugin"
	"github.com/logtk/logtk/sdk/plugintest"
)

func TestConformance(t *testing.T) {
	plugintest.TestFormatter(t, "clogfmt.wasm", plugintest.Options{Config: `{"time":false}`})
}

// reference is clogfmt.c's format, in Go.
func reference(b []byte, r *plugin.Record, withTime bool) []byte {
	if withTime && r.TimeUnixNano != 0 {
		b = append(b, "time="...)
		b = strconv.AppendInt(b, r.TimeUnixNano, 10)
		b = append(b, ' ')
	}
	b = append(b, "level="...)
	b = append(b, levelName(r.Level)...)
	if len(r.Worker) > 0 {
		b = append(b, " worker="...)
		b = append(b, r.Worker...)
		b = append(b, '#')
		b = strconv.AppendUint(b, uint64(r.WorkerIndex), 10)
		b = append(b, " seq="...)
		b = strconv.AppendUint(b, r.Seq, 10)
	}
	b = append(b, " msg="...)
	b = quote(b, r.Message)
	var a plugin.Attr
	for it := r.Attrs(); it.Next(&a); {
		b = refAttr(b, nil, &a)
	}
	return append(b, '\n')
}

func levelName(l int32) string {
	for _, x := range []struct {
		at   int32
		name string
	}{{21, "fatal"}, {17, "error"}, {13, "warn"}, {10, "notice"}, {9, "info"}, {5, "debug"}, {1, "trace"}} {
		if l >= x.at {
			return x.name
		}
	}
	return "unset"
}

func quote(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, c := range s {
		switch {
		case c == '"':
			b = append(b, `\"`...)
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '\r':
			b = append(b, `\r`...)
		case c == '\t':
			b = append(b, `\t`...)
		case c < 0x20:
			b = append(b, '\\', 'x', hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

func refAttr(b, prefix []byte, a *plugin.Attr) []byte {
	if a.Kind == plugin.KindGroup {
		p := append(append(append([]byte(nil), prefix...), a.Key...), '.')
		var g plugin.Attr
		for it := a.Group(); it.Next(&g); {
			b = refAttr(b, p, &g)
		}
		return b
	}
	b = append(b, ' ')
	k := append(append([]byte(nil), prefix...), a.Key...)
	plain := len(k) > 0
	for _, c := range a.Key {
		plain = plain && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-')
	}
	if plain {
		b = append(b, k...)
	} else {
		b = quote(b, k)
	}
	b = append(b, '=')
	switch a.Kind {
	case plugin.KindString:
		return quote(b, a.Data)
	case plugin.KindInt:
		return strconv.AppendInt(b, a.Int(), 10)
	case plugin.KindTime:
		return strconv.AppendInt(b, a.Time().UnixNano(), 10)
	case plugin.KindDuration:
		return append(strconv.AppendInt(b, int64(a.Duration()), 10), "ns"...)
	case plugin.KindUint:
		return strconv.AppendUint(b, a.Uint(), 10)
	case plugin.KindBool:
		return strconv.AppendBool(b, a.Bool())
	case plugin.KindFloat:
		f := a.Float()
		switch {
		case math.IsNaN(f):
			return append(b, "NaN"...)
		case math.IsInf(f, 1):
			return append(b, "+Inf"...)
		case math.IsInf(f, -1):
			return append(b, "-Inf"...)
		}
		return strconv.AppendFloat(b, f, 'g', 17, 64)
	case plugin.KindBytes:
		const hex = "0123456789abcdef"
		for _, c := range a.Data {
			b = append(b, hex[c>>4], hex[c&15])
		}
		return b
	}
	return append(b, '?')
}

// TestMatchesReference: the module's output equals the Go rendering,
// byte for byte, on the kit's sample records and 2,000 random ones
// (every attribute kind, nested groups, odd keys and bytes, extreme
// numbers), in batches.
func TestMatchesReference(t *testing.T) {
	ctx := context.Background()
	b, err := os.ReadFile("clogfmt.wasm")
	if err != nil {
		t.Fatal(err)
	}
	m, err := wasm.Load(ctx, b, wasm.Options{Name: "clogfmt"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	inst, err := m.NewInstance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)
	if err := inst.Configure(ctx, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	recs := plugintest.SampleRecords()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		recs = append(recs, plugintest.RandomRecord(rng))
	}
	for start := 0; start < len(recs); start += 97 {
		batch := recs[start:min(start+97, len(recs))]
		var in []byte
		for _, r := range batch {
			in = entries.Append(in, r)
		}
		out, err := inst.Format(ctx, in, len(batch))
		if err != nil {
			t.Fatal(err)
		}
		i := 0
		entries.Each(out, func(got []byte) {
			var v plugin.Record
			v.Parse(batch[i])
			if want := reference(nil, &v, true); !bytes.Equal(got, want) {
				t.Fatalf("record %d:\n got %q\nwant %q", start+i, got, want)
			}
			i++
		})
	}
}

// TestModuleIsTheSources: the committed clogfmt.wasm is what the pinned
// clang (make c-plugins) builds from clogfmt.c and sdk/c/logtk.h. Where
// that clang is missing the test says so and stops, unless
// LOGTK_REQUIRE_CLANG is set (.ci/run installs it and sets it).
func TestModuleIsTheSources(t *testing.T) {
	if _, err := exec.LookPath("clang-14"); err != nil {
		if os.Getenv("LOGTK_REQUIRE_CLANG") != "" {
			t.Fatal("clang-14 is required (LOGTK_REQUIRE_CLANG) and missing: apt-get install clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32")
		}
		t.Skip("clang-14 not installed: the committed module is not compared with its sources")
	}
	out := filepath.Join(t.TempDir(), "clogfmt.wasm")
	cmd := exec.Command("make", "-s", "-C", "../..", "c-plugins", "C_OUT="+filepath.Dir(out))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make c-plugins: %v\n%s", err, b)
	}
	built, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("clogfmt.wasm")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(built, committed) {
		t.Fatalf("examples/clogfmt/clogfmt.wasm (%d bytes) is not what clogfmt.c builds (%d bytes): run make c-plugins and commit it", len(committed), len(built))
	}
}

// BenchmarkLogfmt: the C plugin beside the Go example plugin of the same
// kind (examples/redact: logfmt too, with RFC 3339 times and redaction),
// both in Wasm with the time budget on, batches of 512 sample records:
// ns per record, the module's size, its compile time and an instance's
// memory after a batch.
func BenchmarkLogfmt(b *testing.B) {
	for _, p := range []struct{ name, path, config string }{
		{"c", "clogfmt.wasm", `{}`},
		{"go", plugintest.Build(b, "../redact"), `{"keys":["nothing"]}`},
	} {
		wasmBytes, err := os.ReadFile(p.path)
		if err != nil {
			b.Fatal(err)
		}
		recs := plugintest.SampleRecords()
		var batch []byte
		for i := range 512 {
			batch = entries.Append(batch, recs[i%len(recs)])
		}
		ctx := context.Background()
		b.Run(p.name+"/format", func(b *testing.B) {
			m, err := wasm.Load(ctx, wasmBytes, wasm.Options{Name: p.name})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close(ctx)
			inst, err := m.NewInstance(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer inst.Close(ctx)
			if err := inst.Configure(ctx, []byte(p.config)); err != nil {
				b.Fatal(err)
			}
			var out []byte
			for n := 0; n < b.N; n += 512 {
				if out, err = inst.FormatAppend(ctx, out[:0], batch, 512); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(inst.MemorySize()), "instance-bytes")
			b.ReportMetric(float64(len(wasmBytes)), "module-bytes")
		})
		b.Run(p.name+"/compile", func(b *testing.B) {
			for b.Loop() {
				m, err := wasm.Load(ctx, wasmBytes, wasm.Options{Name: p.name, CacheDir: "-"})
				if err != nil {
					b.Fatal(err)
				}
				m.Close(ctx)
			}
		})
	}
}
