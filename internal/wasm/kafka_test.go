package wasm

import (
	"reflect"
	"testing"

	"github.com/logtk/logtk/sdk/plugin"
)

// FuzzKafkaRecords: kafka_produce's input comes from a plugin, which may
// be hostile: whatever it holds decodes or is refused, never panics, and
// what decodes reads the same once the SDK encodes it again.
func FuzzKafkaRecords(f *testing.F) {
	var kr plugin.KafkaRecords
	kr.Append([]byte("k"), []byte("v"), []plugin.KafkaHeader{{Key: "h", Value: []byte("x")}})
	kr.Append(nil, nil, nil)
	f.Add(kr.Bytes())
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := decodeKafkaRecords(b)
		if err != nil {
			return
		}
		var again plugin.KafkaRecords
		for _, r := range recs {
			var hs []plugin.KafkaHeader
			for _, h := range r.Headers {
				hs = append(hs, plugin.KafkaHeader{Key: h.Key, Value: h.Value})
			}
			again.Append(r.Key, r.Value, hs)
		}
		back, err := decodeKafkaRecords(again.Bytes())
		if err != nil || !reflect.DeepEqual(back, recs) {
			t.Fatalf("%x decoded to %+v, encoded again to %+v (%v)", b, recs, back, err)
		}
	})
}

// TestKafkaTicketsAbandoned: a plugin that gives up on its tickets after
// a failure (and asks for its batches again) never runs out of them:
// finished tickets it did not wait for make room; unfinished ones count.
func TestKafkaTicketsAbandoned(t *testing.T) {
	k := &kafkaState{tickets: map[int32]*kafkaTicket{}}
	for range 10 * maxKafkaTickets {
		tk := &kafkaTicket{done: make(chan struct{})}
		if _, ok := k.add(tk); !ok {
			t.Fatalf("no ticket with %d abandoned, all finished", len(k.tickets))
		}
		close(tk.done) // finished; never waited for
	}
	k = &kafkaState{tickets: map[int32]*kafkaTicket{}}
	for i := range maxKafkaTickets {
		if _, ok := k.add(&kafkaTicket{done: make(chan struct{})}); !ok {
			t.Fatalf("ticket %d refused", i)
		}
	}
	if _, ok := k.add(&kafkaTicket{done: make(chan struct{})}); ok {
		t.Fatalf("a ticket past %d unfinished was taken", maxKafkaTickets)
	}
}
