package plugin

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// KafkaRecords is what one Produce sends: records, in order, encoded as
// kafka_produce takes them (docs/plugin-abi.md). Reset it to reuse it.
type KafkaRecords struct {
	b []byte
	n int
}

// KafkaHeader is a Kafka record header.
type KafkaHeader struct {
	Key   string
	Value []byte
}

// Append adds a record: its key (nil: none), value and headers.
func (k *KafkaRecords) Append(key, value []byte, headers []KafkaHeader) {
	k.b = binary.AppendUvarint(k.b, uint64(len(key)))
	k.b = append(k.b, key...)
	k.b = binary.AppendUvarint(k.b, uint64(len(value)))
	k.b = append(k.b, value...)
	k.b = binary.AppendUvarint(k.b, uint64(len(headers)))
	for _, h := range headers {
		k.b = binary.AppendUvarint(k.b, uint64(len(h.Key)))
		k.b = append(k.b, h.Key...)
		k.b = binary.AppendUvarint(k.b, uint64(len(h.Value)))
		k.b = append(k.b, h.Value...)
	}
	k.n++
}

// Len returns the number of records appended.
func (k *KafkaRecords) Len() int { return k.n }

// Bytes returns the encoded records (kafka_produce's input).
func (k *KafkaRecords) Bytes() []byte { return k.b }

// Reset empties k, keeping its memory.
func (k *KafkaRecords) Reset() { k.b, k.n = k.b[:0], 0 }

// KafkaTicket stands for the records of one Produce until Kafka has
// acknowledged them all (or one has failed).
type KafkaTicket struct{ h int32 }

// ErrKafkaRefused is returned by Wait when Kafka refused a record for
// good (too large, not authorised): sending it again cannot help.
var ErrKafkaRefused = errors.New("kafka refused a record")

// Produce hands recs to the host's Kafka client for the cluster granted
// under that name (allow { kafka "name" { ... } }), to a granted topic,
// and returns at once. The host produces them idempotently with acks=all,
// each key's records to one partition in the order produced.
func Produce(cluster, topic string, recs *KafkaRecords) (*KafkaTicket, error) {
	h := kafkaProduce(cluster, topic, recs.b)
	if h < 0 {
		return nil, kafkaErr("produce to "+cluster+"/"+topic, h)
	}
	return &KafkaTicket{h: h}, nil
}

// Wait waits at most timeout (0: not at all; cut to what is left of the
// call's time budget) for every record of the ticket to be acknowledged.
// It returns true once they are, false if they are not yet; an error
// (ErrKafkaRefused, or another that may pass) once one has failed. A
// ticket is finished once Wait returned true or an error.
func (t *KafkaTicket) Wait(timeout time.Duration) (bool, error) {
	ms := int32(min(timeout, time.Duration(math.MaxInt32)*time.Millisecond) / time.Millisecond)
	switch n := kafkaWait(t.h, ms); {
	case n == 1:
		return true, nil
	case n == 0:
		return false, nil
	case n == -9:
		msg := kafkaLastError()
		if msg == "" {
			msg = ErrKafkaRefused.Error()
		}
		return false, kafkaRefused{msg}
	default:
		return false, kafkaErr("wait", n)
	}
}

// kafkaRefused is ErrKafkaRefused with the host's message.
type kafkaRefused struct{ msg string }

func (e kafkaRefused) Error() string        { return e.msg }
func (e kafkaRefused) Is(target error) bool { return target == ErrKafkaRefused }

var kafkaErrNames = map[int32]string{-1: "not granted", -3: "produce failed", -4: "bad ticket",
	-5: "buffer outside memory", -6: "too many tickets", -8: "malformed records"}

func kafkaErr(op string, code int32) error {
	msg := kafkaLastError()
	name := kafkaErrNames[code]
	if name == "" {
		name = fmt.Sprintf("error %d", code)
	}
	if msg != "" {
		return fmt.Errorf("kafka %s: %s: %s", op, name, msg)
	}
	return fmt.Errorf("kafka %s: %s", op, name)
}
