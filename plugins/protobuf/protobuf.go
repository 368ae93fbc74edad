// Package protobuf is the reference protobuf formatter: the seed's
// format.protobuf(pblib, pblib.cluster.LoggableMessage).
//
// Without configuration it emits logtk's own logtk.v1.Record, which is
// what the host already holds: formatting is a copy. Given a user's
// compiled schema (a FileDescriptorSet, e.g. from `protoc
// --descriptor_set_out` or `buf build -o`) and a message name, it maps the
// record's fields and attributes onto that message's fields by name, with
// a plan computed once at Configure, so formatting a record does not
// allocate. See README.md for the mapping rules.
package protobuf

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logtk/logtk/record/textfmt"
	"github.com/logtk/logtk/sdk/plugin"
)

// Info describes the plugin.
var Info = plugin.Info{
	Name:    "protobuf",
	Version: "1.0.0",
	Config: []plugin.Field{
		{Name: "schema", Type: plugin.TypeFile, Doc: "a compiled FileDescriptorSet; default: logtk's own logtk.v1.Record"},
		{Name: "message", Type: plugin.TypeString, Doc: "the fully qualified message to emit, e.g. cluster.LoggableMessage (required with schema)"},
	},
}

// Formatter formats records as protobuf messages.
type Formatter struct {
	plan  []step      // record fields to encode, in order
	attrs *fieldIndex // attribute key -> field
	rest  *target     // map<string,string> for attributes without a field
	key   []byte      // scratch: dotted keys of grouped attributes
	val   []byte      // scratch: values rendered as text
}

// New returns a Formatter emitting logtk.v1.Record.
func New() *Formatter { return &Formatter{} }

var _ plugin.Formatter = (*Formatter)(nil)
var _ plugin.Configurer = (*Formatter)(nil)

// What a record provides.
type source int

const (
	srcTime source = iota
	srcLevel
	srcMessage
	srcLogger
	srcWorker
	srcWorkerIndex
	srcPID
	srcIncarnation
	srcSeq
	srcSource
	srcReceived
	srcSender
	srcHostname
	srcApplication
)

// Field names each record value maps to, in order of preference.
var sourceNames = []struct {
	src   source
	names []string
}{
	{srcTime, []string{"time_unix_nano", "time", "timestamp", "ts"}},
	{srcLevel, []string{"level", "severity", "severity_number"}},
	{srcMessage, []string{"message", "msg", "body"}},
	{srcLogger, []string{"logger", "logger_name", "name"}},
	{srcWorker, []string{"worker", "worker_name"}},
	{srcWorkerIndex, []string{"worker_index"}},
	{srcPID, []string{"pid", "process_id"}},
	{srcIncarnation, []string{"incarnation"}},
	{srcSeq, []string{"seq", "sequence", "sequence_number"}},
	{srcSource, []string{"source"}},
	{srcReceived, []string{"received_unix_nano", "received", "received_time"}},
	{srcSender, []string{"sender"}},
	{srcHostname, []string{"hostname"}},
	{srcApplication, []string{"application"}},
}

type target struct {
	name     string
	num      protowire.Number
	typ      int
	typeName string
}

type step struct {
	src source
	t   target
}

// Configure implements plugin.Configurer.
func (f *Formatter) Configure(config []byte) error {
	var c struct {
		Schema  []byte `json:"schema"`
		Message string `json:"message"`
	}
	if err := plugin.DecodeConfig(config, &c); err != nil {
		return err
	}
	if len(c.Schema) == 0 {
		if c.Message != "" {
			return fmt.Errorf("message %q given without a schema", c.Message)
		}
		*f = Formatter{}
		return nil
	}
	if c.Message == "" {
		return fmt.Errorf("schema given without message: name the message to emit")
	}
	msgs, err := parseDescriptorSet(c.Schema)
	if err != nil {
		return err
	}
	m, ok := msgs[strings.TrimPrefix(c.Message, ".")]
	if !ok {
		names := make([]string, 0, len(msgs))
		for n := range msgs {
			names = append(names, n)
		}
		return fmt.Errorf("schema has no message %q (it has: %s)", c.Message, strings.Join(names, ", "))
	}
	nf := Formatter{attrs: &fieldIndex{}}
	used := map[string]bool{}
	byName := map[string]fieldDesc{}
	for _, fd := range m.fields {
		byName[fd.name] = fd
	}
	for _, sn := range sourceNames {
		for _, name := range sn.names {
			fd, ok := byName[name]
			if !ok || used[name] {
				continue
			}
			if fd.label == labelRepeated {
				return fmt.Errorf("field %s.%s is repeated; record field %s needs a singular field", m.fullName, name, name)
			}
			t := target{name: fd.name, num: fd.number, typ: fd.typ, typeName: fd.typeName}
			if !compatible(sn.src, t) {
				return fmt.Errorf("field %s.%s has type %s, which cannot hold the record's %s", m.fullName, name, typeString(t), name)
			}
			nf.plan = append(nf.plan, step{sn.src, t})
			used[name] = true
			break
		}
	}
	for _, fd := range m.fields {
		if used[fd.name] {
			continue
		}
		t := target{name: fd.name, num: fd.number, typ: fd.typ, typeName: fd.typeName}
		if fd.label == labelRepeated && fd.typ == tMessage && isStringMap(msgs, fd.typeName) {
			if nf.rest == nil && (fd.name == "attrs" || fd.name == "attributes" || fd.name == "labels" || fd.name == "fields") {
				nf.rest = &t
			}
			continue
		}
		if fd.label == labelRepeated {
			continue
		}
		nf.attrs.add(t)
	}
	*f = nf
	return nil
}

