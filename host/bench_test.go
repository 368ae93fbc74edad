package host

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
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
