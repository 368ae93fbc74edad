// Package record is the write side of logtk.v1.Record messages: it
// encodes, stamps and validates them with protowire, without the generated
// code. The SDK's hot path appends a record into a reusable buffer with no
// allocation, the host stamps a record by appending its origin fields, and
// the log server by appending its own. The read side, and the level, source
// and kind constants, are the public package github.com/logtk/logtk/record.
//
// The field numbers (internal/recordwire) must match
// proto/logtk/v1/record.proto; a test checks that every encoding decodes
// with the generated code.
package record

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logtk/logtk/internal/recordwire"
	pubrecord "github.com/logtk/logtk/record"
)

// LevelFromSlog maps a slog level (and logtk's levels, which share slog's
// scale: trace -8, debug -4, info 0, notice 2, warn 4, error 8, fatal 12) to
// the wire level. Levels between two named ones round down.
func LevelFromSlog(l slog.Level) int32 {
	switch {
	case l >= 12:
		return pubrecord.LevelFatal
	case l >= 8:
		return pubrecord.LevelError
	case l >= 4:
		return pubrecord.LevelWarn
	case l >= 2:
		return pubrecord.LevelNotice
	case l >= 0:
		return pubrecord.LevelInfo
	case l >= -4:
		return pubrecord.LevelDebug
	default:
		return pubrecord.LevelTrace
	}
}

// AppendHead appends the fields every record has: time (omitted when zero),
// level, message and logger name (omitted when empty).
func AppendHead(b []byte, t time.Time, level int32, msg, logger string) []byte {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	return AppendHeadNanos(b, ns, level, msg, logger)
}

// AppendHeadNanos is AppendHead with the time in Unix nanoseconds, 0 for
// none (what a zero time.Time gives AppendHead).
func AppendHeadNanos(b []byte, ns int64, level int32, msg, logger string) []byte {
	if ns != 0 {
		b = appendFixed(b, tag(recordwire.Time, protowire.Fixed64Type), uint64(ns))
	}
	b = appendVar(b, tag(recordwire.Level, protowire.VarintType), uint64(level))
	if msg != "" {
		b = appendStr(b, tag(recordwire.Message, protowire.BytesType), msg)
	}
	if logger != "" {
		b = appendStr(b, tag(recordwire.Logger, protowire.BytesType), logger)
	}
	return b
}

// AppendCaller appends the caller field.
func AppendCaller(b []byte, file string, line int, function string) []byte {
	b = protowire.AppendTag(b, recordwire.Caller, protowire.BytesType)
	b, start := beginLen(b)
	if file != "" {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, file)
	}
	if line > 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(line))
	}
	if function != "" {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendString(b, function)
	}
	return endLen(b, start)
}

// tag returns the one-byte key of a field numbered below 16.
func tag(num protowire.Number, typ protowire.Type) byte { return byte(num)<<3 | byte(typ) }

// appendStr appends a string field with a one-byte key; most strings are
// shorter than 128 bytes, whose length is one byte too.
func appendStr(b []byte, key byte, s string) []byte {
	if len(s) < 0x80 {
		b = append(b, key, byte(len(s)))
	} else {
		b = AppendUvarint(append(b, key), uint64(len(s)))
	}
	return append(b, s...)
}

// appendVar appends a varint field with a one-byte key.
func appendVar(b []byte, key byte, v uint64) []byte {
	return AppendUvarint(append(b, key), v)
}

// AppendUvarint appends v as a varint. It is inlined, and a value under
// 128 (nearly every tag and most lengths) takes no call: protowire's
// AppendVarint is not inlined, and calls are dear in Go's Wasm code.
func AppendUvarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return appendUvarintLong(b, v)
}

// appendUvarintLong is kept out of line: inlined into AppendUvarint, it
// made that too costly for Go to inline (91 against a budget of 80).
//
//go:noinline
func appendUvarintLong(b []byte, v uint64) []byte {
	if v < 0x4000 {
		return append(b, byte(v)|0x80, byte(v>>7))
	}
	return protowire.AppendVarint(b, v)
}

// appendFixed appends a fixed64 field with a one-byte key.
func appendFixed(b []byte, key byte, v uint64) []byte {
	return protowire.AppendFixed64(append(b, key), v)
}

// beginLen reserves one byte for the length of a nested message and returns
// the position its content starts at.
func beginLen(b []byte) ([]byte, int) {
	b = append(b, 0)
	return b, len(b)
}

// endLen writes the length of the nested message started at start. Contents
// under 128 bytes (the common case) fit the reserved byte; longer ones are
// shifted to make room for a longer varint.
func endLen(b []byte, start int) []byte {
	n := len(b) - start
	if n < 0x80 {
		b[start-1] = byte(n)
		return b
	}
	k := protowire.SizeVarint(uint64(n))
	for range k - 1 {
		b = append(b, 0)
	}
	copy(b[start-1+k:], b[start:start+n])
	protowire.AppendVarint(b[:start-1], uint64(n))
	return b
}

