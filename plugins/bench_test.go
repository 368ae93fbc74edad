// Benchmarks of the reference formatters: the same code natively and as a
// Wasm plugin in the host's runtime, in one run, per batch size; and the
// cost of the time budget (wazero's interruption checks) per record.
package plugins_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/internal/wasm"
	"github.com/logtk/logtk/sdk/plugin"
	"github.com/logtk/logtk/sdk/plugintest"
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
