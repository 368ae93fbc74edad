package record

import (
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logtk/logtk/internal/recordwire"
)

// MaxGroupDepth bounds the nesting of attribute groups a record may carry.
const MaxGroupDepth = 32

// ValidationError says what is wrong with a record and at which byte offset.
type ValidationError struct {
	Offset int
	Reason string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("malformed record at byte %d: %s", e.Offset, e.Reason)
}

// Validate checks that b is a well-formed logtk.v1.Record: every field
// parses, known fields have their declared wire type, strings are UTF-8 and
// groups nest at most MaxGroupDepth deep. Unknown fields are allowed (they
// come from newer writers) but must be well-formed. It does not allocate
// unless it fails.
func Validate(b []byte) error {
	if validFast(b) {
		return nil
	}
	return validateMsg(b, 0, msgRecord, 0)
}

// WholeFields reports whether b is a sequence of whole protobuf fields,
// whatever they hold: then fields appended to it are fields of its own
// (the log server's stamp), not the contents of a last field left open.
// It reads the fields as the public record package's Parse does, without
// looking inside them.
func WholeFields(b []byte) bool {
	for off := 0; off < len(b); {
		_, _, _, next, ok := recordwire.FieldShort(b, off)
		if !ok {
			_, _, _, _, next = recordwire.Field(b, off)
		}
		if next < 0 {
			return false
		}
		off = next
	}
	return true
}

// validFast reports whether b is a record of the shapes the SDK and the
// host write that validateMsg accepts: known top-level fields, strings,
// the caller, and attributes made of a key and then nothing, one value or
// a group of such attributes, with one-byte tags inside attributes and the
// caller, and top-level fields it does not know (a newer writer's). It
// returns false for anything else, valid or not; Validate then runs
// validateMsg, which also says what is wrong.
//
// It checks UTF-8 once per run of text rather than once per string. The
// record is cut at its binary bytes only (fixed64 values, byte strings,
// and varints, tags and lengths of more than one byte): what lies between
// is strings and one-byte tags, lengths and varints, which are ASCII. An
// ASCII byte can neither continue a multi-byte sequence nor complete one
// cut short, so a run is valid UTF-8 exactly when each string in it is.
// For the usual record that is two or three calls of utf8.Valid (eight
// bytes at a time) instead of one check per string. One-byte tags,
// lengths and varints are read inline, and each message kind has its own
// walk: one generic walk through the spec table, like validateMsg's, was
// slower than validateMsg itself (BENCHMARKS.md).
func validFast(b []byte) bool {
	tbl := &specs[msgRecord]
	text, off := 0, 0 // text: start of the run not yet checked
	for off < len(b) {
		c := b[off]
		var num protowire.Number
		if c < 0x80 {
			num = protowire.Number(c >> 3)
			off++
		} else {
			// The host's stamp fields have two-byte tags.
			if off+1 >= len(b) || b[off+1] >= 0x80 || !cutText(b, &text, off, off+2) {
				return false
			}
			num = protowire.Number(c&0x7f>>3) | protowire.Number(b[off+1])<<4
			off += 2
		}
		typ := protowire.Type(c & 7)
		if num == 0 {
			return false
		}
		if num >= 32 || tbl[num].typ < 0 {
			// An unknown field (a newer writer's): well-formed, and none
			// of it is text.
			n := protowire.ConsumeFieldValue(num, typ, b[off:])
			if n < 0 || !cutText(b, &text, off, off+n) {
				return false
			}
			off += n
			continue
		}
		sp := &tbl[num]
		if sp.typ != typ {
			return false // validateMsg says which field and wire types
		}
		switch sp.typ {
		case protowire.VarintType:
			if off < len(b) && b[off] < 0x80 {
				off++
				continue
			}
			_, end := recordwire.UvarintAt(b, off)
			if end < 0 || !cutText(b, &text, off, end) {
				return false
			}
			off = end
		case protowire.Fixed64Type:
			if len(b)-off < 8 || !cutText(b, &text, off, off+8) {
				return false
			}
			off += 8
		default: // BytesType: the table has no other
			var start, end int
			if off < len(b) && b[off] < 0x80 {
				start, end = off+1, off+1+int(b[off])
				if end > len(b) {
					return false
				}
			} else {
				var ok bool
				if start, end, ok = contentsAt(b, off); !ok || !cutText(b, &text, off, start) {
					return false
				}
			}
			switch {
			case sp.nested == msgAttr:
				if !fastAttr(b, start, end, 0, &text) {
					return false
				}
			case sp.nested == msgCaller:
				if !fastCaller(b, start, end, &text) {
					return false
				}
			case sp.nested >= 0 || !sp.str:
				return false
			}
			off = end
		}
	}
	return utf8.Valid(b[text:])
}

