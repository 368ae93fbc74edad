package wasm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// A KafkaProducer produces records to one Kafka cluster for the kafka_*
// host functions. The host owns it (its brokers, TLS, SASL and client);
// a plugin names only the cluster, by the name it was granted under, and
// a granted topic.
type KafkaProducer interface {
	// Produce hands recs, in order, to the client and returns at once;
	// done is called once, when every record is acknowledged (nil) or
	// when one has failed for good (the others may or may not be
	// written; the error wraps ErrKafkaRefused when Kafka refused a record
	// for good, so that sending it again cannot help). Records produced
	// earlier to a partition are written before later ones.
	Produce(topic string, recs []KafkaRecord, done func(error))
	// Close waits a moment for what is on its way, then ends the client.
	Close()
}

// ErrKafkaRefused marks a produce that failed because Kafka refused a
// record for good (too large, not authorised, invalid): kafka_wait
// answers -9 for it, where a failure that may pass answers -3.
var ErrKafkaRefused = errors.New("kafka refused the record")

// KafkaRecord is a record a plugin produces.
type KafkaRecord struct {
	Key, Value []byte
	Headers    []KafkaHeader
}

// KafkaHeader is a record header.
type KafkaHeader struct {
	Key   string
	Value []byte
}

// KafkaGrant is a Kafka cluster granted to a plugin: the topics it may
// produce to, and the host's producer for them. Load takes ownership of
// Producer: it is closed with the module.
type KafkaGrant struct {
	Topics   []string
	Producer KafkaProducer
}

// Results of the kafka_* host functions (negative values are errors; the
// codes the net_* functions share mean the same).
const (
	kafkaErrNotGranted = -1 // cluster or topic not granted
	kafkaErrFailed     = -3 // a record of the ticket failed
	kafkaErrBadTicket  = -4
	kafkaErrMemory     = -5
	kafkaErrTooMany    = -6 // maxKafkaTickets unfinished tickets
	kafkaErrMalformed  = -8 // the records input does not decode
	kafkaErrRefused    = -9 // Kafka refused a record of the ticket for good
)

const (
	maxKafkaTickets = 256
	maxKafkaHeaders = 64
)

// kafkaState is one instance's produce tickets.
type kafkaState struct {
	mu      sync.Mutex
	tickets map[int32]*kafkaTicket
	next    int32
	lastErr string
}

type kafkaTicket struct {
	done chan struct{}
	err  error // set before done is closed
}

func (k *kafkaState) setErr(err error) {
	k.mu.Lock()
	k.lastErr = err.Error()
	k.mu.Unlock()
}

// add takes a new ticket, if fewer than maxKafkaTickets are unfinished.
// Finished tickets the plugin never waited for (it gave up on them after
// another failed, as a plugin asking for its batches again does) make
// room: they are forgotten first.
func (k *kafkaState) add(t *kafkaTicket) (int32, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.tickets) >= maxKafkaTickets {
		for h, old := range k.tickets {
			select {
			case <-old.done:
				delete(k.tickets, h)
			default:
			}
		}
		if len(k.tickets) >= maxKafkaTickets {
			return 0, false
		}
	}
	k.next++
	if k.next <= 0 {
		k.next = 1
	}
	k.tickets[k.next] = t
	return k.next, true
}

// kafkaOf returns the Kafka state of the instance mod is, or nil.
func (m *Module) kafkaOf(mod api.Module) *kafkaState {
	if inst := m.instanceOf(mod); inst != nil {
		return inst.kafka
	}
	return nil
}

// kafkaWarnAt is when a Kafka refusal was last logged (unix ns), by any
// plugin of the process: one that keeps asking for what it was not
// granted cannot fill the log.
var kafkaWarnAt atomic.Int64

func kafkaWarnDue() bool {
	now, last := time.Now().UnixNano(), kafkaWarnAt.Load()
	return now-last >= int64(10*time.Second) && kafkaWarnAt.CompareAndSwap(last, now)
}

// closeKafka closes the producers the module was granted.
func (m *Module) closeKafka() {
	for _, g := range m.opts.Grants.Kafka {
		if g.Producer != nil {
			g.Producer.Close()
		}
	}
}

