package kafka

import (
	"crypto/tls"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/testcert"
	"github.com/logtk/logtk/internal/wasm"
)

// TestProducerStalls: while the brokers take nothing, a produce waits;
// once they have acknowledged nothing for the timeout, further produces
// fail at once (ErrStalled, a failure that may pass); when they take
// records again, the waiting ones are written, in order, and produces
// go through again.
func TestProducerStalls(t *testing.T) {
	down, produce := outage(t)
	first := produce("1")
	// Until the timeout has passed with nothing acknowledged, produces
	// are taken; after it, they fail at once.
	var stalled error
	for deadline := time.Now().Add(10 * time.Second); stalled == nil; {
		select {
		case err := <-produce("later"):
			stalled = err // failed at once (taken ones do not answer while down)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("produces still taken 10s into an outage with a 200ms timeout")
		}
	}
	if !errors.Is(stalled, ErrStalled) || errors.Is(stalled, wasm.ErrKafkaRefused) {
		t.Fatalf("a produce during the outage failed with %v, want ErrStalled", stalled)
	}
	down.Store(false)
	select {
	case err := <-first:
		if err != nil {
			t.Fatalf("the waiting record failed: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the waiting record not written 30s after the brokers came back")
	}
	select {
	case err := <-produce("after"):
		if err != nil {
			t.Fatalf("a produce after the outage: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a produce after the outage not acknowledged within 30s")
	}
}

// TestProducerRefused: a record Kafka refuses for good (larger than a
// batch may be) fails its produce with ErrRefused (kafka_wait's -9: the
// plugin does not ask for it again), and the records after it go
// through.
func TestProducerRefused(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := NewProducer(&config.KafkaConfig{Brokers: c.ListenAddrs(), ClientID: "t", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	wait := func(v []byte) error {
		ch := make(chan error, 1)
		p.Produce("t", []wasm.KafkaRecord{{Key: []byte("k"), Value: v}}, func(err error) { ch <- err })
		select {
		case err := <-ch:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("no answer within 30s")
			return nil
		}
	}
	if err := wait(make([]byte, 2<<20)); !errors.Is(err, ErrRefused) {
		t.Fatalf("a 2 MiB record: %v, want ErrRefused", err)
	}
	if err := wait([]byte("small")); err != nil {
		t.Fatalf("the next record: %v", err)
	}
}

// TestProducerAuth: the grant's SASL mechanisms (PLAIN, SCRAM-SHA-256,
// SCRAM-SHA-512) and TLS reach a cluster that requires them; a wrong
// password produces nothing.
func TestProducerAuth(t *testing.T) {
	ca := testcert.NewCA(t, "kafka-ca")
	dir := t.TempDir()
	caFile := ca.WriteCA(t, dir, "ca.pem")
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"), kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "plain", "p1"), kfake.Superuser("SCRAM-SHA-256", "s256", "p2"), kfake.Superuser("SCRAM-SHA-512", "s512", "p3"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{ca.Server(t, "127.0.0.1")}}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	produce := func(s *config.SASLConfig) error {
		p, err := NewProducer(&config.KafkaConfig{Brokers: c.ListenAddrs(), ClientID: "t", Timeout: time.Second, DialTimeout: 5 * time.Second,
			SASL: s, TLS: &config.TLSConfig{CAFile: caFile, ServerName: "127.0.0.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		ch := make(chan error, 1)
		p.Produce("t", []wasm.KafkaRecord{{Value: []byte("v")}}, func(err error) { ch <- err })
		select {
		case err := <-ch:
			return err
		case <-time.After(3 * time.Second):
			return errors.New("no answer within 3s")
		}
	}
	for _, s := range []*config.SASLConfig{{Mechanism: "PLAIN", Username: "plain", Password: "p1"},
		{Mechanism: "SCRAM-SHA-256", Username: "s256", Password: "p2"}, {Mechanism: "SCRAM-SHA-512", Username: "s512", Password: "p3"}} {
		if err := produce(s); err != nil {
			t.Errorf("%s: %v", s.Mechanism, err)
		}
	}
	if err := produce(&config.SASLConfig{Mechanism: "SCRAM-SHA-256", Username: "s256", Password: "wrong"}); err == nil {
		t.Error("a wrong password produced")
	}
}

// outage starts a one-broker kfake cluster whose broker refuses every
// produce while down holds (it starts true), and a producer with a 200
// ms timeout; produce sends one record to topic "t" and answers on the
// channel its done gets.
func outage(t *testing.T) (down *atomic.Bool, produce func(v string) chan error) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	down = new(atomic.Bool)
	down.Store(true)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if down.Load() {
			return nil, errors.New("down"), true
		}
		return nil, nil, false
	})
	p, err := NewProducer(&config.KafkaConfig{Brokers: c.ListenAddrs(), ClientID: "t", Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return down, func(v string) chan error {
		ch := make(chan error, 1)
		p.Produce("t", []wasm.KafkaRecord{{Key: []byte("k"), Value: []byte(v)}}, func(err error) { ch <- err })
		return ch
	}
}

// TestProducerRenews: a client that acknowledges nothing for twice the
// timeout while records wait is replaced: the records waiting in it
// fail (the host sends their batches again), and produces after the
// brokers answer again go through the new client.
func TestProducerRenews(t *testing.T) {
	down, produce := outage(t)
	first := produce("1")
	// Produces are refused once the timeout has passed; one after twice
	// the timeout replaces the client, which fails the waiting record.
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var firstErr error
	for firstErr == nil {
		select {
		case firstErr = <-first:
			if firstErr == nil {
				t.Fatal("the waiting record was written while the broker refused every produce")
			}
		case <-tick.C:
			produce("later")
		case <-deadline:
			t.Fatal("the waiting record neither written nor failed 20s into an outage with a 200ms timeout")
		}
	}
	down.Store(false)
	select {
	case err := <-produce("after"):
		if err != nil {
			t.Fatalf("a produce after the outage, through the new client: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a produce after the outage not acknowledged within 30s")
	}
}