// fastAttr is validFast for the attribute in b[s:e], depth groups deep:
// a key, then nothing, one value, or a group.
func fastAttr(b []byte, s, e, depth int, text *int) bool {
	b = b[:e]
	if s >= e || b[s] != tag(recordwire.AttrKey, protowire.BytesType) {
		return false
	}
	var off int
	if s+1 < e && b[s+1] < 0x80 {
		off = s + 2 + int(b[s+1])
	} else {
		ks, ke, ok := contentsAt(b, s+1)
		if !ok || !cutText(b, text, s+1, ks) {
			return false
		}
		off = ke
	}
	if off >= e {
		return off == e
	}
	c := b[off]
	off++
	switch c {
	case tag(recordwire.AttrStr, protowire.BytesType):
		if off < e && b[off] < 0x80 {
			return off+1+int(b[off]) == e
		}
		vs, ve, ok := contentsAt(b, off)
		return ok && ve == e && cutText(b, text, off, vs)
	case tag(recordwire.AttrBytes, protowire.BytesType):
		_, ve, ok := contentsAt(b, off)
		return ok && ve == e && cutText(b, text, off, ve)
	case tag(recordwire.AttrInt, protowire.VarintType), tag(recordwire.AttrUint, protowire.VarintType), tag(recordwire.AttrBool, protowire.VarintType), tag(recordwire.AttrDuration, protowire.VarintType):
		if off < e && b[off] < 0x80 {
			return off+1 == e
		}
		_, end := recordwire.UvarintAt(b, off)
		return end == e && cutText(b, text, off, end)
	case tag(recordwire.AttrFloat, protowire.Fixed64Type), tag(recordwire.AttrTime, protowire.Fixed64Type):
		return e-off == 8 && cutText(b, text, off, e)
	case tag(recordwire.AttrGroup, protowire.BytesType):
		gs, ge, ok := contentsAt(b, off)
		if !ok || ge != e || gs-off > 1 && !cutText(b, text, off, gs) || depth >= MaxGroupDepth {
			return false
		}
		// The group's attributes: field 1, repeated.
		for off = gs; off < e; {
			if b[off] != tag(1, protowire.BytesType) {
				return false
			}
			as, ae, ok := contentsAt(b, off+1)
			if !ok || as-(off+1) > 1 && !cutText(b, text, off+1, as) || !fastAttr(b, as, ae, depth+1, text) {
				return false
			}
			off = ae
		}
		return true
	}
	return false
}

// fastCaller is validFast for the caller in b[s:e]: a file, a line and a
// function, with one-byte tags.
func fastCaller(b []byte, s, e int, text *int) bool {
	b = b[:e]
	for off := s; off < e; {
		c := b[off]
		off++
		switch c {
		case tag(1, protowire.BytesType), tag(3, protowire.BytesType): // file, function
			vs, ve, ok := contentsAt(b, off)
			if !ok || vs-off > 1 && !cutText(b, text, off, vs) {
				return false
			}
			off = ve
		case tag(2, protowire.VarintType): // line
			_, end := recordwire.UvarintAt(b, off)
			if end < 0 || end-off > 1 && !cutText(b, text, off, end) {
				return false
			}
			off = end
		default:
			return false
		}
	}
	return true
}

// cutText ends the run of text at s, checks it, and starts the next one
// at e, after the binary bytes s:e.
func cutText(b []byte, text *int, s, e int) bool {
	ok := utf8.Valid(b[*text:s])
	*text = e
	return ok
}

// contentsAt reads the length at b[off:] of a length-delimited field and
// returns where its contents start and end, or ok false if the length is
// malformed or runs past b.
func contentsAt(b []byte, off int) (start, end int, ok bool) {
	l, start := recordwire.UvarintAt(b, off)
	if start < 0 || l > uint64(len(b)-start) {
		return 0, 0, false
	}
	return start, start + int(l), true
}

type msgKind int8

const (
	msgRecord msgKind = iota
	msgAttr
	msgGroup
	msgCaller
)

// fieldSpec is what expect says about a field, looked up in a table.
type fieldSpec struct {
	typ    protowire.Type // wanted wire type, or -1 (unknown field)
	nested msgKind        // kind of the nested message, or -1
	str    bool           // a string: must be UTF-8
}

// specs holds expect's answers for field numbers below 32 (every known
// field), per message kind.
var specs [4][32]fieldSpec

var unknownField = fieldSpec{typ: -1, nested: -1}

func init() {
	for k := range specs {
		for n := range specs[k] {
			t, nested, str := expect(msgKind(k), protowire.Number(n))
			specs[k][n] = fieldSpec{t, nested, str}
		}
	}
}

