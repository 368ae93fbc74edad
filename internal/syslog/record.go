package syslog

import (
	"log/slog"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logtk/logtk/internal/recordwire"

	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/record"
)

// Levels maps syslog severities (0 emergency .. 7 debug) to record
// levels: emergency, alert and critical are fatal.
var Levels = [8]int32{
	record.LevelFatal, record.LevelFatal, record.LevelFatal, record.LevelError,
	record.LevelWarn, record.LevelNotice, record.LevelInfo, record.LevelDebug,
}

// AppendRecord appends the record a message becomes (docs/syslog.md): its
// time (or received, when it had none), its severity as the level, its
// MSG as the message and its APP-NAME as the logger, and as attributes
// the rest: facility, severity, hostname, app_name, procid, msgid,
// syslog (rfc5424 or rfc3164), and each SD-ELEMENT as a group of its
// params. A message that did not parse (perr) is kept whole as the
// message, at notice level, with a syslog_error attribute.
func AppendRecord(b []byte, m *Message, raw []byte, perr error, received time.Time) []byte {
	if perr != nil {
		b = irecord.AppendHead(b, received, record.LevelNotice, string(ValidUTF8(raw)), "")
		return irecord.AppendAttr(b, slog.String("syslog_error", perr.Error()))
	}
	t := m.Time
	if t.IsZero() {
		t = received
	}
	level := int32(record.LevelNotice) // no PRI: RFC 3164's default
	if m.Severity >= 0 {
		level = Levels[m.Severity]
	}
	// Encoded here field by field, without the strings and slog values
	// the general encoder takes: this runs once per message received.
	b = tag(b, recordwire.Time, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, uint64(t.UnixNano()))
	b = tag(b, recordwire.Level, protowire.VarintType)
	b = uvarint(b, uint64(level))
	if len(m.Msg) > 0 {
		b = tag(b, recordwire.Message, protowire.BytesType)
		b = lenBytes(b, ValidUTF8(m.Msg))
	}
	if len(m.AppName) > 0 {
		b = tag(b, recordwire.Logger, protowire.BytesType)
		b = lenBytes(b, ValidUTF8(m.AppName))
	}
	if m.Facility >= 0 {
		b = appendIntAttr(b, "facility", int64(m.Facility))
		b = appendIntAttr(b, "severity", int64(m.Severity))
	}
	for _, f := range [...]struct {
		key string
		v   []byte
	}{{"hostname", m.Hostname}, {"app_name", m.AppName}, {"procid", m.ProcID}, {"msgid", m.MsgID}} {
		if f.v != nil {
			b = appendStrAttr(b, recordwire.Attrs, f.key, ValidUTF8(f.v))
		}
	}
	format := "rfc5424"
	if m.RFC3164 {
		format = "rfc3164"
	}
	b = appendStrAttr(b, recordwire.Attrs, "syslog", []byte(format))
	for _, el := range m.Data {
		if len(el.Params) == 0 {
			continue // an empty group says nothing (as slog has it)
		}
		// Attr{key, group: Group{attrs...}}
		id := ValidUTF8(el.ID)
		group := 0
		for _, p := range el.Params {
			group += sizeField(strAttrSize(len(ValidUTF8(p.Name)), len(ValidUTF8(p.Value))))
		}
		attr := sizeField(len(id)) + sizeField(group)
		b = tag(b, recordwire.Attrs, protowire.BytesType)
		b = uvarint(b, uint64(attr))
		b = tag(b, attrKey, protowire.BytesType)
		b = lenBytes(b, id)
		b = tag(b, attrGroup, protowire.BytesType)
		b = uvarint(b, uint64(group))
		for _, p := range el.Params {
			b = appendStrAttr(b, groupAttrs, string(ValidUTF8(p.Name)), ValidUTF8(p.Value))
		}
	}
	return b
}

// Field numbers of logtk.v1.Attr and Group.
const (
	attrKey    = 1
	attrStr    = 2
	attrInt    = 3
	attrGroup  = 10
	groupAttrs = 1
)

// sizeField is the size of a length-delimited field of n bytes (a tag
// of one byte).
func sizeField(n int) int { return 1 + protowire.SizeVarint(uint64(n)) + n }

func strAttrSize(key, value int) int { return sizeField(key) + sizeField(value) }

// appendStrAttr appends Attr{key, str: v} as field num.
func appendStrAttr(b []byte, num protowire.Number, key string, v []byte) []byte {
	b = tag(b, num, protowire.BytesType)
	b = uvarint(b, uint64(strAttrSize(len(key), len(v))))
	b = tag(b, attrKey, protowire.BytesType)
	b = lenString(b, key)
	b = tag(b, attrStr, protowire.BytesType)
	return lenBytes(b, v)
}

// appendIntAttr appends Attr{key, int: n} as an attribute of the record.
func appendIntAttr(b []byte, key string, n int64) []byte {
	v := protowire.EncodeZigZag(n)
	b = tag(b, recordwire.Attrs, protowire.BytesType)
	b = uvarint(b, uint64(sizeField(len(key))+1+protowire.SizeVarint(v)))
	b = tag(b, attrKey, protowire.BytesType)
	b = lenString(b, key)
	b = tag(b, attrInt, protowire.VarintType)
	return uvarint(b, v)
}

// The appends of the fields above, inlined where protowire's are not:
// tags of fields 1 to 15 and lengths under 128 are one byte.
func tag(b []byte, num protowire.Number, typ protowire.Type) []byte {
	return append(b, byte(num)<<3|byte(typ)) // every field here is 1..15
}

func uvarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, v)
}

func lenBytes(b, v []byte) []byte { return append(uvarint(b, uint64(len(v))), v...) }

func lenString(b []byte, v string) []byte { return append(uvarint(b, uint64(len(v))), v...) }
