// Package syslog is the reference syslog transport: it sends each record
// as an RFC 5424 message over TCP (RFC 6587 octet counting, or a message
// a line), optionally TLS, to an endpoint the host dials for it: rsyslog,
// syslog-ng, or a logtk log server's syslog listener. Its format must be
// the protobuf format without a schema (logtk.v1.Record entries), which
// it renders itself. See README.md.
//
// syslog has no acknowledgements: a batch counts as delivered once its
// messages are written to the connection. What the receiver had not yet
// read when it died is lost, and a spool does not change that (it keeps
// what could not be written, not what was written and then lost).
package syslog

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/logtk/logtk/record"
	"github.com/logtk/logtk/record/textfmt"
	"github.com/logtk/logtk/sdk/plugin"
)

// Info describes the plugin.
var Info = plugin.Info{
	Name:    "syslog",
	Version: "1.0.0",
	Config: []plugin.Field{
		{Name: "endpoint", Type: plugin.TypeString, Required: true, Doc: "name of the endpoint granted in allow { endpoint \"name\" { ... } }"},
		{Name: "framing", Type: plugin.TypeString, Doc: `"octet-counting" (default, RFC 6587) or "newline"`},
		{Name: "facility", Type: plugin.TypeString, Doc: `the facility of every message: "user" (default), "daemon", "local0" ... "local7", or a number 0-23`},
		{Name: "hostname", Type: plugin.TypeString, Doc: "HOSTNAME of every message; default the record's (stamped by a log server) or \"-\""},
		{Name: "app_name", Type: plugin.TypeString, Doc: "APP-NAME of every message; default the record's worker name, else its logger"},
	},
}

// sdID is the SD-ID of the record's identity: logtk's name at the
// documentation enterprise number (RFC 5612), as RFC 5424 asks of
// names it does not register.
const (
	sdID    = "logtk@32473"
	sdAttrs = "attrs@32473"
)

var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7, "uucp": 8, "cron": 9,
	"authpriv": 10, "ftp": 11, "local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// Transport sends records as syslog messages.
type Transport struct {
	cfg struct {
		Endpoint string `json:"endpoint"`
		Framing  string `json:"framing"`
		Facility string `json:"facility"`
		Hostname string `json:"hostname"`
		AppName  string `json:"app_name"`
	}
	facility int
	conn     *plugin.Conn
	buf, msg []byte
}

// New returns a Transport.
func New() *Transport { return &Transport{facility: 1} }

var _ plugin.Transport = (*Transport)(nil)
var _ plugin.Configurer = (*Transport)(nil)

// Configure implements plugin.Configurer.
func (t *Transport) Configure(config []byte) error {
	if err := plugin.DecodeConfig(config, &t.cfg); err != nil {
		return err
	}
	switch t.cfg.Framing {
	case "", "octet-counting", "newline":
	default:
		return fmt.Errorf("unknown framing %q (want \"octet-counting\" or \"newline\")", t.cfg.Framing)
	}
	t.facility = 1
	if f := t.cfg.Facility; f != "" {
		if n, ok := facilities[f]; ok {
			t.facility = n
		} else if n, err := strconv.Atoi(f); err == nil && n >= 0 && n <= 23 {
			t.facility = n
		} else {
			return fmt.Errorf("unknown facility %q (want user, daemon, local0..local7, ... or 0-23)", f)
		}
	}
	if t.cfg.Endpoint == "" {
		return fmt.Errorf("endpoint is required")
	}
	return nil
}

// Open implements plugin.Transport: the connection is made at the first
// write (and again after one fails).
func (t *Transport) Open() error { return nil }

// Write implements plugin.Transport: the batch's messages go out in one
// write; a failure closes the connection and asks for the batch again.
func (t *Transport) Write(b *plugin.Batch) error {
	t.buf = t.buf[:0]
	var r record.Record
	bad := 0
	b.Each(func(e []byte) bool {
		if !r.Parse(e) {
			bad++
			return true
		}
		t.msg = t.Append(t.msg[:0], &r)
		if t.cfg.Framing == "newline" {
			t.buf = appendLine(t.buf, t.msg)
		} else {
			t.buf = append(strconv.AppendInt(t.buf, int64(len(t.msg)), 10), ' ')
			t.buf = append(t.buf, t.msg...)
		}
		return true
	})
	if bad > 0 {
		return fmt.Errorf("%d entries are not logtk.v1.Record: the syslog transport needs the protobuf format without a schema", bad)
	}
	if t.conn == nil {
		c, err := plugin.Dial(t.cfg.Endpoint)
		if err != nil {
			return plugin.Retry(err)
		}
		t.conn = c
	}
	if err := t.conn.Write(t.buf); err != nil {
		t.conn.Close()
		t.conn = nil
		return plugin.Retry(err)
	}
	return nil
}

// Flush implements plugin.Transport.
func (t *Transport) Flush() error { return nil }

