package record

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
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
	return validateMsg(b, 0, msgRecord, 0)
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

// validateMsg is on the host's path for every record, so the common cases
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
			// The usual attribute is checked without a nested loop, and
			// short ASCII strings without the calls of checkBytes and
			// utf8.Valid; the rest goes through checkBytes.
			switch {
			case sp.nested == msgAttr && simpleAttr(v):
			case sp.nested >= 0 || sp.str && !isASCII(v):
				if err := checkBytes(v, base+off+1, sp, num, depth); err != nil {
					return err
				}
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

// simpleAttr reports whether v is an attribute of the usual shape, which
// validateMsg would accept: a short ASCII key and then one short ASCII
// string, short byte string, varint or fixed64 value, with one-byte tags
// and lengths. Anything else is left to validateMsg, which says what is
// wrong.
func simpleAttr(v []byte) bool {
	if len(v) < 2 || v[0] != tag(aKey, protowire.BytesType) || v[1] >= 0x80 || 2+int(v[1]) > len(v) || !isASCII(v[2:2+int(v[1])]) {
		return false
	}
	rest := v[2+int(v[1]):]
	if len(rest) == 0 {
		return true
	}
	switch rest[0] {
	case tag(aStr, protowire.BytesType):
		return len(rest) >= 2 && rest[1] < 0x80 && 2+int(rest[1]) == len(rest) && isASCII(rest[2:])
	case tag(aBytes, protowire.BytesType):
		return len(rest) >= 2 && rest[1] < 0x80 && 2+int(rest[1]) == len(rest)
	case tag(aFloat, protowire.Fixed64Type), tag(aTime, protowire.Fixed64Type):
		return len(rest) == 9
	case tag(aInt, protowire.VarintType), tag(aUint, protowire.VarintType), tag(aBool, protowire.VarintType), tag(aDuration, protowire.VarintType):
		// A varint of at most 9 bytes that ends exactly at the end.
		if len(rest) < 2 || len(rest) > 10 || rest[len(rest)-1] >= 0x80 {
			return false
		}
		for _, c := range rest[1 : len(rest)-1] {
			if c < 0x80 {
				return false
			}
		}
		return true
	}
	return false
}

// isASCII reports whether v has no byte above 0x7f, eight bytes at a time.
func isASCII(v []byte) bool {
	var acc uint64
	for ; len(v) >= 8; v = v[8:] {
		acc |= binary.LittleEndian.Uint64(v)
	}
	for _, c := range v {
		acc |= uint64(c)
	}
	return acc&0x8080808080808080 == 0
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
		case fTime, fReceived:
			return protowire.Fixed64Type, none, false
		case fLevel, fWorkerIndex, fPID, fIncarnation, fSeq, fSource:
			return protowire.VarintType, none, false
		case fMessage, fLogger, fWorker:
			return protowire.BytesType, none, true
		case fAttrs:
			return protowire.BytesType, msgAttr, false
		case fCaller:
			return protowire.BytesType, msgCaller, false
		}
	case msgAttr:
		switch num {
		case aKey, aStr:
			return protowire.BytesType, none, true
		case aInt, aUint, aBool, aDuration:
			return protowire.VarintType, none, false
		case aFloat, aTime:
			return protowire.Fixed64Type, none, false
		case aBytes:
			return protowire.BytesType, none, false
		case aGroup:
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
