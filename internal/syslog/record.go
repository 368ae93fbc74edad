package syslog

import (
	"log/slog"
	"time"

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
	b = irecord.AppendHead(b, t, level, string(ValidUTF8(m.Msg)), string(ValidUTF8(m.AppName)))
	if m.Facility >= 0 {
		b = irecord.AppendAttr(b, slog.Int("facility", m.Facility))
		b = irecord.AppendAttr(b, slog.Int("severity", m.Severity))
	}
	for _, f := range []struct {
		key string
		v   []byte
	}{{"hostname", m.Hostname}, {"app_name", m.AppName}, {"procid", m.ProcID}, {"msgid", m.MsgID}} {
		if f.v != nil {
			b = irecord.AppendAttr(b, slog.String(f.key, string(ValidUTF8(f.v))))
		}
	}
	format := "rfc5424"
	if m.RFC3164 {
		format = "rfc3164"
	}
	b = irecord.AppendAttr(b, slog.String("syslog", format))
	for _, el := range m.Data {
		params := make([]any, 0, len(el.Params))
		for _, p := range el.Params {
			params = append(params, slog.String(string(ValidUTF8(p.Name)), string(ValidUTF8(p.Value))))
		}
		b = irecord.AppendAttr(b, slog.Group(string(ValidUTF8(el.ID)), params...))
	}
	return b
}
