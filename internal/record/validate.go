package record

import (
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

type msgKind int

const (
	msgRecord msgKind = iota
	msgAttr
	msgGroup
	msgCaller
)

func validateMsg(b []byte, base int, kind msgKind, depth int) error {
	if depth > MaxGroupDepth {
		return &ValidationError{base, fmt.Sprintf("attribute groups nested deeper than %d", MaxGroupDepth)}
	}
	off := 0
	for off < len(b) {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return &ValidationError{base + off, "bad field tag: " + protowire.ParseError(n).Error()}
		}
		fieldOff := off
		if num > protowire.MaxValidNumber {
			return &ValidationError{base + off, fmt.Sprintf("field number %d out of range", num)}
		}
		off += n
		want, nested, isString := expect(kind, num)
		if want >= 0 && typ != want {
			return &ValidationError{base + fieldOff, fmt.Sprintf("field %d has wire type %d, want %d", num, typ, want)}
		}
		m := protowire.ConsumeFieldValue(num, typ, b[off:])
		if m < 0 {
			return &ValidationError{base + off, fmt.Sprintf("field %d: %v", num, protowire.ParseError(m))}
		}
		if typ == protowire.BytesType && (nested >= 0 || isString) {
			v, k := protowire.ConsumeBytes(b[off:])
			if k < 0 {
				return &ValidationError{base + off, "bad length"}
			}
			vstart := base + off + (k - len(v))
			if isString && !utf8.Valid(v) {
				return &ValidationError{vstart, fmt.Sprintf("field %d is not valid UTF-8", num)}
			}
			if nested >= 0 {
				d := depth
				if nested == msgGroup {
					d++
				}
				if err := validateMsg(v, vstart, nested, d); err != nil {
					return err
				}
			}
		}
		off += m
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
