package plugins_test

import (
	"bytes"
	"context"
	stdjson "encoding/json"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/logtk/logtk/plugins/builtin"

	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/internal/wasm"
	"github.com/logtk/logtk/plugins/json"
	"github.com/logtk/logtk/plugins/protobuf"
	"github.com/logtk/logtk/plugins/protobuf/protobuftest"
	"github.com/logtk/logtk/plugins/text"
	"github.com/logtk/logtk/sdk/plugin"
	"github.com/logtk/logtk/sdk/plugintest"
)

// refFormatter is one reference formatter with one configuration, natively
// and as a Wasm plugin: the Go package built for Wasm, or the module
// built from C that logtk-host embeds.
type refFormatter struct {
	name, plugin string
	config       []byte
	native       plugin.Formatter
	embedded     bool
}

func (f refFormatter) wasm(tb testing.TB) []byte {
	if f.embedded {
		b, ok := builtin.Module(f.plugin)
		if !ok {
			tb.Fatalf("no embedded %s", f.plugin)
		}
		return b
	}
	b, err := os.ReadFile(plugintest.Build(tb, f.plugin+"/plugin"))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// instance loads the Wasm plugin and returns a configured instance.
func (f refFormatter) instance(tb testing.TB, limits wasm.Limits) *wasm.Instance {
	ctx := context.Background()
	m, err := wasm.Load(ctx, f.wasm(tb), wasm.Options{Name: f.name, Limits: limits})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close(ctx) })
	inst, err := m.NewInstance(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if err := inst.Configure(ctx, f.config); err != nil {
		tb.Fatal(err)
	}
	return inst
}

func referenceFormatters(tb testing.TB) []refFormatter {
	schema, _, err := protobuftest.UserSchema()
	if err != nil {
		tb.Fatal(err)
	}
	userCfg, _ := stdjson.Marshal(map[string]any{"schema": schema, "message": protobuftest.Message})
	user, userC := protobuf.New(), protobuf.New()
	if err := user.Configure(userCfg); err != nil {
		tb.Fatal(err)
	}
	if err := userC.Configure(userCfg); err != nil {
		tb.Fatal(err)
	}
	return []refFormatter{
		{"text", "text", []byte("{}"), text.New(), false},
		{"text-c", "text", []byte("{}"), text.New(), true},
		{"json", "json", []byte("{}"), json.New(), false},
		{"json-c", "json", []byte("{}"), json.New(), true},
		{"protobuf", "protobuf", []byte("{}"), protobuf.New(), false},
		{"protobuf-c", "protobuf", []byte("{}"), protobuf.New(), true},
		{"protobuf-user-schema", "protobuf", userCfg, user, false},
		{"protobuf-user-schema-c", "protobuf", userCfg, userC, true},
	}
}

// TestWasmMatchesNative: each reference formatter gives the same bytes as
// a Wasm plugin in the host's runtime as compiled natively, for every
// sample record, in batches of several sizes (the Wasm calls reuse their
// buffers, and the protobuf formatter hands its input back), appending to
// what the caller's buffer already holds. Both ways the host rewrites a
// module are covered: with the time budget's checks and threaded jumps,
// and (call_timeout off) with threaded jumps only.
func TestWasmMatchesNative(t *testing.T) {
	ctx := context.Background()
	samples := plugintest.SampleRecords()
	for _, f := range referenceFormatters(t) {
		for _, limits := range []wasm.Limits{{}, {NoCallTimeout: true}} {
			t.Run(fmt.Sprintf("%s/no-time-budget=%v", f.name, limits.NoCallTimeout), func(t *testing.T) {
				inst := f.instance(t, limits)
				// Growing then shrinking batches: later inputs reuse the buffer
				// the first large one allocated.
				for _, size := range []int{1, 3, 64, 512, 2, 100} {
					var batch []byte
					for i := range size {
						batch = entries.Append(batch, samples[(i*7)%len(samples)])
					}
					prefix := fmt.Appendf(nil, "prefix-%d|", size)
					want, err := plugin.FormatBatch(f.native, bytes.Clone(prefix), batch)
					if err != nil {
						t.Fatal(err)
					}
					got, err := inst.FormatAppend(ctx, bytes.Clone(prefix), batch, size)
					if err != nil {
						t.Fatalf("batch of %d: %v", size, err)
					}
					if !bytes.HasPrefix(got, prefix) || !sameEntries(got[len(prefix):], want[len(prefix):]) {
						t.Fatalf("batch of %d: Wasm output differs from native (%d vs %d bytes)", size, len(got), len(want))
					}
					// Format, as the pipeline calls it (the batch itself when
					// the plugin hands it back unchanged).
					got, err = inst.Format(ctx, batch, size)
					if err != nil || !sameEntries(got, want[len(prefix):]) {
						t.Fatalf("batch of %d: Format = %d bytes, %v; want the native output", size, len(got), err)
					}
				}
			})
		}
	}
}

// sameEntries reports whether two formatters' outputs hold the same
// entries: the same bytes for each record, whatever the width of the
// lengths (the ABI lets a plugin pad them, as the C ones do).
func sameEntries(a, b []byte) bool {
	var ea, eb [][]byte
	entries.Each(a, func(e []byte) { ea = append(ea, e) })
	entries.Each(b, func(e []byte) { eb = append(eb, e) })
	return slices.EqualFunc(ea, eb, bytes.Equal)
}

// TestFormattersDoNotAllocate: formatting a record into a buffer with
// room allocates nothing, natively (in Wasm an allocation would cost more
// still), except the text formatter's deferral of a multi-line value past
// its line.
func TestFormattersDoNotAllocate(t *testing.T) {
	samples := plugintest.SampleRecords()
	for _, f := range referenceFormatters(t) {
		for i, rec := range samples {
			var v plugin.Record
			if !v.Parse(rec) {
				t.Fatalf("sample %d does not parse", i)
			}
			buf := make([]byte, 0, 4096)
			if out, _ := f.native.Format(buf, &v); bytes.Contains(out, []byte("\n    | ")) {
				continue // a multi-line value, deferred past the line
			}
			if n := testing.AllocsPerRun(100, func() { f.native.Format(buf[:0], &v) }); n != 0 {
				t.Errorf("%s: sample %d: %.0f allocations a record", f.name, i, n)
			}
		}
	}
}
