// Package kafka is the reference Kafka transport: it produces each record
// to a Kafka topic through the host's Kafka client, which it is granted
// in allow { kafka "name" { ... } } and never reaches past (the brokers,
// TLS and SASL are the host's). Its format must write logtk.v1.Record
// entries (the protobuf format without a schema does; the host checks a
// sample record at load): each entry is a Kafka
// record's value as it is, and the record's identity goes in its key and
// headers (docs/kafka.md), so that a log server reading the topic
// (server { kafka { ... } }) stores each record once.
//
// A batch is delivered once Kafka has acknowledged every record of it
// (acks=all, idempotent producer). Records of one worker instance share a
// key, so they go to one partition, in order.
package kafka

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/logtk/logtk/record"
	"github.com/logtk/logtk/sdk/plugin"
)

// Info describes the plugin.
var Info = plugin.Info{
	Name:    "kafka",
	Version: "1.0.0",
	Config: []plugin.Field{
		{Name: "cluster", Type: plugin.TypeString, Required: true, Doc: "name of the Kafka cluster granted in allow { kafka \"name\" { ... } }"},
		{Name: "topic", Type: plugin.TypeString, Required: true, Doc: "the topic to produce to (one of the grant's topics)"},
		{Name: "sender", Type: plugin.TypeString, Required: true, Doc: "this host's stable identity, [A-Za-z0-9._-]: a log server drops records sent again per sender"},
		{Name: "application", Type: plugin.TypeString, Required: true, Doc: "what a log server stores the records under, [A-Za-z0-9._-]"},
		{Name: "hostname", Type: plugin.TypeString, Doc: "this machine's name, which a log server stamps on every record it stores; default none"},
	},
}

