package record

import (
	"math"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// View reads an encoded logtk.v1.Record without decoding it into a
// struct: scalars are read in one pass by Parse, strings are sub-slices of
// the encoded bytes and attributes are iterated in place. Nothing
// allocates. The encoded bytes must not change while the View is used.
type View struct {
	Raw          []byte
	TimeUnixNano int64
	Level        int32
	Message      []byte
	Logger       []byte
	Caller       []byte // encoded Caller message, or nil
	Worker       []byte
	WorkerIndex  uint32
	PID          int64
	Incarnation  uint32
	Seq          uint64
	Source       int32
	Received     int64
	attrs        int // offset of the first attrs field, or -1
}

// Parse fills v from b. It assumes b passed Validate; on malformed input it
// stops early and returns false, leaving the fields read so far.
func (v *View) Parse(b []byte) bool {
	*v = View{Raw: b, attrs: -1}
	off := 0
	for off < len(b) {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return false
		}
		start := off
		off += n
		switch typ {
		case protowire.VarintType:
			x, m := protowire.ConsumeVarint(b[off:])
			if m < 0 {
				return false
			}
			off += m
			switch num {
			case fLevel:
				v.Level = int32(x)
			case fWorkerIndex:
				v.WorkerIndex = uint32(x)
			case fPID:
				v.PID = int64(x)
			case fIncarnation:
				v.Incarnation = uint32(x)
			case fSeq:
				v.Seq = x
			case fSource:
				v.Source = int32(x)
			}
		case protowire.Fixed64Type:
			x, m := protowire.ConsumeFixed64(b[off:])
			if m < 0 {
				return false
			}
			off += m
			switch num {
			case fTime:
				v.TimeUnixNano = int64(x)
			case fReceived:
				v.Received = int64(x)
			}
		case protowire.BytesType:
			x, m := protowire.ConsumeBytes(b[off:])
			if m < 0 {
				return false
			}
			off += m
			switch num {
			case fMessage:
				v.Message = x
			case fLogger:
				v.Logger = x
			case fWorker:
				v.Worker = x
			case fCaller:
				v.Caller = x
			case fAttrs:
				if v.attrs < 0 {
					v.attrs = start
				}
			}
		default:
			m := protowire.ConsumeFieldValue(num, typ, b[off:])
			if m < 0 {
				return false
			}
			off += m
		}
	}
	return true
}

// Time returns the record's time.
func (v *View) Time() time.Time { return time.Unix(0, v.TimeUnixNano) }

// Kind is an attribute value's type.
type Kind uint8

// Attribute kinds, by their field in logtk.v1.Attr.
const (
	KindNone Kind = iota
	KindString
	KindInt
	KindUint
	KindFloat
	KindBool
	KindBytes
	KindTime
	KindDuration
	KindGroup
)

// AttrView is one attribute, read in place.
type AttrView struct {
	Key  []byte
	Kind Kind
	num  uint64
	Data []byte // string or bytes value, or the encoded Group
}

func (a *AttrView) Int() int64              { return int64(a.num) }
func (a *AttrView) Uint() uint64            { return a.num }
func (a *AttrView) Float() float64          { return math.Float64frombits(a.num) }
func (a *AttrView) Bool() bool              { return a.num != 0 }
func (a *AttrView) Time() time.Time         { return time.Unix(0, int64(a.num)) }
func (a *AttrView) Duration() time.Duration { return time.Duration(int64(a.num)) }
func (a *AttrView) TimeUnixNano() int64     { return int64(a.num) }

// AttrIter iterates over attributes in place. It is a value: copy it to
// iterate again. The AttrView it fills belongs to the caller, so a loop
//
//	var a record.AttrView
//	for it := v.Attrs(); it.Next(&a); { ... }
//
// does not allocate.
type AttrIter struct {
	b     []byte
	field protowire.Number
}

// Attrs returns an iterator over the record's top-level attributes.
func (v *View) Attrs() AttrIter {
	if v.attrs < 0 {
		return AttrIter{}
	}
	return AttrIter{b: v.Raw[v.attrs:], field: fAttrs}
}

// Group returns an iterator over a group attribute's attributes (none for
// other kinds).
func (a *AttrView) Group() AttrIter {
	if a.Kind != KindGroup {
		return AttrIter{}
	}
	return AttrIter{b: a.Data, field: 1}
}

// Next fills a with the next attribute and reports whether there was one.
func (it *AttrIter) Next(a *AttrView) bool {
	for len(it.b) > 0 {
		num, typ, n := protowire.ConsumeTag(it.b)
		if n < 0 {
			it.b = nil
			return false
		}
		it.b = it.b[n:]
		if num != it.field || typ != protowire.BytesType {
			m := protowire.ConsumeFieldValue(num, typ, it.b)
			if m < 0 {
				it.b = nil
				return false
			}
			it.b = it.b[m:]
			continue
		}
		x, m := protowire.ConsumeBytes(it.b)
		if m < 0 {
			it.b = nil
			return false
		}
		it.b = it.b[m:]
		if parseAttr(x, a) {
			return true
		}
	}
	return false
}

func parseAttr(b []byte, a *AttrView) bool {
	*a = AttrView{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			x, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return false
			}
			b = b[m:]
			switch num {
			case aInt:
				a.Kind, a.num = KindInt, uint64(protowire.DecodeZigZag(x))
			case aUint:
				a.Kind, a.num = KindUint, x
			case aBool:
				a.Kind, a.num = KindBool, x
			case aDuration:
				a.Kind, a.num = KindDuration, uint64(protowire.DecodeZigZag(x))
			}
		case protowire.Fixed64Type:
			x, m := protowire.ConsumeFixed64(b)
			if m < 0 {
				return false
			}
			b = b[m:]
			switch num {
			case aFloat:
				a.Kind, a.num = KindFloat, x
			case aTime:
				a.Kind, a.num = KindTime, x
			}
		case protowire.BytesType:
			x, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return false
			}
			b = b[m:]
			switch num {
			case aKey:
				a.Key = x
			case aStr:
				a.Kind, a.Data = KindString, x
			case aBytes:
				a.Kind, a.Data = KindBytes, x
			case aGroup:
				a.Kind, a.Data = KindGroup, x
			}
		default:
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return false
			}
			b = b[m:]
		}
	}
	return true
}

// CallerView reads the encoded Caller of a View.
func CallerView(b []byte) (file []byte, line uint32, function []byte) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return
		}
		b = b[n:]
		switch {
		case typ == protowire.BytesType:
			x, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return
			}
			b = b[m:]
			if num == 1 {
				file = x
			} else if num == 3 {
				function = x
			}
		case typ == protowire.VarintType:
			x, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return
			}
			b = b[m:]
			if num == 2 {
				line = uint32(x)
			}
		default:
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return
			}
			b = b[m:]
		}
	}
	return
}