func compatible(s source, t target) bool {
	switch s {
	case srcTime, srcReceived:
		return isInt(t.typ) || t.typ == tString || (t.typ == tMessage && t.typeName == ".google.protobuf.Timestamp") || t.typ == tDouble
	case srcMessage, srcLogger, srcWorker, srcSender, srcHostname, srcApplication:
		return t.typ == tString || t.typ == tBytes
	default: // numbers, and level/source also as names
		return isInt(t.typ) || t.typ == tEnum || t.typ == tString
	}
}

func isInt(typ int) bool {
	switch typ {
	case tInt64, tUint64, tInt32, tFixed64, tFixed32, tUint32, tSfixed32, tSfixed64, tSint32, tSint64:
		return true
	}
	return false
}

func typeString(t target) string {
	names := map[int]string{tDouble: "double", tFloat: "float", tInt64: "int64", tUint64: "uint64", tInt32: "int32",
		tFixed64: "fixed64", tFixed32: "fixed32", tBool: "bool", tString: "string", tMessage: "message " + t.typeName,
		tBytes: "bytes", tUint32: "uint32", tEnum: "enum " + t.typeName, tSfixed32: "sfixed32", tSfixed64: "sfixed64",
		tSint32: "sint32", tSint64: "sint64"}
	if n, ok := names[t.typ]; ok {
		return n
	}
	return strconv.Itoa(t.typ)
}

var sourceText = [...][]byte{nil, []byte("sdk"), []byte("stdout"), []byte("stderr"), []byte("host")}

// levelText is the name of a level ("INFO").
func levelText(l int32) string { return strings.TrimRight(textfmt.LevelName(l), " ") }

// fieldIndex finds the field of an attribute by its key: a hash table
// without hashing, built at Configure. A Go map hashes each key, which in
// Wasm (no AES instructions) costs more than the rest of the lookup; here
// a key's length and first and last bytes pick a bucket of a few names,
// and the key is compared with each.
type fieldIndex struct {
	buckets [64][]target
}

func bucket[T string | []byte](key T) int {
	if len(key) == 0 {
		return 0
	}
	return (len(key)*7 + int(key[0]) + int(key[len(key)-1])*3) & 63
}

func (x *fieldIndex) add(t target) {
	i := bucket(t.name)
	x.buckets[i] = append(x.buckets[i], t)
}

func (x *fieldIndex) get(key []byte) (target, bool) {
	for _, t := range x.buckets[bucket(key)] {
		if t.name == string(key) {
			return t, true
		}
	}
	return target{}, false
}

var _ plugin.PassThroughFormatter = (*Formatter)(nil)

// PassThrough implements plugin.PassThroughFormatter: with logtk's own
// schema a formatted batch is the record batch itself, one copy natively
// (plugin.FormatBatch) and none in Wasm (the SDK returns the host's
// buffer).
func (f *Formatter) PassThrough() bool { return f.plan == nil && f.attrs == nil }