// Close implements plugin.Transport.
func (t *Transport) Close() error {
	if t.conn != nil {
		t.conn.Close()
		t.conn = nil
	}
	return nil
}

// appendLine appends msg as one line: a line ends the message, so line
// breaks inside it are written as rsyslog writes control characters,
// #012 and #015.
func appendLine(b, msg []byte) []byte {
	for _, c := range msg {
		switch c {
		case '\n':
			b = append(b, "#012"...)
		case '\r':
			b = append(b, "#015"...)
		default:
			b = append(b, c)
		}
	}
	return append(b, '\n')
}

// severity maps a record level to a syslog severity.
func severity(level int32) int {
	switch {
	case level >= record.LevelFatal:
		return 2 // critical
	case level >= record.LevelError:
		return 3
	case level >= record.LevelWarn:
		return 4
	case level >= record.LevelNotice, level == 0:
		return 5
	case level >= record.LevelInfo:
		return 6
	}
	return 7
}

// Append appends r as an RFC 5424 message (without framing).
func (t *Transport) Append(b []byte, r *record.Record) []byte {
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(t.facility*8+severity(r.Level)), 10)
	b = append(b, ">1 "...)
	if r.TimeUnixNano != 0 {
		b = r.Time().UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z")
	} else {
		b = append(b, '-')
	}
	b = append(b, ' ')
	host := t.cfg.Hostname
	if host == "" {
		host = string(r.Hostname)
	}
	b = appendHeaderField(b, host, 255)
	app := t.cfg.AppName
	if app == "" {
		app = string(r.Worker)
		if app == "" {
			app = string(r.Logger)
		}
	}
	b = appendHeaderField(b, app, 48)
	if r.PID != 0 {
		b = strconv.AppendInt(b, r.PID, 10)
		b = append(b, ' ')
	} else {
		b = append(b, "- "...)
	}
	b = appendHeaderField(b, string(r.Logger), 32)
	// Structured data: the record's identity, then its attributes.
	b = append(b, '[')
	b = append(b, sdID...)
	if len(r.Worker) > 0 {
		b = appendParam(b, "worker", r.Worker)
		b = appendParam(b, "index", strconv.AppendUint(nil, uint64(r.WorkerIndex), 10))
		b = appendParam(b, "incarnation", strconv.AppendUint(nil, uint64(r.Incarnation), 10))
	}
	if r.Seq != 0 {
		b = appendParam(b, "seq", strconv.AppendUint(nil, r.Seq, 10))
	}
	if l := textfmt.LevelName(r.Level); l != "" {
		b = appendParam(b, "level", []byte(strings.TrimSpace(l)))
	}
	b = append(b, ']')
	start := len(b)
	b = append(b, '[')
	b = append(b, sdAttrs...)
	n := 0
	var a record.Attr
	for it := r.Attrs(); it.Next(&a); {
		b, n = appendAttr(b, "", &a, n)
	}
	if n == 0 {
		b = b[:start]
	} else {
		b = append(b, ']')
	}
	if len(r.Message) > 0 {
		b = append(b, ' ')
		b = append(b, r.Message...)
	}
	return b
}

// appendAttr appends an attribute as SD-PARAMs, a group flattened with
// dots, a value other than a string as the text format writes it.
func appendAttr(b []byte, prefix string, a *record.Attr, n int) ([]byte, int) {
	key := prefix + string(a.Key)
	if a.Kind == record.KindGroup {
		var g record.Attr
		for it := a.Group(); it.Next(&g); {
			b, n = appendAttr(b, key+".", &g, n)
		}
		return b, n
	}
	v := a.Data // a string as it is (SD-PARAM escaping is appendParam's)
	if a.Kind != record.KindString {
		v = textfmt.AppendValue(nil, a)
	}
	return appendParam(b, key, v), n + 1
}

// appendParam appends ` name="value"`, the name cut to what an SD-NAME
// may be and the value escaped.
func appendParam(b []byte, name string, value []byte) []byte {
	b = append(b, ' ')
	w := 0
	for i := 0; i < len(name) && w < 32; i++ {
		c := name[i]
		if c <= ' ' || c >= 127 || c == '=' || c == ']' || c == '"' {
			c = '_'
		}
		b = append(b, c)
		w++
	}
	if w == 0 {
		b = append(b, '_')
	}
	b = append(b, '=', '"')
	for _, c := range value {
		if c == '"' || c == '\\' || c == ']' {
			b = append(b, '\\')
		}
		b = append(b, c)
	}
	return append(b, '"')
}

// appendHeaderField appends a header field and its space: printable
// US-ASCII, at most max bytes, "-" when empty.
func appendHeaderField(b []byte, s string, max int) []byte {
	w := 0
	for i := 0; i < len(s) && w < max; i++ {
		c := s[i]
		if c <= ' ' || c >= 127 {
			c = '_'
		}
		b = append(b, c)
		w++
	}
	if w == 0 {
		b = append(b, '-')
	}
	return append(b, ' ')
}
