// Package record reads logtk's log records. A Record is a read-only view
// of one encoded logtk.v1.Record (proto/logtk/v1/record.proto), the form
// in which the host holds a record, hands it to format plugins and sends
// it to a log server; an Attr is one of its attributes. They are what a
// formatter reads: package github.com/logtk/logtk/sdk/plugin passes a
// *Record to Format (plugin.Record is this Record), and the subpackage
// textfmt (github.com/logtk/logtk/record/textfmt) renders one as a line of
// text.
//
// A Record is not decoded into values of its own: Parse reads the scalar
// fields in one pass, strings and bytes are sub-slices of the encoded
// record, and attributes are read in place, one at a time, by an
// AttrIter. Reading allocates nothing. Hence:
//
//   - Every []byte of a Record or an Attr (Raw, Message, an attribute's Key
//     and Data, ...) points into the encoded record and is valid only as
//     long as those bytes are. In a plugin that is during the call that
//     passed the record: copy what must outlive it.
//   - They are read-only: they are the record itself. The encoded bytes
//     must not change while a Record, an Attr or an AttrIter reads them.
//   - A field the record does not carry reads as the zero value: no time
//     (TimeUnixNano 0), no caller (Caller nil), no message, no sender.
//   - A field present more than once reads as its last occurrence, as a
//     protobuf decoder reads a scalar field: the host's stamp, appended after a worker's
//     own fields, overrides any values the worker put there, and the log
//     server's stamp (Sender, Hostname, Application) overrides a sender's.
//   - Fields it does not know (a newer writer's) are skipped.
//
// Parse does not validate. The records the host hands to plugins are
// well-formed: the host validates every record a worker writes before
// anything reads it, and encodes the others itself (docs/plugin-abi.md).
// On malformed input Parse stops at the first malformed field and reports
// false, and an AttrIter stops at a malformed field and skips a malformed
// attribute; neither panics.
//
// Levels and sources are integers (Record.Level, Record.Source) with the
// named values below. A level is an OpenTelemetry severity number: a
// writer may use one between two named levels, and a reader compares
// (r.Level >= LevelWarn) rather than matches.
package record

import (
	"math"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logtk/logtk/internal/recordwire"
)

// Level values (logtk.v1.Level) are OpenTelemetry severity numbers.
const (
	LevelTrace  = 1
	LevelDebug  = 5
	LevelInfo   = 9
	LevelNotice = 10
	LevelWarn   = 13
	LevelError  = 17
	LevelFatal  = 21
)

// Source values (logtk.v1.Source): where a record came from.
const (
	SourceSDK    = 1 // a worker logged it through logtk's SDK
	SourceStdout = 2 // a line the worker wrote to its standard output
	SourceStderr = 3 // a line the worker wrote to its standard error
	SourceHost   = 4 // the host wrote it about the worker
)

// Record is a read-only view of one encoded logtk.v1.Record, filled by
// Parse. Its byte slices point into the encoded record (see the package
// documentation); the zero Record is a record with no fields.
type Record struct {
	// Raw is the encoded record Parse read.
	Raw []byte
	// TimeUnixNano is the wall-clock time the record was made, in
	// nanoseconds since the Unix epoch; 0 if the record has no time.
	TimeUnixNano int64
	// Level is the record's severity, an OpenTelemetry severity number:
	// LevelTrace ... LevelFatal, or one between them; 0 if it has none.
	Level int32
	// Message is the log message, possibly several lines (a stack trace).
	Message []byte
	// Logger is the name of the logger that wrote the record,
	// dot-separated ("db.pool"), if any.
	Logger []byte
	// Caller is the encoded logtk.v1.Caller, nil if the record has none:
	// read it with CallerView.
	Caller []byte

	// Worker is the name of the worker block in plugins.hcl whose
	// instance wrote the record. It and the fields below, up to Received,
	// are stamped by the host when the record arrives: zero in a record
	// that did not pass a host.
	Worker []byte
	// WorkerIndex is the index of the instance within the worker block,
	// 0..count-1.
	WorkerIndex uint32
	// PID is the process id of the incarnation that wrote the record.
	PID int64
	// Incarnation is the instance's restart count under one host
	// process: 0 for the first start. A host that starts again (after a
	// stop or a crash) starts its instances at 0 again; Seq continues.
	Incarnation uint32
	// Seq is the instance's sequence number: starting at 1 and increasing
	// by exactly one for every record the host emits for the instance
	// (its own and the host's about it alike), across restarts of the
	// worker and of the host. A gap means a record was lost after the
	// host, but for one case: when the host's runtime directory was lost
	// (it is in memory: a reboot), the seqs go on above the highest its
	// transports hold (docs/ipc.md, "When the host dies").
	Seq uint64
	// Source is the channel the record reached the host through:
	// SourceSDK ... SourceHost.
	Source int32
	// Received is when the host received the record, in nanoseconds
	// since the Unix epoch.
	Received int64

	// Stamped by the log server when it stores the record (empty before):
	// the sending host's stable identity, the sending machine's name when
	// it gave one, and the application the record is stored under.
	Sender      []byte
	Hostname    []byte
	Application []byte

	attrs    int // offset of the first attrs field, or -1
	attrsEnd int // offset after the last attrs field
}