// AppendAttr appends a as a record attribute (field 4). It follows slog's
// rules: LogValuers are resolved, an Attr with an empty key and a zero value
// is dropped, a group with no attributes is dropped and a group with an
// empty key is inlined.
func AppendAttr(b []byte, a slog.Attr) []byte {
	return appendAttrField(b, recordwire.Attrs, &a)
}

// AppendAttrOf is AppendAttr for the attribute *a. It spares a loop over a
// slice of attributes the copy of each into a temporary (40 bytes,
// through the stack) that passing it by value costs.
func AppendAttrOf(b []byte, a *slog.Attr) []byte {
	return appendAttrField(b, recordwire.Attrs, a)
}

func appendAttrField(b []byte, field protowire.Number, a *slog.Attr) []byte {
	// The kind is read once: Value.Kind is a type switch on an interface,
	// and reading it three times showed in an SDK call (BENCHMARKS.md).
	v := a.Value
	k := v.Kind()
	switch k {
	case slog.KindLogValuer:
		// Resolve only what needs it: it sets up a deferred recover.
		v = v.Resolve()
		k = v.Kind()
	case slog.KindString:
		// The common attribute, a short key and a short string, in one
		// go: its lengths are known before it is written.
		s := v.String()
		if n := 4 + len(a.Key) + len(s); n < 0x80 && a.Key != "" {
			b = append(b, tag(field, protowire.BytesType), byte(n), tag(recordwire.AttrKey, protowire.BytesType), byte(len(a.Key)))
			b = append(b, a.Key...)
			b = append(b, tag(recordwire.AttrStr, protowire.BytesType), byte(len(s)))
			return append(b, s...)
		}
	}
	if k == slog.KindGroup {
		g := v.Group()
		if len(g) == 0 {
			return b
		}
		if a.Key == "" {
			for i := range g {
				b = appendAttrField(b, field, &g[i])
			}
			return b
		}
	} else if a.Key == "" && v.Any() == nil {
		return b
	}
	b, start := beginLen(append(b, tag(field, protowire.BytesType)))
	if a.Key != "" {
		b = appendStr(b, tag(recordwire.AttrKey, protowire.BytesType), a.Key)
	}
	b = appendValue(b, v, k)
	return endLen(b, start)
}

// appendValue appends v, of kind k (v.Kind()).
func appendValue(b []byte, v slog.Value, k slog.Kind) []byte {
	switch k {
	case slog.KindString:
		b = appendStr(b, tag(recordwire.AttrStr, protowire.BytesType), v.String())
	case slog.KindInt64:
		b = appendVar(b, tag(recordwire.AttrInt, protowire.VarintType), protowire.EncodeZigZag(v.Int64()))
	case slog.KindUint64:
		b = appendVar(b, tag(recordwire.AttrUint, protowire.VarintType), v.Uint64())
	case slog.KindFloat64:
		b = appendFixed(b, tag(recordwire.AttrFloat, protowire.Fixed64Type), math.Float64bits(v.Float64()))
	case slog.KindBool:
		b = appendVar(b, tag(recordwire.AttrBool, protowire.VarintType), protowire.EncodeBool(v.Bool()))
	case slog.KindDuration:
		b = appendVar(b, tag(recordwire.AttrDuration, protowire.VarintType), protowire.EncodeZigZag(int64(v.Duration())))
	case slog.KindTime:
		b = appendFixed(b, tag(recordwire.AttrTime, protowire.Fixed64Type), uint64(v.Time().UnixNano()))
	case slog.KindGroup:
		b, start := beginLen(append(b, tag(recordwire.AttrGroup, protowire.BytesType)))
		g := v.Group()
		for i := range g {
			b = appendAttrField(b, 1, &g[i])
		}
		return endLen(b, start)
	default: // KindAny
		switch x := v.Any().(type) {
		case nil:
			// A present key with no value: encode the key alone.
		case []byte:
			b = protowire.AppendTag(b, recordwire.AttrBytes, protowire.BytesType)
			b = protowire.AppendBytes(b, x)
		case error:
			b = protowire.AppendTag(b, recordwire.AttrStr, protowire.BytesType)
			b = protowire.AppendString(b, x.Error())
		case fmt.Stringer:
			b = protowire.AppendTag(b, recordwire.AttrStr, protowire.BytesType)
			b = protowire.AppendString(b, x.String())
		default:
			// Rare path: arbitrary values are rendered with fmt, which
			// allocates.
			b = protowire.AppendTag(b, recordwire.AttrStr, protowire.BytesType)
			b = protowire.AppendString(b, fmt.Sprintf("%+v", x))
		}
	}
	return b
}

