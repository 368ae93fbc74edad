package host

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/logtk/logtk/sdk/plugintest"
)

// countingOutput counts records and bytes and keeps nothing: the benchmark
// measures the host, not an output.
type countingOutput struct{ records, bytes atomic.Int64 }

func (c *countingOutput) WriteBatch(recs [][]byte) error {
	c.records.Add(int64(len(recs)))
	for _, r := range recs {
		c.bytes.Add(int64(len(r)))
	}
	return nil
}
func (c *countingOutput) Close() error { return nil }

// BenchmarkIngest measures records/s from worker processes through the
// host (IPC read, validation, stamping, queueing) into an Output that only
// counts, for one and for four workers. Each op is one record; the time
// includes starting the worker processes, which large b.N amortises.
func BenchmarkIngest(b *testing.B) {
	for _, workers := range []int{1, 4} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			per := max(b.N/workers, 1)
			out := &countingOutput{}
			w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": fmt.Sprint(per)})
			w.Count = workers
			h, err := New(&Config{Workers: []WorkerConfig{w}}, Options{Output: out, Logger: hclog.NewNullLogger()})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			h.Start()
			<-h.Done()
			el := time.Since(start)
			b.StopTimer()
			n := out.records.Load()
			if n < int64(per*workers) {
				b.Fatalf("%d records arrived, want at least %d", n, per*workers)
			}
			b.ReportMetric(float64(n)/el.Seconds(), "records/s")
			b.ReportMetric(float64(out.bytes.Load())/el.Seconds()/1e6, "MB/s")
		})
	}
}

// BenchmarkPipeline measures records/s through a Wasm format stage and the
// Wasm file transport (fsync "never", so the disk is not what is measured)
// per batch size. Each op is one record.
func BenchmarkPipeline(b *testing.B) {
	for _, format := range []string{"protobuf", "json", "text"} {
		for _, size := range []int{64, 512} {
			b.Run(fmt.Sprintf("%s/batch=%d", format, size), func(b *testing.B) {
				dir := b.TempDir()
				cfg := &Config{
					Formats: []FormatConfig{{Name: format, Plugin: plugintest.Build(b, "../plugins/"+format+"/plugin")}},
					Transports: []TransportConfig{{Name: "file", Plugin: plugintest.Build(b, "../plugins/file/plugin"), Format: format,
						Config: []byte(fmt.Sprintf(`{"path":%q,"fsync":"never","framing":"length-prefixed"}`, dir+"/out")),
						Allow:  Allow{Directories: []string{dir}}}},
					DeadLetterDir: dir + "/dead",
				}
				p, err := newPipeline(context.Background(), cfg, hclog.NewNullLogger(), func(int32, string, ...slog.Attr) {}, func() bool { return false })
				if err != nil {
					b.Fatal(err)
				}
				recs := plugintest.SampleRecords()[:2]
				batch := make([][]byte, size)
				for i := range batch {
					batch[i] = recs[i%2]
				}
				b.ResetTimer()
				for n := 0; n < b.N; n += size {
					p.WriteBatch(batch)
				}
				p.Close()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}
