// Package textfmt renders records as human-readable lines. The host's
// console output and the SDK's stand-alone fallback use it.
//
// A line is
//
//	2006-01-02T15:04:05.000000Z INFO  web#1 [4242] db.pool: message key=value group.key="two words"
//
// Values containing spaces, quotes, '=' or control characters are quoted
// with Go syntax, except multi-line strings (stack traces), which follow the
// line, each of their lines prefixed with "    | " so that they are read as
// one block.
package textfmt

import (
	"encoding/base64"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
)

// LevelName returns the fixed-width (5 characters) name of a level.
func LevelName(l logtkv1.Level) string {
	switch {
	case l >= logtkv1.Level_LEVEL_FATAL:
		return "FATAL"
	case l >= logtkv1.Level_LEVEL_ERROR:
		return "ERROR"
	case l >= logtkv1.Level_LEVEL_WARN:
		return "WARN "
	case l >= logtkv1.Level_LEVEL_NOTICE:
		return "NOTE "
	case l >= logtkv1.Level_LEVEL_INFO:
		return "INFO "
	case l >= logtkv1.Level_LEVEL_DEBUG:
		return "DEBUG"
	case l >= logtkv1.Level_LEVEL_TRACE:
		return "TRACE"
	}
	return "?????"
}

// Append appends r rendered as text, ending in a newline.
func Append(b []byte, r *logtkv1.Record) []byte {
	if r.TimeUnixNano != 0 {
		b = time.Unix(0, r.TimeUnixNano).UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z")
		b = append(b, ' ')
	}
	b = append(b, LevelName(r.Level)...)
	if r.Worker != "" {
		b = append(b, ' ')
		b = append(b, r.Worker...)
		b = append(b, '#')
		b = strconv.AppendUint(b, uint64(r.WorkerIndex), 10)
		if r.Pid != 0 {
			b = append(b, " ["...)
			b = strconv.AppendInt(b, r.Pid, 10)
			b = append(b, ']')
		}
	}
	switch r.Source {
	case logtkv1.Source_SOURCE_STDOUT:
		b = append(b, " stdout"...)
	case logtkv1.Source_SOURCE_STDERR:
		b = append(b, " stderr"...)
	case logtkv1.Source_SOURCE_HOST:
		b = append(b, " host"...)
	}
	if r.Logger != "" {
		b = append(b, ' ')
		b = append(b, r.Logger...)
		b = append(b, ':')
	}
	b = append(b, ' ')
	msg, msgBlock := r.Message, ""
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg, msgBlock = msg[:i], msg[i+1:]
	}
	b = append(b, msg...)
	var blocks []block
	if msgBlock != "" {
		blocks = append(blocks, block{"", msgBlock})
	}
	if c := r.Caller; c != nil && c.File != "" {
		b = append(b, " caller="...)
		b = append(b, c.File...)
		b = append(b, ':')
		b = strconv.AppendUint(b, uint64(c.Line), 10)
	}
	b, blocks = appendAttrs(b, "", r.Attrs, blocks)
	b = append(b, '\n')
	for _, bl := range blocks {
		if bl.key != "" {
			b = append(b, "    "...)
			b = append(b, bl.key...)
			b = append(b, ":\n"...)
		}
		for line := range strings.Lines(bl.text) {
			b = append(b, "    | "...)
			b = append(b, strings.TrimRight(line, "\n")...)
			b = append(b, '\n')
		}
	}
	return b
}

type block struct{ key, text string }

func appendAttrs(b []byte, prefix string, attrs []*logtkv1.Attr, blocks []block) ([]byte, []block) {
	for _, a := range attrs {
		key := a.Key
		if prefix != "" {
			key = prefix + "." + key
		}
		if g, ok := a.Value.(*logtkv1.Attr_Group); ok {
			if g.Group != nil {
				b, blocks = appendAttrs(b, key, g.Group.Attrs, blocks)
			}
			continue
		}
		if s, ok := a.Value.(*logtkv1.Attr_Str); ok && strings.Contains(strings.TrimRight(s.Str, "\n"), "\n") {
			blocks = append(blocks, block{key, s.Str})
			continue
		}
		b = append(b, ' ')
		b = append(b, key...)
		b = append(b, '=')
		b = AppendValue(b, a)
	}
	return b, blocks
}

// AppendValue appends an attribute's value as text.
func AppendValue(b []byte, a *logtkv1.Attr) []byte {
	switch v := a.Value.(type) {
	case *logtkv1.Attr_Str:
		return appendString(b, v.Str)
	case *logtkv1.Attr_Int:
		return strconv.AppendInt(b, v.Int, 10)
	case *logtkv1.Attr_Uint:
		return strconv.AppendUint(b, v.Uint, 10)
	case *logtkv1.Attr_Float:
		if math.IsInf(v.Float, 0) || math.IsNaN(v.Float) {
			return strconv.AppendFloat(b, v.Float, 'g', -1, 64)
		}
		return strconv.AppendFloat(b, v.Float, 'g', -1, 64)
	case *logtkv1.Attr_Bool:
		return strconv.AppendBool(b, v.Bool)
	case *logtkv1.Attr_Bytes:
		b = append(b, "base64:"...)
		return base64.StdEncoding.AppendEncode(b, v.Bytes)
	case *logtkv1.Attr_TimeUnixNano:
		return time.Unix(0, v.TimeUnixNano).UTC().AppendFormat(b, time.RFC3339Nano)
	case *logtkv1.Attr_DurationNanos:
		return append(b, time.Duration(v.DurationNanos).String()...)
	case nil:
		return b
	}
	return b
}

func appendString(b []byte, s string) []byte {
	if needsQuote(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == '=' || c == '"' || c == 0x7f {
				return true
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			return true
		}
		i += n
	}
	return false
}