// Stamp is what the host adds to a record on arrival.
type Stamp struct {
	Worker      string
	WorkerIndex uint32
	PID         int64
	Incarnation uint32
	Seq         uint64
	Source      int32
	Received    time.Time
}

// AppendStamp appends the host's origin fields. Appended after a worker's
// record, they override any values the worker put in those fields.
func AppendStamp(b []byte, s *Stamp) []byte {
	b = AppendStampOrigin(b, s.Worker, s.WorkerIndex, s.PID, s.Incarnation)
	return AppendStampArrival(b, s.Seq, s.Source, s.Received.UnixNano())
}

// AppendStampOrigin appends the stamp fields that are the same for every
// record of one worker incarnation (worker, index, pid, incarnation). The
// host encodes them once per incarnation and appends the bytes to each
// record, followed by AppendStampArrival: together they are AppendStamp.
func AppendStampOrigin(b []byte, worker string, index uint32, pid int64, incarnation uint32) []byte {
	b = protowire.AppendTag(b, recordwire.Worker, protowire.BytesType)
	b = protowire.AppendString(b, worker)
	b = protowire.AppendTag(b, recordwire.WorkerIndex, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(index))
	b = protowire.AppendTag(b, recordwire.PID, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(pid))
	b = protowire.AppendTag(b, recordwire.Incarnation, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(incarnation))
}

// Two-byte keys of the per-record stamp fields (numbers 16..31).
const (
	keySeq      = recordwire.Seq << 3        // wire type 0, varint
	keySource   = recordwire.Source << 3     // wire type 0, varint
	keyReceived = recordwire.Received<<3 | 1 // wire type 1, fixed64
)

// AppendStampArrival appends the per-record stamp fields: seq, source and
// the time of arrival in Unix nanoseconds.
func AppendStampArrival(b []byte, seq uint64, source int32, receivedUnixNano int64) []byte {
	b = append(b, keySeq&0x7f|0x80, keySeq>>7)
	b = AppendUvarint(b, seq)
	b = append(b, keySource&0x7f|0x80, keySource>>7)
	b = AppendUvarint(b, uint64(source))
	b = append(b, keyReceived&0x7f|0x80, keyReceived>>7)
	return binary.LittleEndian.AppendUint64(b, uint64(receivedUnixNano))
}

// GroupMark remembers where an open group started; see OpenGroup.
type GroupMark struct {
	tag, outer, inner int
}

// AppendServerStamp appends the fields the log server stamps on a stored
// record: sender, hostname and application, each even when empty.
// Appended after a record's own fields, they override any the sender put
// there (an empty hostname too: a record never shows one the connection
// did not give).
func AppendServerStamp(b []byte, sender, hostname, application string) []byte {
	b = protowire.AppendTag(b, recordwire.Sender, protowire.BytesType)
	b = protowire.AppendString(b, sender)
	b = protowire.AppendTag(b, recordwire.Hostname, protowire.BytesType)
	b = protowire.AppendString(b, hostname)
	b = protowire.AppendTag(b, recordwire.Application, protowire.BytesType)
	return protowire.AppendString(b, application)
}

// OpenGroup appends the start of an attribute named key holding a group,
// as a record attribute (inGroup false) or inside an enclosing group. Close
// it with CloseGroup; attributes appended in between belong to the group and
// must be appended with inGroup true.
func OpenGroup(b []byte, key string, inGroup bool) ([]byte, GroupMark) {
	var m GroupMark
	m.tag = len(b)
	field := protowire.Number(recordwire.Attrs)
	if inGroup {
		field = 1
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b, m.outer = beginLen(b)
	b = protowire.AppendTag(b, recordwire.AttrKey, protowire.BytesType)
	b = protowire.AppendString(b, key)
	b = protowire.AppendTag(b, recordwire.AttrGroup, protowire.BytesType)
	b, m.inner = beginLen(b)
	return b, m
}

// CloseGroup finishes a group started by OpenGroup. A group that received no
// attributes is removed entirely, as slog requires.
func CloseGroup(b []byte, m GroupMark) []byte {
	if len(b) == m.inner {
		return b[:m.tag]
	}
	b = endLen(b, m.inner)
	return endLen(b, m.outer)
}

// AppendGroupAttr appends a as an attribute of an open group.
func AppendGroupAttr(b []byte, a slog.Attr) []byte {
	return appendAttrField(b, 1, &a)
}

// AppendGroupAttrOf is AppendGroupAttr for the attribute *a (see
// AppendAttrOf).
func AppendGroupAttrOf(b []byte, a *slog.Attr) []byte {
	return appendAttrField(b, 1, a)
}
