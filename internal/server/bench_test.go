package server

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/logtk/logtk/internal/ipc"
	"github.com/logtk/logtk/internal/wire"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
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
		batch = wireEntry(batch, rec)
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
					go func() { errs <- sendPipelined(ln.Addr().String(), fmt.Sprintf("s%d", c), batch, batches, 8) }()
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

func sendPipelined(addr, sender string, batch []byte, batches, inFlight int) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	auth, _ := proto.Marshal(&logtkv1.Auth{ProtocolVersion: 1, Token: token, Sender: sender, Application: "bench", Format: "text"})
	c.Write(ipc.AppendFrame(nil, wire.TypeAuth, auth))
	r := ipc.NewReader(c, 0)
	if t, _, err := r.Next(); err != nil || t != wire.TypeWelcome {
		return fmt.Errorf("no welcome: %v", err)
	}
	acks := make(chan error, 1)
	window := make(chan struct{}, inFlight)
	go func() {
		for got := 0; got < batches; {
			t, _, err := r.Next()
			if err != nil {
				acks <- err
				return
			}
			if t == wire.TypeAck {
				got++
				<-window
			}
		}
		acks <- nil
	}()
	frame := make([]byte, 0, len(batch)+16)
	for id := 1; id <= batches; id++ {
		window <- struct{}{}
		frame = wire.AppendData(frame[:0], uint64(id), batch)
		if _, err := c.Write(frame); err != nil {
			return err
		}
	}
	return <-acks
}