// Header names of the record identity (docs/kafka.md).
const (
	HeaderSender      = "logtk.sender"
	HeaderApplication = "logtk.application"
	HeaderHostname    = "logtk.hostname"
	HeaderBatch       = "logtk.batch"
	HeaderWorker      = "logtk.worker"
	HeaderIndex       = "logtk.index"
	HeaderIncarnation = "logtk.incarnation"
	HeaderSeq         = "logtk.seq"
	// HeaderPart is "i/n": the record is the i-th (from 0) of the n
	// records of its worker instance in its batch.
	HeaderPart = "logtk.part"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// Transport produces batches to Kafka.
type Transport struct {
	cfg struct {
		Cluster     string `json:"cluster"`
		Topic       string `json:"topic"`
		Sender      string `json:"sender"`
		Application string `json:"application"`
		Hostname    string `json:"hostname"`
	}
	recs    plugin.KafkaRecords
	pending []pending
	// failed is a failure found after batches Poll reported delivered:
	// the next Poll or WriteAsync returns it.
	failed error
	// acked: batches acknowledged as soon as they were produced, for the
	// next Poll.
	acked []uint64
	// Per batch, reused: its records as read, and its worker instances
	// (few: a linear search, starting at the last one found).
	batch []entry
	insts []instance
	hdrs  []plugin.KafkaHeader
	// the configured header values, as bytes once
	sender, app, host []byte
	key               []byte
	num               [6][]byte // scratch for the numeric headers
}

type entry struct {
	e, worker        []byte
	index, inc, inst uint32
	seq              uint64
}

type instance struct {
	worker      []byte
	index       uint32
	count, seen int
}

type pending struct {
	id     uint64
	ticket *plugin.KafkaTicket
}

// New returns a Transport.
func New() *Transport { return &Transport{} }

var _ plugin.AsyncTransport = (*Transport)(nil)
var _ plugin.Configurer = (*Transport)(nil)

// Configure implements plugin.Configurer.
func (t *Transport) Configure(config []byte) error {
	if err := plugin.DecodeConfig(config, &t.cfg); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{{"sender", t.cfg.Sender}, {"application", t.cfg.Application}} {
		if !nameRE.MatchString(f.v) || f.v == "." || f.v == ".." {
			return fmt.Errorf("%s = %q must be 1-128 letters, digits, '.', '_' or '-'", f.name, f.v)
		}
	}
	if t.cfg.Hostname != "" && !hostnameRE.MatchString(t.cfg.Hostname) {
		return fmt.Errorf("hostname = %q must be 1-253 letters, digits, '.', '_' or '-'", t.cfg.Hostname)
	}
	if t.cfg.Cluster == "" || t.cfg.Topic == "" {
		return errors.New("cluster and topic are required")
	}
	t.sender, t.app, t.host = []byte(t.cfg.Sender), []byte(t.cfg.Application), []byte(t.cfg.Hostname)
	return nil
}

var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,253}$`)

// Open implements plugin.Transport.
func (t *Transport) Open() error { return nil }

// Write implements plugin.Transport: WriteAsync, then wait for it.
func (t *Transport) Write(b *plugin.Batch) error {
	if err := t.WriteAsync(b); err != nil {
		return err
	}
	for len(t.pending) > 0 {
		if _, err := t.Poll(time.Second); err != nil {
			return err
		}
	}
	return nil
}

// instanceOf returns the index in t.insts of a worker instance, adding it.
func (t *Transport) instanceOf(worker []byte, index uint32, last uint32) uint32 {
	if int(last) < len(t.insts) {
		if in := &t.insts[last]; in.index == index && bytes.Equal(in.worker, worker) {
			return last
		}
	}
	for i := range t.insts {
		if in := &t.insts[i]; in.index == index && bytes.Equal(in.worker, worker) {
			return uint32(i)
		}
	}
	t.insts = append(t.insts, instance{worker: worker, index: index})
	return uint32(len(t.insts) - 1)
}

// WriteAsync implements plugin.AsyncTransport: the batch's records are
// handed to the host's client, keyed and with their identity.
func (t *Transport) WriteAsync(b *plugin.Batch) error {
	if err := t.failed; err != nil {
		// A batch on its way failed: no later batch may go before the
		// host sends it again, or the later one's records would be in
		// the topic before it (and a server would take its copy for a
		// duplicate).
		t.failed, t.pending = nil, t.pending[:0]
		// As a retry, whatever it was: it is an earlier batch's failure,
		// not this one's (a refusal comes again when that batch does).
		return plugin.Retry(err)
	}
	t.batch, t.insts = t.batch[:0], t.insts[:0]
	var r record.Record
	bad := false
	var last uint32
	b.Each(func(e []byte) bool {
		if !r.Parse(e) {
			bad = true
			return false
		}
		last = t.instanceOf(r.Worker, r.WorkerIndex, last)
		t.insts[last].count++
		t.batch = append(t.batch, entry{e: e, worker: r.Worker, index: r.WorkerIndex, inc: r.Incarnation, seq: r.Seq, inst: last})
		return true
	})
	if bad {
		return fmt.Errorf("batch %d: an entry is not a logtk.v1.Record: the kafka transport needs a format writing logtk.v1.Record (protobuf without a schema)", b.ID())
	}
	t.recs.Reset()
	batch := strconv.AppendUint(t.num[0][:0], b.ID(), 10)
	t.num[0] = batch
	for i := range t.batch {
		en := &t.batch[i]
		in := &t.insts[en.inst]
		part := in.seen
		in.seen++
		t.key = append(append(append(t.key[:0], t.cfg.Sender...), '/'), en.worker...)
		if len(en.worker) > 0 {
			t.key = strconv.AppendUint(append(t.key, '#'), uint64(en.index), 10)
		}
		t.num[1] = strconv.AppendUint(t.num[1][:0], uint64(en.index), 10)
		t.num[2] = strconv.AppendUint(t.num[2][:0], uint64(en.inc), 10)
		t.num[3] = strconv.AppendUint(t.num[3][:0], en.seq, 10)
		t.num[4] = strconv.AppendUint(append(strconv.AppendUint(t.num[4][:0], uint64(part), 10), '/'), uint64(in.count), 10)
		t.hdrs = append(t.hdrs[:0],
			plugin.KafkaHeader{Key: HeaderSender, Value: t.sender},
			plugin.KafkaHeader{Key: HeaderApplication, Value: t.app},
			plugin.KafkaHeader{Key: HeaderBatch, Value: batch},
			plugin.KafkaHeader{Key: HeaderWorker, Value: en.worker},
			plugin.KafkaHeader{Key: HeaderIndex, Value: t.num[1]},
			plugin.KafkaHeader{Key: HeaderIncarnation, Value: t.num[2]},
			plugin.KafkaHeader{Key: HeaderSeq, Value: t.num[3]},
			plugin.KafkaHeader{Key: HeaderPart, Value: t.num[4]},
		)
		if len(t.host) > 0 {
			t.hdrs = append(t.hdrs, plugin.KafkaHeader{Key: HeaderHostname, Value: t.host})
		}
		t.recs.Append(t.key, en.e, t.hdrs)
	}
	tk, err := plugin.Produce(t.cfg.Cluster, t.cfg.Topic, &t.recs)
	acked := false
	if err == nil {
		// A produce the host's client refused at once (nothing
		// acknowledged for the grant's timeout, its buffer full) has
		// failed already: said now, before a later batch is produced.
		acked, err = tk.Wait(0)
	}
	if err != nil {
		t.pending = t.pending[:0]
		if errors.Is(err, plugin.ErrKafkaRefused) {
			return fmt.Errorf("batch %d: %w", b.ID(), err)
		}
		return plugin.Retry(err)
	}
	if acked {
		t.acked = append(t.acked, b.ID())
		return nil
	}
	t.pending = append(t.pending, pending{id: b.ID(), ticket: tk})
	return nil
}

// Poll implements plugin.AsyncTransport: the batches whose records Kafka
// has all acknowledged, oldest first. A batch Kafka refused for good
// fails the instance (the host replaces it, and after three such
// failures in a row dead-letters the batch); another failure asks for
// every batch on its way again.
func (t *Transport) Poll(timeout time.Duration) ([]uint64, error) {
	if err := t.failed; err != nil {
		t.failed = nil
		return nil, err
	}
	done := t.acked
	t.acked = nil
	deadline := time.Now().Add(timeout)
	for len(t.pending) > 0 {
		wait := time.Until(deadline)
		if len(done) > 0 || wait < 0 {
			wait = 0
		}
		ok, err := t.pending[0].ticket.Wait(wait)
		if err != nil {
			// What is on its way goes again (the host resends it all):
			// the tickets after this one are forgotten, not waited for.
			if errors.Is(err, plugin.ErrKafkaRefused) {
				err = fmt.Errorf("batch %d: %w", t.pending[0].id, err)
			} else {
				err = plugin.Retry(err)
			}
			t.pending = t.pending[:0]
			if len(done) > 0 {
				t.failed = err
				return done, nil
			}
			return nil, err
		}
		if !ok {
			break
		}
		done = append(done, t.pending[0].id)
		t.pending = t.pending[1:]
	}
	return done, nil
}

// Flush implements plugin.Transport.
func (t *Transport) Flush() error { return nil }

// Close implements plugin.Transport.
func (t *Transport) Close() error { return nil }
