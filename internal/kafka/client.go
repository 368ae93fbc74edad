// Package kafka is logtk's Kafka client side, on franz-go: the producer
// behind the kafka_* host functions a transport plugin is granted
// (Producer), and the client options a grant or a log server's kafka
// block makes (ClientOpts; the log server's reader is logserver/kafka.go).
// docs/kafka.md says what each guarantees.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/wasm"
)

// ClientOpts are the options every client of a cluster takes: brokers,
// TLS, SASL, client id, dial timeout.
func ClientOpts(c *config.KafkaConfig) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.ClientID(c.ClientID)}
	if c.DialTimeout > 0 {
		opts = append(opts, kgo.DialTimeout(c.DialTimeout))
	}
	if c.TLS != nil {
		tc, err := c.TLS.Build()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if s := c.SASL; s != nil {
		switch s.Mechanism {
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()))
		default:
			return nil, fmt.Errorf("SASL mechanism %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
		}
	}
	return opts, nil
}

// maxBuffered bounds the records a Producer holds unacknowledged: the
// host keeps at most 32 batches on their way per transport, so this is
// room for large batches, not a queue. A produce that would pass it
// fails whole, before any of its records is taken.
const maxBuffered = 1 << 21

// Producer produces for a plugin (wasm.KafkaProducer): idempotent, every
// in-sync replica acknowledging (acks=all), records of one key to one
// partition in the order produced (Kafka's murmur2 hash of the key, as
// the Java client). It retries a record for as long as Kafka refuses it
// for a reason that may pass, in order, so that a record is never written
// after one produced later to its partition; a record Kafka refuses for
// good (too large, not authorised) fails its produce with ErrRefused.
// When the brokers acknowledge nothing for Timeout while records wait,
// further produces fail at once (ErrStalled), so that the host stops
// sending and retries (and spools); those waiting go on being retried
// and may still be written. When they acknowledge nothing for twice
// Timeout, the client is replaced by a new one: the records waiting in
// the old one fail (the host sends their batches again, in order; the
// log server drops what was written twice), so that a client that
// cannot recover (it has been seen under broker faults) does not hold
// the transport for ever.
type Producer struct {
	mu       sync.Mutex // orders renew's swap and Close
	cl       atomic.Pointer[client]
	opts     []kgo.Opt
	renewing atomic.Bool
	timeout  time.Duration
	closed   atomic.Bool
}

// client is one franz-go client with its own account of what waits in
// it, so that a client replaced while records still wait (and are being
// failed) does not count against the one that replaces it.
type client struct {
	*kgo.Client
	// lastAck is when the brokers last acknowledged a record (unix ns);
	// waiting counts the records not yet acknowledged or failed.
	lastAck atomic.Int64
	waiting atomic.Int64
}

func newClient(opts []kgo.Opt) (*client, error) {
	kc, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	c := &client{Client: kc}
	c.lastAck.Store(time.Now().UnixNano())
	return c, nil
}

// ErrRefused wraps the error of a record Kafka refused for good.
var ErrRefused = wasm.ErrKafkaRefused

// ErrStalled is a produce refused because the brokers acknowledged
// nothing for the producer's Timeout while records waited.
var ErrStalled = errors.New("kafka has acknowledged nothing")

// NewProducer makes the producer of a granted cluster.
func NewProducer(c *config.KafkaConfig) (*Producer, error) {
	opts, err := ClientOpts(c)
	if err != nil {
		return nil, err
	}
	codec := map[string]kgo.CompressionCodec{"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(),
		"snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(), "": kgo.ZstdCompression()}[c.Compression]
	opts = append(opts,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(codec),
		kgo.MaxBufferedRecords(maxBuffered+1),
		kgo.ProducerLinger(0),
	)
	cl, err := newClient(opts)
	if err != nil {
		return nil, err
	}
	p := &Producer{opts: opts, timeout: c.Timeout}
	p.cl.Store(cl)
	if p.timeout <= 0 {
		p.timeout = 30 * time.Second
	}
	return p, nil
}

// Produce implements wasm.KafkaProducer.
func (p *Producer) Produce(topic string, recs []wasm.KafkaRecord, done func(error)) {
	if p.closed.Load() {
		done(errors.New("the Kafka client is closed"))
		return
	}
	cl := p.cl.Load()
	if w := cl.waiting.Load(); w > 0 {
		if since := time.Since(time.Unix(0, cl.lastAck.Load())); since > p.timeout {
			if since > 2*p.timeout && !p.renewing.Swap(true) {
				go p.renew()
			}
			done(fmt.Errorf("%w for %s; %d records wait (brokers %v)", ErrStalled, since.Round(time.Second), w, cl.OptValue(kgo.SeedBrokers)))
			return
		}
	} else {
		cl.lastAck.Store(time.Now().UnixNano())
	}
	if n := cl.BufferedProduceRecords(); n+int64(len(recs)) > maxBuffered {
		// All or nothing: a produce cut short by a full buffer would put
		// part of a batch in the topic, and the batches after it could
		// be written before the batch is sent again.
		done(fmt.Errorf("%w: %d records wait in the client", kgo.ErrMaxBuffered, n))
		return
	}
	var (
		left    = int64(len(recs))
		mu      sync.Mutex
		firstEr error
	)
	cl.waiting.Add(left)
	promise := func(_ *kgo.Record, err error) {
		cl.waiting.Add(-1)
		if err == nil {
			cl.lastAck.Store(time.Now().UnixNano())
		} else {
			if ke := (*kerr.Error)(nil); errors.As(err, &ke) && !ke.Retriable {
				err = fmt.Errorf("%w: %w", ErrRefused, err)
			}
			mu.Lock()
			if firstEr == nil {
				firstEr = err
			}
			mu.Unlock()
		}
		if atomic.AddInt64(&left, -1) == 0 {
			mu.Lock()
			e := firstEr
			mu.Unlock()
			done(e)
		}
	}
	// One allocation for the records and one for their headers.
	krs := make([]kgo.Record, len(recs))
	nh := 0
	for i := range recs {
		nh += len(recs[i].Headers)
	}
	hs := make([]kgo.RecordHeader, 0, nh)
	ctx := context.Background()
	for i := range recs {
		r := &krs[i]
		r.Topic, r.Key, r.Value = topic, recs[i].Key, recs[i].Value
		if len(recs[i].Headers) > 0 {
			from := len(hs)
			for _, h := range recs[i].Headers {
				hs = append(hs, kgo.RecordHeader{Key: h.Key, Value: h.Value})
			}
			r.Headers = hs[from:len(hs):len(hs)]
		}
		cl.TryProduce(ctx, r, promise)
	}
}

// renew replaces the client: a new one takes the produces from now on,
// and closing the old one fails what waits in it.
func (p *Producer) renew() {
	defer p.renewing.Store(false)
	cl, err := newClient(p.opts)
	if err != nil {
		return // a produce after the next stall tries again
	}
	p.mu.Lock()
	if p.closed.Load() { // Close ran meanwhile: it has the old one
		p.mu.Unlock()
		cl.Close()
		return
	}
	old := p.cl.Swap(cl)
	p.mu.Unlock()
	old.Close()
}

// Close gives what is on its way up to 5 seconds, then ends the client.
func (p *Producer) Close() {
	p.mu.Lock()
	if p.closed.Swap(true) {
		p.mu.Unlock()
		return
	}
	cl := p.cl.Load()
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl.Flush(ctx)
	cl.Close()
}