// Parse makes r a view of the encoded record b, reading its fields and
// leaving its attributes to Attrs. It does not allocate, and does not
// validate (see the package documentation): on malformed input it stops at
// the first malformed field and returns false, leaving the fields read so
// far.
func (r *Record) Parse(b []byte) bool {
	*r = Record{Raw: b, attrs: -1}
	for off := 0; off < len(b); {
		start := off
		num, typ, x, next, ok := recordwire.FieldShort(b, off)
		var data []byte
		if ok {
			data = b[off+2 : next]
		} else {
			num, typ, x, data, next = recordwire.Field(b, off)
		}
		if next < 0 {
			return false
		}
		off = next
		switch typ {
		case protowire.VarintType:
			switch num {
			case recordwire.Level:
				r.Level = int32(x)
			case recordwire.WorkerIndex:
				r.WorkerIndex = uint32(x)
			case recordwire.PID:
				r.PID = int64(x)
			case recordwire.Incarnation:
				r.Incarnation = uint32(x)
			case recordwire.Seq:
				r.Seq = x
			case recordwire.Source:
				r.Source = int32(x)
			}
		case protowire.Fixed64Type:
			switch num {
			case recordwire.Time:
				r.TimeUnixNano = int64(x)
			case recordwire.Received:
				r.Received = int64(x)
			}
		case protowire.BytesType:
			switch num {
			case recordwire.Message:
				r.Message = data
			case recordwire.Logger:
				r.Logger = data
			case recordwire.Worker:
				r.Worker = data
			case recordwire.Caller:
				r.Caller = data
			case recordwire.Sender:
				r.Sender = data
			case recordwire.Hostname:
				r.Hostname = data
			case recordwire.Application:
				r.Application = data
			case recordwire.Attrs:
				if r.attrs < 0 {
					r.attrs = start
				}
				r.attrsEnd = next
			}
		}
	}
	return true
}

// Time returns the record's time, TimeUnixNano as a time.Time (the Unix
// epoch if the record has none).
func (r *Record) Time() time.Time { return time.Unix(0, r.TimeUnixNano) }

// Kind is an attribute value's type.
type Kind uint8