// validateMsg checks the records validFast leaves to it (groups, the
// caller, unknown fields, and every invalid record), so the common cases
// (one-byte tags and lengths, varints, fixed64, strings, nested messages)
// are parsed inline; anything else, and every error, goes through
// protowire, whose messages the errors carry.
func validateMsg(b []byte, base int, kind msgKind, depth int) error {
	if depth > MaxGroupDepth {
		return &ValidationError{base, fmt.Sprintf("attribute groups nested deeper than %d", MaxGroupDepth)}
	}
	tbl := &specs[kind]
	off := 0
	for off < len(b) {
		fieldOff := off
		var num protowire.Number
		var typ protowire.Type
		if c := b[off]; c < 0x80 && c>>3 != 0 {
			num, typ = protowire.Number(c>>3), protowire.Type(c&7)
			off++
		} else {
			var n int
			num, typ, n = protowire.ConsumeTag(b[off:])
			if n < 0 {
				return &ValidationError{base + off, "bad field tag: " + protowire.ParseError(n).Error()}
			}
			if num > protowire.MaxValidNumber {
				return &ValidationError{base + off, fmt.Sprintf("field number %d out of range", num)}
			}
			off += n
		}
		sp := &unknownField
		if num < 32 {
			sp = &tbl[num]
		}
		if sp.typ >= 0 && typ != sp.typ {
			return &ValidationError{base + fieldOff, fmt.Sprintf("field %d has wire type %d, want %d", num, typ, sp.typ)}
		}
		rest := b[off:]
		switch {
		case typ == protowire.VarintType && len(rest) > 0 && rest[0] < 0x80:
			off++
		case typ == protowire.Fixed64Type && len(rest) >= 8:
			off += 8
		case typ == protowire.BytesType && len(rest) > 0 && rest[0] < 0x80 && int(rest[0]) < len(rest):
			v := rest[1 : 1+int(rest[0])]
			if err := checkBytes(v, base+off+1, sp, num, depth); err != nil {
				return err
			}
			off += 1 + len(v)
		default:
			m := protowire.ConsumeFieldValue(num, typ, rest)
			if m < 0 {
				return &ValidationError{base + off, fmt.Sprintf("field %d: %v", num, protowire.ParseError(m))}
			}
			if typ == protowire.BytesType {
				v, k := protowire.ConsumeBytes(rest)
				if err := checkBytes(v, base+off+(k-len(v)), sp, num, depth); err != nil {
					return err
				}
			}
			off += m
		}
	}
	return nil
}

// checkBytes checks a length-delimited value that starts at offset vstart.
func checkBytes(v []byte, vstart int, sp *fieldSpec, num protowire.Number, depth int) error {
	if sp.str && !utf8.Valid(v) {
		return &ValidationError{vstart, fmt.Sprintf("field %d is not valid UTF-8", num)}
	}
	if sp.nested >= 0 {
		d := depth
		if sp.nested == msgGroup {
			d++
		}
		return validateMsg(v, vstart, sp.nested, d)
	}
	return nil
}

// expect returns the wire type a known field must have (-1 if unknown), the
// kind of nested message it holds (-1 if none) and whether it is a string.
func expect(kind msgKind, num protowire.Number) (protowire.Type, msgKind, bool) {
	const none = msgKind(-1)
	switch kind {
	case msgRecord:
		switch num {
		case recordwire.Time, recordwire.Received:
			return protowire.Fixed64Type, none, false
		case recordwire.Level, recordwire.WorkerIndex, recordwire.PID, recordwire.Incarnation, recordwire.Seq, recordwire.Source:
			return protowire.VarintType, none, false
		case recordwire.Message, recordwire.Logger, recordwire.Worker, recordwire.Sender, recordwire.Hostname, recordwire.Application:
			return protowire.BytesType, none, true
		case recordwire.Attrs:
			return protowire.BytesType, msgAttr, false
		case recordwire.Caller:
			return protowire.BytesType, msgCaller, false
		}
	case msgAttr:
		switch num {
		case recordwire.AttrKey, recordwire.AttrStr:
			return protowire.BytesType, none, true
		case recordwire.AttrInt, recordwire.AttrUint, recordwire.AttrBool, recordwire.AttrDuration:
			return protowire.VarintType, none, false
		case recordwire.AttrFloat, recordwire.AttrTime:
			return protowire.Fixed64Type, none, false
		case recordwire.AttrBytes:
			return protowire.BytesType, none, false
		case recordwire.AttrGroup:
			return protowire.BytesType, msgGroup, false
		}
	case msgGroup:
		if num == 1 {
			return protowire.BytesType, msgAttr, false
		}
	case msgCaller:
		switch num {
		case 1, 3:
			return protowire.BytesType, none, true
		case 2:
			return protowire.VarintType, none, false
		}
	}
	return -1, none, false
}
