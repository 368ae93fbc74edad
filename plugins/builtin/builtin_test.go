package builtin

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logtk/logtk/internal/entries"
	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/wasm"
	"github.com/logtk/logtk/plugins/json"
	"github.com/logtk/logtk/plugins/text"
	"github.com/logtk/logtk/sdk/plugin"
	"github.com/logtk/logtk/sdk/plugintest"
)

// A pair is an embedded module and its Go reference, configured alike.
type pair struct {
	name, config string
	native       func() (plugin.Formatter, error)
}

// pairs lists every option of each embedded formatter.
func pairs() []pair {
	jsonWith := func(cfg string) pair {
		return pair{"json", cfg, func() (plugin.Formatter, error) {
			f := json.New()
			return f, f.Configure([]byte(cfg))
		}}
	}
	textWith := func(cfg string) pair {
		return pair{"text", cfg, func() (plugin.Formatter, error) {
			f := text.New()
			return f, f.Configure([]byte(cfg))
		}}
	}
	return []pair{
		jsonWith(`{}`), jsonWith(`{"time_format":"unix_nano"}`), jsonWith(`{"time_format":"rfc3339","attrs_key":"attrs"}`),
		jsonWith(`{"attrs_key":"a \"quoted\" \u00e9 key"}`),
		textWith(`{}`), textWith(`{"theme":"color"}`), textWith(`{"theme":"none"}`),
	}
}

// differ runs a formatter's embedded module and its Go reference side by
// side.
type differ struct {
	p      pair
	inst   *wasm.Instance
	native plugin.Formatter
}

func newDiffer(tb testing.TB, p pair) *differ {
	tb.Helper()
	ctx := context.Background()
	b, ok := Module(p.name)
	if !ok {
		tb.Fatalf("no embedded %s", p.name)
	}
	m, err := wasm.Load(ctx, b, wasm.Options{Name: p.name})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close(ctx) })
	inst, err := m.NewInstance(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { inst.Close(ctx) })
	if err := inst.Configure(ctx, []byte(p.config)); err != nil {
		tb.Fatalf("%s %s: %v", p.name, p.config, err)
	}
	native, err := p.native()
	if err != nil {
		tb.Fatalf("%s %s natively: %v", p.name, p.config, err)
	}
	return &differ{p, inst, native}
}

