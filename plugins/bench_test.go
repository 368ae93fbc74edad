// Benchmarks of the reference formatters: the same code natively and as a
// Wasm plugin in the host's runtime, in one run, per batch size; and the
// cost of the time budget (wazero's interruption checks) per record.
package plugins_test

import (
	"context"
	"fmt"
	"sort"
	"testing"

	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/internal/wasm"
	"github.com/logtk/logtk/sdk/plugin"
	"github.com/logtk/logtk/sdk/plugintest"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

func batchOf(n int) []byte {
	s := plugintest.SampleRecords()[:2] // a structured record and a plain one
	var b []byte
	for i := range n {
		b = entries.Append(b, s[i%len(s)])
	}
	return b
}

func BenchmarkFormat(b *testing.B) {
	formatters := referenceFormatters(b)
	ctx := context.Background()
	for _, f := range formatters {
		for _, size := range []int{1, 64, 512} {
			batch := batchOf(size)
			b.Run(fmt.Sprintf("%s/batch=%d/native", f.name, size), func(b *testing.B) {
				var out []byte
				for b.Loop() {
					out, _ = plugin.FormatBatch(f.native, out[:0], batch)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/record")
			})
			for _, budget := range []bool{true, false} {
				name := "wasm"
				if !budget {
					name = "wasm-no-time-budget"
				}
				// Format, as the host's pipeline calls it: a fresh output,
				// or the batch itself when the plugin hands it back
				// unchanged (the protobuf formatter with logtk's schema).
				b.Run(fmt.Sprintf("%s/batch=%d/%s", f.name, size, name), func(b *testing.B) {
					inst := f.instance(b, wasm.Limits{NoCallTimeout: !budget})
					for b.Loop() {
						if _, err := inst.Format(ctx, batch, size); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/record")
				})
			}
		}
	}
}

// BenchmarkFormatCalls counts the function calls a Wasm formatter's code
// makes per record (a wazero function listener; its time is not the
// point), and with -v logs the most called functions. In Go's Wasm code
// a call passes its arguments and results through linear memory: when a
// helper stops being inlined, this count shows it first (a lost inlining
// of record.AppendUvarint once cost 45 calls a record).
func BenchmarkFormatCalls(b *testing.B) {
	for _, f := range referenceFormatters(b) {
		b.Run(f.name, func(b *testing.B) {
			calls := map[string]int{}
			ctx := experimental.WithFunctionListenerFactory(context.Background(), callCounter(calls))
			m, err := wasm.Load(ctx, f.wasm(b), wasm.Options{Name: f.name, CacheDir: "-", Limits: wasm.Limits{NoCallTimeout: true}})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close(ctx)
			inst, err := m.NewInstance(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := inst.Configure(ctx, f.config); err != nil {
				b.Fatal(err)
			}
			const size = 512
			batch := batchOf(size)
			if _, err := inst.Format(ctx, batch, size); err != nil { // buffers grown
				b.Fatal(err)
			}
			clear(calls)
			for b.Loop() {
				if _, err := inst.Format(ctx, batch, size); err != nil {
					b.Fatal(err)
				}
			}
			total := 0
			names := make([]string, 0, len(calls))
			for name, n := range calls {
				total += n
				names = append(names, name)
			}
			records := float64(b.N * size)
			b.ReportMetric(float64(total)/records, "calls/record")
			if testing.Verbose() {
				sort.Slice(names, func(i, j int) bool { return calls[names[i]] > calls[names[j]] })
				for _, name := range names[:min(len(names), 12)] {
					b.Logf("%7.2f %s", float64(calls[name])/records, name)
				}
			}
		})
	}
}

// callCounter is a listener factory counting calls into calls by name.
type callCounter map[string]int

func (c callCounter) NewFunctionListener(def api.FunctionDefinition) experimental.FunctionListener {
	name := def.DebugName()
	return experimental.FunctionListenerFunc(func(context.Context, api.Module, api.FunctionDefinition, []uint64, experimental.StackIterator) {
		c[name]++
	})
}
