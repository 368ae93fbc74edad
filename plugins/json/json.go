// Package json is the reference JSON formatter: one JSON object per record
// and line, with the record's fields first and its attributes after them,
// groups as nested objects. See README.md.
package json

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/logtk/logtk/record/textfmt"
	"github.com/logtk/logtk/sdk/plugin"
)

// Info describes the plugin.
var Info = plugin.Info{
	Name:    "json",
	Version: "1.0.0",
	Config: []plugin.Field{
		{Name: "time_format", Type: plugin.TypeString, Doc: `"rfc3339" (default, nanosecond precision, UTC) or "unix_nano"`},
		{Name: "attrs_key", Type: plugin.TypeString, Doc: `nest attributes under this key instead of at the top level`},
	},
}

// Formatter formats records as JSON lines. It remembers recent times
// (textfmt.TimeCache), so one Formatter is not for concurrent use: the
// host never calls a plugin instance concurrently.
type Formatter struct {
	unixNano bool
	attrsKey string
	times    textfmt.TimeCache
}

// New returns a Formatter with the defaults.
func New() *Formatter { return &Formatter{} }

var _ plugin.Formatter = (*Formatter)(nil)
var _ plugin.Configurer = (*Formatter)(nil)

// Configure implements plugin.Configurer.
func (f *Formatter) Configure(config []byte) error {
	var c struct {
		TimeFormat string `json:"time_format"`
		AttrsKey   string `json:"attrs_key"`
	}
	if err := plugin.DecodeConfig(config, &c); err != nil {
		return err
	}
	switch c.TimeFormat {
	case "", "rfc3339":
	case "unix_nano":
		f.unixNano = true
	default:
		return fmt.Errorf("unknown time_format %q (want \"rfc3339\" or \"unix_nano\")", c.TimeFormat)
	}
	f.attrsKey = c.AttrsKey
	return nil
}

var sources = [...]string{"", "sdk", "stdout", "stderr", "host"}

// Format implements plugin.Formatter.
func (f *Formatter) Format(b []byte, r *plugin.Record) ([]byte, error) {
	b = append(b, '{')
	if r.TimeUnixNano != 0 {
		b = append(b, `"time":`...)
		if f.unixNano {
			b = strconv.AppendInt(b, r.TimeUnixNano, 10)
		} else {
			b = append(b, '"')
			b = f.times.Append(b, r.TimeUnixNano, 0, true)
			b = append(b, '"')
		}
		b = append(b, ',')
	}
	b = append(b, `"level":"`...)
	b = append(b, trimSpace(textfmt.LevelName(r.Level))...)
	b = append(b, `","msg":`...)
	b = appendString(b, r.Message)
	if len(r.Logger) > 0 {
		b = append(b, `,"logger":`...)
		b = appendString(b, r.Logger)
	}
	for _, f := range [...]struct {
		key string
		v   []byte
	}{{`,"sender":`, r.Sender}, {`,"hostname":`, r.Hostname}, {`,"application":`, r.Application}} {
		if len(f.v) > 0 {
			b = append(b, f.key...)
			b = appendString(b, f.v)
		}
	}
	if len(r.Worker) > 0 {
		b = append(b, `,"worker":`...)
		b = appendString(b, r.Worker)
		b = append(b, `,"worker_index":`...)
		b = strconv.AppendUint(b, uint64(r.WorkerIndex), 10)
		b = append(b, `,"pid":`...)
		b = strconv.AppendInt(b, r.PID, 10)
		b = append(b, `,"incarnation":`...)
		b = strconv.AppendUint(b, uint64(r.Incarnation), 10)
	}
	if r.Seq != 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, r.Seq, 10)
	}
	if r.Source > 0 && int(r.Source) < len(sources) {
		b = append(b, `,"source":"`...)
		b = append(b, sources[r.Source]...)
		b = append(b, '"')
	}
	if f.attrsKey != "" {
		b = append(b, ',')
		b = appendString(b, []byte(f.attrsKey))
		b = append(b, ":{"...)
		var a plugin.Attr
		for it, first := r.Attrs(), true; it.Next(&a); first = false {
			if !first {
				b = append(b, ',')
			}
			b = f.appendAttr(b, &a)
		}
		b = append(b, '}')
	} else {
		var a plugin.Attr
		for it := r.Attrs(); it.Next(&a); {
			b = append(b, ',')
			b = f.appendAttr(b, &a)
		}
	}
	return append(b, "}\n"...), nil
}

func trimSpace(s string) string {
	for len(s) > 0 && s[len(s)-1] == ' ' {
		s = s[:len(s)-1]
	}
	return s
}

func (f *Formatter) appendAttr(b []byte, a *plugin.Attr) []byte {
	b = appendString(b, a.Key)
	b = append(b, ':')
	switch a.Kind {
	case plugin.KindString:
		return appendString(b, a.Data)
	case plugin.KindInt:
		return strconv.AppendInt(b, a.Int(), 10)
	case plugin.KindUint:
		return strconv.AppendUint(b, a.Uint(), 10)
	case plugin.KindFloat:
		v := a.Float()
		switch {
		case math.IsNaN(v): // as a quoted string: JSON has no such number
			return append(b, `"NaN"`...)
		case math.IsInf(v, 1):
			return append(b, `"+Inf"`...)
		case math.IsInf(v, -1):
			return append(b, `"-Inf"`...)
		}
		return strconv.AppendFloat(b, v, 'g', -1, 64)
	case plugin.KindBool:
		return strconv.AppendBool(b, a.Bool())
	case plugin.KindBytes:
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, a.Data)
		return append(b, '"')
	case plugin.KindTime:
		b = append(b, '"')
		b = f.times.Append(b, a.TimeUnixNano(), 0, true)
		return append(b, '"')
	case plugin.KindDuration:
		return strconv.AppendInt(b, int64(a.Duration()), 10)
	case plugin.KindGroup:
		b = append(b, '{')
		var g plugin.Attr
		for it, first := a.Group(), true; it.Next(&g); first = false {
			if !first {
				b = append(b, ',')
			}
			b = f.appendAttr(b, &g)
		}
		return append(b, '}')
	}
	return append(b, "null"...)
}

const hex = "0123456789abcdef"

// plain marks the bytes a JSON string holds as they are: printable ASCII
// other than '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendString appends s as a JSON string, escaping as encoding/json does
// (without HTML escaping) and replacing invalid UTF-8.
func appendString(b, s []byte) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if plain[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