// check formats recs in one batch and compares each record's output with
// the reference's. A batch that holds a record the reference cannot
// parse must fail as a whole.
func (d *differ) check(recs [][]byte) error {
	var batch []byte
	parsed := true
	for _, r := range recs {
		batch = entries.Append(batch, r)
		var v plugin.Record
		parsed = parsed && v.Parse(r)
	}
	out, err := d.inst.Format(context.Background(), batch, len(recs))
	if !parsed {
		if err == nil {
			return fmt.Errorf("%s %s: a batch with a malformed record formatted", d.p.name, d.p.config)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s: %v", d.p.name, d.p.config, err)
	}
	i := 0
	entries.Each(out, func(got []byte) {
		if err != nil {
			return
		}
		var v plugin.Record
		v.Parse(recs[i])
		want, ferr := d.native.Format(nil, &v)
		if ferr != nil {
			err = fmt.Errorf("record %x: natively: %v", recs[i], ferr)
		} else if !bytes.Equal(got, want) {
			err = fmt.Errorf("%s %s, record %x:\n got %q\nwant %q", d.p.name, d.p.config, recs[i], got, want)
		}
		i++
	})
	if err == nil && i != len(recs) {
		err = fmt.Errorf("%s: %d entries for %d records", d.p.name, i, len(recs))
	}
	return err
}

// TestMatchesReference: every embedded formatter, under each of its
// options, writes byte for byte what its Go reference writes, on the
// kit's sample records, 3,000 random ones (plugintest.RandomRecord:
// every attribute kind, floats at the edges, quoting and Unicode) and
// 20,000 floats, in batches.
func TestMatchesReference(t *testing.T) {
	recs := plugintest.SampleRecords()
	rng := rand.New(rand.NewPCG(7, 11))
	for range 3000 {
		recs = append(recs, plugintest.RandomRecord(rng))
	}
	// 20,000 floats: random bits, and the powers of two, where the
	// shortest form's interval is lopsided.
	for i := range 200 {
		b := irecord.AppendHeadNanos(nil, 0, 9, "floats", "")
		for j := range 100 {
			f := math.Float64frombits(rng.Uint64())
			if j%4 == 0 {
				f = math.Ldexp(1, (i*25+j/4)%2098-1074)
			}
			b = irecord.AppendAttr(b, slog.Float64("f", f))
		}
		recs = append(recs, b)
	}
	for _, p := range pairs() {
		t.Run(p.name+p.config, func(t *testing.T) {
			d := newDiffer(t, p)
			for start := 0; start < len(recs); start += 61 {
				if err := d.check(recs[start:min(start+61, len(recs))]); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestMutatedRecords: records changed byte by byte (flipped, cut,
// inserted), one at a time: where the reference parses them the module
// writes what it writes; where it does not, the module refuses the
// batch. The host validates records first; this holds the module to the
// reference on the records validation lets through and more.
func TestMutatedRecords(t *testing.T) {
	base := plugintest.SampleRecords()
	rng := rand.New(rand.NewPCG(3, 5))
	for range 50 {
		base = append(base, plugintest.RandomRecord(rng))
	}
	ds := []*differ{}
	for _, p := range pairs() {
		ds = append(ds, newDiffer(t, p))
	}
	for range 4000 {
		r := bytes.Clone(base[rng.IntN(len(base))])
		for range 1 + rng.IntN(3) {
			if len(r) == 0 {
				break
			}
			i := rng.IntN(len(r))
			switch rng.IntN(4) {
			case 0:
				r[i] ^= byte(1 << rng.IntN(8))
			case 1:
				r = r[:i]
			case 2:
				r = append(r[:i:i], append([]byte{byte(rng.IntN(256))}, r[i:]...)...)
			default:
				r[i] = byte(rng.IntN(256))
			}
		}
		for _, d := range ds {
			if err := d.check([][]byte{r}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// FuzzMatchesReference: any bytes that make a valid record (the host
// validates each record before a formatter sees it) are written by each
// embedded formatter, under each of its options, as its Go reference
// writes them.
func FuzzMatchesReference(f *testing.F) {
	for _, r := range plugintest.SampleRecords() {
		f.Add(r)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for range 20 {
		f.Add(plugintest.RandomRecord(rng))
	}
	var ds []*differ
	for _, p := range pairs() {
		ds = append(ds, newDiffer(f, p))
	}
	f.Fuzz(func(t *testing.T, r []byte) {
		if irecord.Validate(r) != nil {
			return
		}
		for _, d := range ds {
			if err := d.check([][]byte{r}); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestConfigureAsTheReference: each module takes the configurations its
// reference takes and refuses those it refuses, with the same message
// for a value it does not know.
func TestConfigureAsTheReference(t *testing.T) {
	for _, tc := range []struct{ name, config string }{
		{"json", ``}, {"json", `{}`}, {"json", ` { } `}, {"json", `null`}, {"json", `{"time_format":"unix_nano"}`},
		{"json", `{"time_format":""}`}, {"json", `{"time_format":null}`}, {"json", `{"TIME_FORMAT":"unix_nano"}`},
		{"json", `{"time_format":"nanos"}`}, {"json", `{"time_format":1}`}, {"json", `{"time_format":"unix\u005fnano"}`},
		{"json", `{"other":[1,{"a":null}],"attrs_key":"x"}`}, {"json", `{"attrs_key":"\ud83d\ude00"}`},
		{"json", `{`}, {"json", `{"time_format":"unix_nano"`}, {"json", `[]`}, {"json", `{"a":1,}`}, {"json", `{} x`},
		{"text", `{}`}, {"text", `{"theme":"color"}`}, {"text", `{"theme":"colour"}`}, {"text", `{"theme":true}`},
		{"text", `{"theme":"\"odd\" ✓"}`}, {"text", `"none"`},
	} {
		ctx := context.Background()
		b, _ := Module(tc.name)
		m, err := wasm.Load(ctx, b, wasm.Options{Name: tc.name})
		if err != nil {
			t.Fatal(err)
		}
		inst, err := m.NewInstance(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cerr := inst.Configure(ctx, []byte(tc.config))
		var nerr error
		if tc.name == "json" {
			nerr = json.New().Configure([]byte(tc.config))
		} else {
			nerr = text.New().Configure([]byte(tc.config))
		}
		switch {
		case (cerr == nil) != (nerr == nil):
			t.Errorf("%s %s: module says %v, reference %v", tc.name, tc.config, cerr, nerr)
		case nerr != nil && strings.HasPrefix(nerr.Error(), "unknown") && !strings.HasSuffix(cerr.Error(), nerr.Error()):
			t.Errorf("%s %s: module says %q, reference %q", tc.name, tc.config, cerr, nerr)
		}
		inst.Close(ctx)
		m.Close(ctx)
	}
}

// TestConformance: the kit passes on each embedded module.
func TestConformance(t *testing.T) {
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			b, _ := Module(name)
			path := filepath.Join(t.TempDir(), name+".wasm")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			plugintest.TestFormatter(t, path, plugintest.Options{})
		})
	}
}

// TestInfoAsTheReference: each module describes itself as its Go
// reference does: name, version, configuration fields and their docs.
func TestInfoAsTheReference(t *testing.T) {
	ctx := context.Background()
	for name, want := range map[string]plugin.Info{"json": json.Info, "text": text.Info} {
		b, _ := Module(name)
		m, err := wasm.Load(ctx, b, wasm.Options{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		got := m.Info()
		if got.Name != want.Name || got.Version != want.Version || got.Kind != "format" || len(got.Config) != len(want.Config) {
			t.Errorf("%s: info %+v, want %+v", name, got, want)
		}
		for i := range min(len(got.Config), len(want.Config)) {
			if g, w := got.Config[i], want.Config[i]; g.Name != w.Name || g.Type != string(w.Type) || g.Doc != w.Doc {
				t.Errorf("%s: config field %d is %+v, want %+v", name, i, g, w)
			}
		}
		m.Close(ctx)
	}
}

// TestModulesAreTheSources: the committed modules are what the pinned
// clang (make c-plugins) builds from plugins/c. Where that clang is
// missing the test says so and stops, unless LOGTK_REQUIRE_CLANG is set
// (.ci/run installs it and sets it).
func TestModulesAreTheSources(t *testing.T) {
	if _, err := exec.LookPath("clang-14"); err != nil {
		if os.Getenv("LOGTK_REQUIRE_CLANG") != "" {
			t.Fatal("clang-14 is required (LOGTK_REQUIRE_CLANG) and missing: apt-get install clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32")
		}
		t.Skip("clang-14 not installed: the committed modules are not compared with their sources")
	}
	out := t.TempDir()
	cmd := exec.Command("make", "-s", "-C", "../..", "c-plugins", "C_OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make c-plugins: %v\n%s", err, b)
	}
	for _, name := range names {
		built, err := os.ReadFile(filepath.Join(out, name+".wasm"))
		if err != nil {
			t.Fatal(err)
		}
		committed, _ := Module(name)
		if !bytes.Equal(built, committed) {
			t.Errorf("plugins/builtin/%s.wasm (%d bytes) is not what plugins/c/%s.c builds (%d bytes): run make c-plugins and commit it", name, len(committed), name, len(built))
		}
	}
}
