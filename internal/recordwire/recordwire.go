// Package recordwire is what the reader of records (package
// github.com/logtk/logtk/record) and their writer (internal/record) share
// of the wire form of logtk.v1.Record: its field numbers, and the reading
// of one protobuf field, which both must do exactly alike (the log server
// checks with WholeFields that a record is whole fields, as Parse reads
// them).
//
// Field numbers here must match proto/logtk/v1/record.proto; a test in
// internal/record checks that every encoding decodes with the generated
// code.
package recordwire

import (
	"encoding/binary"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Record field numbers.
const (
	Time        = 1
	Level       = 2
	Message     = 3
	Attrs       = 4
	Caller      = 5
	Logger      = 6
	Worker      = 16
	WorkerIndex = 17
	PID         = 18
	Incarnation = 19
	Seq         = 20
	Source      = 21
	Received    = 22
	Sender      = 23
	Hostname    = 24
	Application = 25
)

// Attr field numbers.
const (
	AttrKey      = 1
	AttrStr      = 2
	AttrInt      = 3
	AttrUint     = 4
	AttrFloat    = 5
	AttrBool     = 6
	AttrBytes    = 7
	AttrTime     = 8
	AttrDuration = 9
	AttrGroup    = 10
)

// Field reads the protobuf field at b[off:]: its number and wire type, its
// value (varint and fixed64 fields) or contents (bytes fields), and the
// offset after it, -1 if the field is malformed. It accepts and rejects
// exactly what protowire.ConsumeTag followed by ConsumeVarint,
// ConsumeFixed64, ConsumeBytes or ConsumeFieldValue does (FuzzView, in
// package record, checks), in one call per field instead of three or four.
func Field(b []byte, off int) (num protowire.Number, typ protowire.Type, x uint64, data []byte, next int) {
	// The usual fields, read without calling UvarintAt: a tag of one or
	// two bytes (the host's stamp fields have two), then a varint or
	// length of one or two bytes, or a fixed64. Anything else, and
	// anything malformed, takes the general path below. It made the
	// native readers faster (the log server's gap check, the text
	// formatter) and the Wasm ones no slower: BENCHMARKS.md.
	if tag, p := short(b, off); p > 0 && tag >= 8 {
		switch typ := protowire.Type(tag & 7); typ {
		case protowire.VarintType, protowire.BytesType:
			v, q := short(b, p)
			switch {
			case q > 0 && typ == protowire.VarintType:
				return protowire.Number(tag >> 3), typ, v, nil, q
			case q > 0 && v <= uint64(len(b)-q):
				return protowire.Number(tag >> 3), typ, 0, b[q : q+int(v)], q + int(v)
			}
		case protowire.Fixed64Type:
			if len(b)-p >= 8 {
				return protowire.Number(tag >> 3), typ, binary.LittleEndian.Uint64(b[p:]), nil, p + 8
			}
		}
	}
	tag, off := UvarintAt(b, off)
	if off < 0 || tag>>3 < uint64(protowire.MinValidNumber) || tag>>3 > math.MaxInt32 {
		return 0, 0, 0, nil, -1
	}
	num, typ = protowire.Number(tag>>3), protowire.Type(tag&7)
	switch typ {
	case protowire.VarintType:
		if x, off = UvarintAt(b, off); off < 0 {
			return 0, 0, 0, nil, -1
		}
		return num, typ, x, nil, off
	case protowire.Fixed64Type:
		if len(b)-off < 8 {
			return 0, 0, 0, nil, -1
		}
		return num, typ, binary.LittleEndian.Uint64(b[off:]), nil, off + 8
	case protowire.BytesType:
		l, off := UvarintAt(b, off)
		if off < 0 || uint64(len(b)-off) < l {
			return 0, 0, 0, nil, -1
		}
		return num, typ, 0, b[off : off+int(l)], off + int(l)
	}
	n := protowire.ConsumeFieldValue(num, typ, b[off:])
	if n < 0 {
		return 0, 0, 0, nil, -1
	}
	return num, typ, 0, nil, off + n
}

// FieldShort reads the field at b[off:] when it is the usual kind: a tag
// of one byte, and a varint value or a length of one byte (data is then
// b[off+2:next]). It reports ok false for anything else, which Field then
// reads. Go inlines it, in other packages too (Field is far too large to
// be), so that the usual field costs no call: in Go's Wasm code a call
// passes its arguments and results through memory, and a record is read
// one field at a time (BENCHMARKS.md).
func FieldShort(b []byte, off int) (num protowire.Number, typ protowire.Type, x uint64, next int, ok bool) {
	if off+1 < len(b) {
		// t&5 == 0: wire type 0 (varint) or 2 (bytes).
		if t, c := b[off], b[off+1]; t >= 8 && t|c < 0x80 && t&5 == 0 {
			next = off + 2
			if t&2 != 0 {
				next += int(c)
			}
			return protowire.Number(t >> 3), protowire.Type(t & 7), uint64(c), next, next <= len(b)
		}
	}
	return 0, 0, 0, 0, false
}

// short reads a varint of one or two bytes at b[off:] and returns the
// offset after it, or -1 if there is none (a longer or malformed one, or
// the end of b). Go inlines it.
func short(b []byte, off int) (uint64, int) {
	if off < len(b) {
		if c := b[off]; c < 0x80 {
			return uint64(c), off + 1
		} else if off+1 < len(b) && b[off+1] < 0x80 {
			return uint64(c&0x7f) | uint64(b[off+1])<<7, off + 2
		}
	}
	return 0, -1
}

// UvarintAt reads the varint at b[off:], a one-byte one inline, and
// returns the offset after it, or -1 if it is malformed.
func UvarintAt(b []byte, off int) (uint64, int) {
	if off < len(b) && b[off] < 0x80 {
		return uint64(b[off]), off + 1
	}
	v, n := protowire.ConsumeVarint(b[off:])
	if n < 0 {
		return 0, -1
	}
	return v, off + n
}