// kafkaFunctions are the Kafka host functions (docs/plugin-abi.md).
func (m *Module) kafkaFunctions() map[string]api.GoModuleFunc {
	i32 := func(v int32) uint64 { return uint64(uint32(v)) }
	return map[string]api.GoModuleFunc{
		// kafka_produce(name_ptr, name_len, topic_ptr, topic_len, ptr, len) -> ticket | error
		"kafka_produce": func(ctx context.Context, mod api.Module, stack []uint64) {
			ks := m.kafkaOf(mod)
			mem := mod.Memory()
			name, ok1 := mem.Read(uint32(stack[0]), uint32(stack[1]))
			topic, ok2 := mem.Read(uint32(stack[2]), uint32(stack[3]))
			in, ok3 := mem.Read(uint32(stack[4]), uint32(stack[5]))
			if !ok1 || !ok2 || !ok3 || ks == nil {
				stack[0] = i32(kafkaErrMemory)
				return
			}
			g, granted := m.opts.Grants.Kafka[string(name)]
			if !granted || g.Producer == nil {
				ks.setErr(fmt.Errorf("kafka cluster %q is not granted (allow { kafka %q { ... } })", name, name))
				if kafkaWarnDue() {
					m.log().Warn("plugin produced to a Kafka cluster it was not granted (said once per 10s)", "cluster", string(name))
				}
				stack[0] = i32(kafkaErrNotGranted)
				return
			}
			if !slices.Contains(g.Topics, string(topic)) {
				ks.setErr(fmt.Errorf("topic %q of kafka cluster %q is not granted (topics = %q)", topic, name, g.Topics))
				if kafkaWarnDue() {
					m.log().Warn("plugin produced to a Kafka topic it was not granted (said once per 10s)", "cluster", string(name), "topic", string(topic))
				}
				stack[0] = i32(kafkaErrNotGranted)
				return
			}
			recs, err := decodeKafkaRecords(in)
			if err != nil {
				ks.setErr(err)
				stack[0] = i32(kafkaErrMalformed)
				return
			}
			t := &kafkaTicket{done: make(chan struct{})}
			h, ok := ks.add(t)
			if !ok {
				ks.setErr(fmt.Errorf("more than %d produce tickets unfinished (wait for them with kafka_wait)", maxKafkaTickets))
				stack[0] = i32(kafkaErrTooMany)
				return
			}
			if len(recs) == 0 {
				close(t.done)
			} else {
				var once sync.Once
				g.Producer.Produce(string(topic), recs, func(err error) {
					once.Do(func() { t.err = err; close(t.done) })
				})
			}
			stack[0] = i32(h)
		},
		// kafka_wait(ticket, timeout_ms) -> 1 (acknowledged) | 0 (not yet) | error
		"kafka_wait": func(ctx context.Context, mod api.Module, stack []uint64) {
			ks := m.kafkaOf(mod)
			if ks == nil {
				stack[0] = i32(kafkaErrBadTicket)
				return
			}
			h := int32(stack[0])
			ks.mu.Lock()
			t := ks.tickets[h]
			ks.mu.Unlock()
			if t == nil {
				stack[0] = i32(kafkaErrBadTicket)
				return
			}
			wait := m.withinBudget(mod, time.Duration(int32(stack[1]))*time.Millisecond)
			if wait > 0 {
				timer := time.NewTimer(wait)
				select {
				case <-t.done:
				case <-timer.C:
				case <-ctx.Done():
				}
				timer.Stop()
			}
			select {
			case <-t.done:
			default:
				stack[0] = 0
				return
			}
			ks.mu.Lock()
			delete(ks.tickets, h)
			ks.mu.Unlock()
			if t.err != nil {
				ks.setErr(t.err)
				stack[0] = i32(kafkaErrFailed)
				if errors.Is(t.err, ErrKafkaRefused) {
					stack[0] = i32(kafkaErrRefused)
				}
				return
			}
			stack[0] = 1
		},
		// kafka_error(ptr, cap) -> n: the last error's message.
		"kafka_error": func(ctx context.Context, mod api.Module, stack []uint64) {
			ks := m.kafkaOf(mod)
			if ks == nil {
				stack[0] = 0
				return
			}
			ks.mu.Lock()
			msg := ks.lastErr
			ks.mu.Unlock()
			if uint32(len(msg)) > uint32(stack[1]) {
				msg = msg[:stack[1]]
			}
			if !mod.Memory().Write(uint32(stack[0]), []byte(msg)) {
				stack[0] = i32(kafkaErrMemory)
				return
			}
			stack[0] = i32(int32(len(msg)))
		},
	}
}

// decodeKafkaRecords reads kafka_produce's input (docs/plugin-abi.md),
// copying it out of the plugin's memory: records, each
//
//	uvarint len, key; uvarint len, value; uvarint n; n x (uvarint len, name; uvarint len, value)
func decodeKafkaRecords(b []byte) ([]KafkaRecord, error) {
	b = slices.Clone(b)
	var recs []KafkaRecord
	var hdrs []KafkaHeader // every record's headers, one slice
	var names []string     // header names seen, reused rather than made again
	bytesField := func(what string) ([]byte, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, fmt.Errorf("record %d: its %s's length runs past the input", len(recs), what)
		}
		v := b[k : k+int(n) : k+int(n)]
		b = b[k+int(n):]
		return v, nil
	}
	type span struct{ from, to int }
	var spans []span
	for len(b) > 0 {
		var r KafkaRecord
		var err error
		if r.Key, err = bytesField("key"); err != nil {
			return nil, err
		}
		if r.Value, err = bytesField("value"); err != nil {
			return nil, err
		}
		n, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, fmt.Errorf("record %d: no header count", len(recs))
		}
		if n > maxKafkaHeaders {
			return nil, fmt.Errorf("record %d: %d headers, more than %d", len(recs), n, maxKafkaHeaders)
		}
		b = b[k:]
		from := len(hdrs)
		for i := range int(n) {
			name, err := bytesField("header name")
			if err != nil {
				return nil, err
			}
			v, err := bytesField("header value")
			if err != nil {
				return nil, err
			}
			if i == len(names) {
				names = append(names, string(name))
			} else if names[i] != string(name) {
				names[i] = string(name)
			}
			hdrs = append(hdrs, KafkaHeader{Key: names[i], Value: v})
		}
		if len(r.Key) == 0 {
			r.Key = nil
		}
		recs = append(recs, r)
		spans = append(spans, span{from, len(hdrs)})
	}
	for i, sp := range spans {
		if sp.to > sp.from {
			recs[i].Headers = hdrs[sp.from:sp.to:sp.to]
		}
	}
	return recs, nil
}