// Format implements plugin.Formatter.
func (f *Formatter) Format(b []byte, r *plugin.Record) ([]byte, error) {
	if f.plan == nil && f.attrs == nil {
		return append(b, r.Raw...), nil // logtk.v1.Record: the host's bytes are the output
	}
	for _, s := range f.plan {
		switch s.src {
		case srcTime:
			b = appendTime(b, s.t, r.TimeUnixNano)
		case srcReceived:
			b = appendTime(b, s.t, r.Received)
		case srcLevel:
			if s.t.typ == tString {
				b = appendString(appendTag(b, s.t.num, protowire.BytesType), levelText(r.Level))
			} else {
				b = appendInt(b, s.t, int64(r.Level))
			}
		case srcSource:
			if s.t.typ == tString {
				if r.Source >= 0 && int(r.Source) < len(sourceText) {
					b = appendStr(b, s.t.num, sourceText[r.Source])
				}
			} else {
				b = appendInt(b, s.t, int64(r.Source))
			}
		case srcMessage:
			b = appendStr(b, s.t.num, r.Message)
		case srcLogger:
			b = appendStr(b, s.t.num, r.Logger)
		case srcWorker:
			b = appendStr(b, s.t.num, r.Worker)
		case srcSender:
			b = appendStr(b, s.t.num, r.Sender)
		case srcHostname:
			b = appendStr(b, s.t.num, r.Hostname)
		case srcApplication:
			b = appendStr(b, s.t.num, r.Application)
		case srcWorkerIndex:
			b = f.appendIntOrText(b, s.t, int64(r.WorkerIndex))
		case srcPID:
			b = f.appendIntOrText(b, s.t, r.PID)
		case srcIncarnation:
			b = f.appendIntOrText(b, s.t, int64(r.Incarnation))
		case srcSeq:
			b = f.appendIntOrText(b, s.t, int64(r.Seq))
		}
	}
	var a plugin.Attr
	for it := r.Attrs(); it.Next(&a); {
		if t, ok := f.attrs.get(a.Key); ok {
			if nb, ok := f.appendAttr(b, t, &a); ok {
				b = nb
				continue
			}
		}
		if f.rest != nil {
			b = f.appendRest(b, f.rest.num, nil, &a)
		}
	}
	return b, nil
}

func appendStr(b []byte, num protowire.Number, s []byte) []byte {
	if len(s) == 0 {
		return b
	}
	b = appendTag(b, num, protowire.BytesType)
	return appendBytes(b, s)
}

// appendIntOrText encodes v into a number field, or as text into a
// string field (built in f.val: formatting does not allocate).
func (f *Formatter) appendIntOrText(b []byte, t target, v int64) []byte {
	if t.typ == tString {
		f.val = strconv.AppendInt(f.val[:0], v, 10)
		return appendBytes(appendTag(b, t.num, protowire.BytesType), f.val)
	}
	return appendInt(b, t, v)
}

// appendInt encodes v into an integer, enum, bool or floating field.
func appendInt(b []byte, t target, v int64) []byte {
	switch t.typ {
	case tInt64, tUint64, tInt32, tUint32, tEnum, tBool:
		if t.typ == tBool && v != 0 {
			v = 1
		}
		b = appendTag(b, t.num, protowire.VarintType)
		return appendVarint(b, uint64(v))
	case tSint32, tSint64:
		b = appendTag(b, t.num, protowire.VarintType)
		return appendVarint(b, protowire.EncodeZigZag(v))
	case tFixed32, tSfixed32:
		b = appendTag(b, t.num, protowire.Fixed32Type)
		return protowire.AppendFixed32(b, uint32(v))
	case tFixed64, tSfixed64:
		b = appendTag(b, t.num, protowire.Fixed64Type)
		return protowire.AppendFixed64(b, uint64(v))
	case tDouble:
		b = appendTag(b, t.num, protowire.Fixed64Type)
		return protowire.AppendFixed64(b, math.Float64bits(float64(v)))
	case tFloat:
		b = appendTag(b, t.num, protowire.Fixed32Type)
		return protowire.AppendFixed32(b, math.Float32bits(float32(v)))
	}
	return b
}

func appendTime(b []byte, t target, ns int64) []byte {
	if ns == 0 {
		return b
	}
	switch {
	case t.typ == tMessage: // google.protobuf.Timestamp
		b = appendTag(b, t.num, protowire.BytesType)
		sec, nsec := ns/1e9, ns%1e9
		if nsec < 0 {
			sec, nsec = sec-1, nsec+1e9
		}
		n := protowire.SizeTag(1) + protowire.SizeVarint(uint64(sec)) + protowire.SizeTag(2) + protowire.SizeVarint(uint64(nsec))
		b = appendVarint(b, uint64(n))
		b = appendVarint(appendTag(b, 1, protowire.VarintType), uint64(sec))
		return appendVarint(appendTag(b, 2, protowire.VarintType), uint64(nsec))
	case t.typ == tString:
		b = appendTag(b, t.num, protowire.BytesType)
		var tmp [40]byte
		return appendBytes(b, textfmt.AppendTime(tmp[:0], ns, 0, true)) // as time.RFC3339Nano in UTC
	case t.typ == tDouble:
		b = appendTag(b, t.num, protowire.Fixed64Type)
		return protowire.AppendFixed64(b, math.Float64bits(float64(ns)/1e9))
	}
	return appendInt(b, t, ns)
}