// Attribute kinds, by their field in logtk.v1.Attr.
const (
	KindNone Kind = iota // a key without a value
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

// Attr is one attribute of a Record, read in place by an AttrIter. Key
// and Data point into the encoded record (see the package documentation).
// A number is read with the method of its Kind: Int for KindInt, Uint for
// KindUint, and so on; the method of another kind returns a meaningless
// value.
type Attr struct {
	// Key is the attribute's name; empty for none.
	Key []byte
	// Kind is the type of the attribute's value.
	Kind Kind
	num  uint64
	// Data is the value of a KindString or KindBytes attribute, and the
	// encoded logtk.v1.Group of a KindGroup one (iterate over it with
	// Group); nil for other kinds.
	Data []byte
}

// Int returns the value of a KindInt attribute.
func (a *Attr) Int() int64 { return int64(a.num) }

// Uint returns the value of a KindUint attribute.
func (a *Attr) Uint() uint64 { return a.num }

// Float returns the value of a KindFloat attribute.
func (a *Attr) Float() float64 { return math.Float64frombits(a.num) }

// Bool returns the value of a KindBool attribute.
func (a *Attr) Bool() bool { return a.num != 0 }

// Time returns the value of a KindTime attribute.
func (a *Attr) Time() time.Time { return time.Unix(0, int64(a.num)) }

// Duration returns the value of a KindDuration attribute.
func (a *Attr) Duration() time.Duration { return time.Duration(int64(a.num)) }

// TimeUnixNano returns the value of a KindTime attribute in nanoseconds
// since the Unix epoch, what Time returns as a time.Time.
func (a *Attr) TimeUnixNano() int64 { return int64(a.num) }

// AttrIter iterates over attributes in place, in the order the record
// holds them. It is a value: copy it to iterate again. The Attr it fills
// belongs to the caller, so a loop
//
//	var a record.Attr
//	for it := r.Attrs(); it.Next(&a); { ... }
//
// does not allocate.
type AttrIter struct {
	b     []byte
	field protowire.Number
}

// Attrs returns an iterator over the record's top-level attributes, in
// the order the worker gave them (a group's attributes are iterated by
// Attr.Group). Keys need not be unique.
func (r *Record) Attrs() AttrIter {
	if r.attrs < 0 {
		return AttrIter{}
	}
	// Up to the last attribute: the host's stamp fields, which follow
	// them, are not read again.
	return AttrIter{b: r.Raw[r.attrs:r.attrsEnd], field: recordwire.Attrs}
}

// Group returns an iterator over a group attribute's attributes (none for
// other kinds).
func (a *Attr) Group() AttrIter {
	if a.Kind != KindGroup {
		return AttrIter{}
	}
	return AttrIter{b: a.Data, field: 1}
}

// Next fills a with the next attribute and reports whether there was one.
// A malformed attribute is skipped; a malformed field ends the iteration.
func (it *AttrIter) Next(a *Attr) bool {
outer:
	for len(it.b) > 0 {
		num, typ, _, next, ok := recordwire.FieldShort(it.b, 0)
		var data []byte
		if ok {
			data = it.b[2:next]
		} else {
			num, typ, _, data, next = recordwire.Field(it.b, 0)
		}
		if next < 0 {
			it.b = nil
			return false
		}
		it.b = it.b[next:]
		if num != it.field || typ != protowire.BytesType {
			continue
		}
		// The attribute is read here, not by a function of its own: a
		// call an attribute less. A malformed one is skipped.
		b := data
		*a = Attr{}
		for off := 0; off < len(b); {
			num, typ, x, next, ok := recordwire.FieldShort(b, off)
			var data []byte
			if ok {
				data = b[off+2 : next]
			} else {
				num, typ, x, data, next = recordwire.Field(b, off)
			}
			if next < 0 {
				continue outer
			}
			off = next
			switch typ {
			case protowire.VarintType:
				switch num {
				case recordwire.AttrInt:
					a.Kind, a.num = KindInt, uint64(protowire.DecodeZigZag(x))
				case recordwire.AttrUint:
					a.Kind, a.num = KindUint, x
				case recordwire.AttrBool:
					a.Kind, a.num = KindBool, x
				case recordwire.AttrDuration:
					a.Kind, a.num = KindDuration, uint64(protowire.DecodeZigZag(x))
				}
			case protowire.Fixed64Type:
				switch num {
				case recordwire.AttrFloat:
					a.Kind, a.num = KindFloat, x
				case recordwire.AttrTime:
					a.Kind, a.num = KindTime, x
				}
			case protowire.BytesType:
				switch num {
				case recordwire.AttrKey:
					a.Key = data
				case recordwire.AttrStr:
					a.Kind, a.Data = KindString, data
				case recordwire.AttrBytes:
					a.Kind, a.Data = KindBytes, data
				case recordwire.AttrGroup:
					a.Kind, a.Data = KindGroup, data
				}
			}
		}
		return true
	}
	return false
}

// CallerView reads an encoded logtk.v1.Caller, a Record's Caller: the
// source file and line and the function that logged the record, each
// zero if the caller does not say. file and function point into b.
func CallerView(b []byte) (file []byte, line uint32, function []byte) {
	for off := 0; off < len(b); {
		num, typ, x, data, next := recordwire.Field(b, off)
		if next < 0 {
			return
		}
		off = next
		switch {
		case typ == protowire.BytesType && num == 1:
			file = data
		case typ == protowire.BytesType && num == 3:
			function = data
		case typ == protowire.VarintType && num == 2:
			line = uint32(x)
		}
	}
	return
}
