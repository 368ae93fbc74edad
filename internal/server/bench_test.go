package server

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/internal/wire"
)

// BenchmarkServerIngest measures the server alone: wire -> store ->
// acknowledged, with 512 records of 200 bytes per batch and up to 8
// batches in flight per connection, over 1 and 4 connections, with and
// without fsync before the ack. Each op is one record.
func BenchmarkServerIngest(b *testing.B) {
	rec := bytes.Repeat([]byte("x"), 199)
	rec = append(rec, '\n')
	var batch []byte
	for range 512 {
		batch = entries.Append(batch, rec)
	}
	for _, fsync := range []bool{false, true} {
		for _, conns := range []int{1, 4} {
			b.Run(fmt.Sprintf("fsync=%v/conns=%d", fsync, conns), func(b *testing.B) {
				dir := b.TempDir()
				st, err := OpenStore(StoreOptions{Dir: dir, Fsync: fsync})
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				s := New(Options{Tokens: [][]byte{token}, Store: st, Logger: hclog.NewNullLogger()})
				ln, _ := net.Listen("tcp", "127.0.0.1:0")
				go s.Serve(ln)
				defer s.Close(b.Context())
				batches := max(b.N/512, 1) / conns
				if batches == 0 {
					batches = 1
				}
				b.SetBytes(200) // per record
				b.ResetTimer()
				start := time.Now()
				errs := make(chan error, conns)
				for c := range conns {
					go func() {
						errs <- wire.SendLoad(wire.Load{Addr: ln.Addr().String(), Token: token, Sender: fmt.Sprintf("s%d", c),
							Application: "bench", Format: "text", Batch: batch, Batches: batches, InFlight: 8})
					}()
				}
				for range conns {
					if err := <-errs; err != nil {
						b.Fatal(err)
					}
				}
				el := time.Since(start)
				b.StopTimer()
				n := s.Stats.Records.Load()
				b.ReportMetric(float64(n)/el.Seconds(), "records/s")
			})
		}
	}
}