// appendAttr encodes an attribute into its field, if the types fit.
func (f *Formatter) appendAttr(b []byte, t target, a *plugin.Attr) ([]byte, bool) {
	switch a.Kind {
	case plugin.KindString, plugin.KindBytes:
		if t.typ == tString || t.typ == tBytes {
			if a.Kind == plugin.KindBytes && t.typ == tString {
				f.val = base64.StdEncoding.AppendEncode(f.val[:0], a.Data)
				return appendBytes(appendTag(b, t.num, protowire.BytesType), f.val), true
			}
			b = appendTag(b, t.num, protowire.BytesType)
			return appendBytes(b, a.Data), true
		}
		return b, false
	case plugin.KindInt, plugin.KindDuration:
		if isInt(t.typ) || t.typ == tEnum || t.typ == tDouble || t.typ == tFloat {
			return appendInt(b, t, a.Int()), true
		}
	case plugin.KindUint:
		if isInt(t.typ) {
			return appendInt(b, t, int64(a.Uint())), true
		}
	case plugin.KindBool:
		if t.typ == tBool {
			return appendInt(b, t, int64(a.Uint())), true
		}
	case plugin.KindFloat:
		switch t.typ {
		case tDouble:
			b = appendTag(b, t.num, protowire.Fixed64Type)
			return protowire.AppendFixed64(b, math.Float64bits(a.Float())), true
		case tFloat:
			b = appendTag(b, t.num, protowire.Fixed32Type)
			return protowire.AppendFixed32(b, math.Float32bits(float32(a.Float()))), true
		}
	case plugin.KindTime:
		if isInt(t.typ) || (t.typ == tMessage && t.typeName == ".google.protobuf.Timestamp") {
			return appendTime(b, t, a.TimeUnixNano()), true
		}
	}
	if t.typ == tString && a.Kind != plugin.KindGroup {
		f.val = textfmt.AppendValue(f.val[:0], a)
		return appendBytes(appendTag(b, t.num, protowire.BytesType), f.val), true
	}
	return b, false
}

// appendRest adds an attribute without a field of its own to the
// map<string,string>, flattening groups with dotted keys.
func (f *Formatter) appendRest(b []byte, num protowire.Number, prefix []byte, a *plugin.Attr) []byte {
	// Keys of grouped attributes are built in f.key: a group's prefix is
	// extended in place by its members (siblings overwrite what follows
	// it, never the prefix), so nothing is allocated per attribute.
	var key []byte
	switch {
	case len(prefix) > 0:
		key = append(append(prefix[:len(prefix):cap(prefix)], '.'), a.Key...)
	case a.Kind == plugin.KindGroup:
		if cap(f.key) < 256 {
			f.key = make([]byte, 0, 256)
		}
		key = append(f.key[:0], a.Key...)
	default:
		key = a.Key
	}
	if a.Kind == plugin.KindGroup {
		var g plugin.Attr
		for it := a.Group(); it.Next(&g); {
			b = f.appendRest(b, num, key, &g)
		}
		if cap(key) > cap(f.key) {
			f.key = key[:0]
		}
		return b
	}
	var val []byte
	if a.Kind == plugin.KindString {
		val = a.Data
	} else {
		f.val = textfmt.AppendValue(f.val[:0], a)
		val = f.val
	}
	b = appendTag(b, num, protowire.BytesType)
	n := protowire.SizeTag(1) + protowire.SizeBytes(len(key)) + protowire.SizeTag(2) + protowire.SizeBytes(len(val))
	b = appendVarint(b, uint64(n))
	b = appendBytes(appendTag(b, 1, protowire.BytesType), key)
	return appendBytes(appendTag(b, 2, protowire.BytesType), val)
}

// appendTag, appendVarint, appendBytes and appendString are protowire's,
// written so that Go inlines them: no call for a tag of a field numbered
// under 16 or a varint or length under 128 (a call per varint cost the
// formatter a visible part of its time in Wasm, which made dozens of them
// a record: BENCHMARKS.md).
func appendTag(b []byte, num protowire.Number, typ protowire.Type) []byte {
	if uint32(num) < 16 {
		return append(b, byte(num)<<3|byte(typ&7))
	}
	return appendTagLong(b, num, typ)
}

// appendTagLong is kept out of line so that appendTag is inlined.
//
//go:noinline
func appendTagLong(b []byte, num protowire.Number, typ protowire.Type) []byte {
	return appendVarint(b, protowire.EncodeTag(num, typ))
}

func appendVarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, v)
}

func appendBytes(b, v []byte) []byte {
	return append(appendVarint(b, uint64(len(v))), v...)
}

func appendString(b []byte, v string) []byte {
	return append(appendVarint(b, uint64(len(v))), v...)
}
