package wire

import (
	"fmt"
	"net"
	"time"

	"google.golang.org/protobuf/proto"

	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
)

// Load describes a load a benchmark sends to a log server.
type Load struct {
	Addr                        string
	Token                       []byte
	Sender, Application, Format string
	// Batch is sent Batches times, with ids 1..Batches, keeping at most
	// InFlight unacknowledged.
	Batch    []byte
	Batches  int
	InFlight int
}

// SendLoad runs a Load over one connection and returns when every batch is
// acknowledged. It is the benchmarks' client, not a production one: no
// reconnection, no retries.
func SendLoad(l Load) error {
	c, err := net.Dial("tcp", l.Addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Minute))
	auth, _ := proto.Marshal(&logtkv1.Auth{ProtocolVersion: ProtocolVersion, Token: l.Token, Sender: l.Sender,
		Application: l.Application, Format: l.Format})
	if _, err := c.Write(AppendFrame(nil, TypeAuth, auth)); err != nil {
		return err
	}
	r := NewReader(c, 0)
	if t, _, err := r.Next(); err != nil || t != TypeWelcome {
		return fmt.Errorf("no WELCOME (got %s): %v", t, err)
	}
	window := make(chan struct{}, max(l.InFlight, 1))
	done := make(chan error, 1)
	go func() {
		for got := 0; got < l.Batches; {
			t, _, err := r.Next()
			if err != nil {
				done <- err
				return
			}
			if t == TypeAck {
				got++
				<-window
			}
		}
		done <- nil
	}()
	frame := make([]byte, 0, len(l.Batch)+16)
	for id := 1; id <= l.Batches; id++ {
		window <- struct{}{}
		frame = AppendData(frame[:0], uint64(id), l.Batch)
		if _, err := c.Write(frame); err != nil {
			return err
		}
	}
	return <-done
}
