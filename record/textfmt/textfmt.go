// Package textfmt renders records (github.com/logtk/logtk/record) as
// human-readable lines, straight from their encoded form, for plugins that
// write text. The host (its console output, the records it could not
// deliver), the SDK's stand-alone fallback and the reference text plugin
// use it too, so all of logtk's text looks the same.
//
// A line is
//
//	2006-01-02T15:04:05.000000Z INFO  web#1 [4242] db.pool: message key=value group.key="two words"
//
// and a record the log server stored names where it came from first, its
// sender and application:
//
//	2006-01-02T15:04:05.000000Z INFO  web-01/shop web#1 [4242] db.pool: message
//
// Values containing spaces, quotes, '=', control characters or runes a
// terminal acts on are quoted with Go syntax, except multi-line
// strings (stack traces), which follow the line, each of their lines
// prefixed with "    | " so that they read as one block.
//
// Nothing a record says reaches a terminal as a command: in the text
// written as it is (the message, block lines, the logger's name, a
// caller's file, a block's key, the sender, application and worker),
// control characters but the tab, DEL, bytes that are not UTF-8, C1
// controls and bidirectional controls are written as Go escapes them
// (\x1b, \r, \u009b, \u202e).
package textfmt

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"strconv"
	"unicode/utf8"

	"github.com/logtk/logtk/record"
)

// Theme colours parts of a line. The zero Theme is plain text.
type Theme struct {
	Name   string
	Levels [8]string // ANSI prefix per level: trace, debug, info, notice, warn, error, fatal, unknown
	Dim    string    // time, origin
	Key    string    // attribute keys
	Reset  string
}

// None is the plain theme (the seed's logtk.colors.none).
var None = Theme{Name: "none"}

// Color is an ANSI colour theme for terminals.
var Color = Theme{
	Name:   "color",
	Levels: [8]string{"\x1b[90m", "\x1b[36m", "\x1b[32m", "\x1b[1;32m", "\x1b[33m", "\x1b[31m", "\x1b[1;41;97m", "\x1b[35m"},
	Dim:    "\x1b[2m",
	Key:    "\x1b[34m",
	Reset:  "\x1b[0m",
}

// Themes by name.
var Themes = map[string]Theme{"none": None, "color": Color}

func levelIndex(l int32) int {
	switch {
	case l >= record.LevelFatal:
		return 6
	case l >= record.LevelError:
		return 5
	case l >= record.LevelWarn:
		return 4
	case l >= record.LevelNotice:
		return 3
	case l >= record.LevelInfo:
		return 2
	case l >= record.LevelDebug:
		return 1
	case l >= record.LevelTrace:
		return 0
	}
	return 7
}

var levelNames = [8]string{"TRACE", "DEBUG", "INFO ", "NOTE ", "WARN ", "ERROR", "FATAL", "?????"}

// LevelName returns the fixed-width (5 characters) name of a wire level.
func LevelName(l int32) string { return levelNames[levelIndex(l)] }

// Append appends r rendered as text with the plain theme.
func Append(b []byte, r *record.Record) []byte { return None.Append(b, r) }

// AppendEncoded parses an encoded record and renders it.
func AppendEncoded(b, rec []byte) []byte {
	var v record.Record
	if !v.Parse(rec) {
		return append(b, "(malformed record)\n"...)
	}
	return None.Append(b, &v)
}

// Append appends r rendered as text, ending in a newline. It does not
// allocate unless a multi-line value must be deferred past the line.
func (t *Theme) Append(b []byte, r *record.Record) []byte { return t.AppendWith(b, r, nil) }

// AppendWith is Append with times formatted through tc (none if nil), for
// a formatter that renders many records in turn.
func (t *Theme) AppendWith(b []byte, r *record.Record, tc *TimeCache) []byte {
	if r.TimeUnixNano != 0 {
		b = ansi(b, t.Dim)
		b = tc.Append(b, r.TimeUnixNano, 6, false)
		b = ansi(b, t.Reset)
		b = append(b, ' ')
	}
	li := levelIndex(r.Level)
	b = ansi(b, t.Levels[li])
	b = append(b, levelNames[li]...)
	b = ansi(b, t.Reset)
	if len(r.Sender) > 0 {
		b = append(b, ' ')
		b = ansi(b, t.Dim)
		b = appendText(b, r.Sender)
		if len(r.Application) > 0 {
			b = append(b, '/')
			b = appendText(b, r.Application)
		}
		b = ansi(b, t.Reset)
	}
	if len(r.Worker) > 0 {
		b = append(b, ' ')
		b = ansi(b, t.Dim)
		b = appendText(b, r.Worker)
		b = append(b, '#')
		b = strconv.AppendUint(b, uint64(r.WorkerIndex), 10)
		if r.PID != 0 {
			b = append(b, " ["...)
			b = strconv.AppendInt(b, r.PID, 10)
			b = append(b, ']')
		}
		b = ansi(b, t.Reset)
	}
	switch r.Source {
	case record.SourceStdout:
		b = append(b, " stdout"...)
	case record.SourceStderr:
		b = append(b, " stderr"...)
	case record.SourceHost:
		b = append(b, " host"...)
	}
	if len(r.Logger) > 0 {
		b = append(b, ' ')
		b = appendText(b, r.Logger)
		b = append(b, ':')
	}
	b = append(b, ' ')
	msg, msgBlock := r.Message, []byte(nil)
	if i := bytes.IndexByte(msg, '\n'); i >= 0 {
		// A line ending in CRLF ends at its \r (shown, it would be
		// escaped; at a line's end a terminal shows nothing for it).
		msg, msgBlock = bytes.TrimSuffix(msg[:i], cr), msg[i+1:]
	}
	b = appendText(b, msg)
	var blocks []block
	if len(msgBlock) > 0 {
		blocks = append(blocks, block{nil, nil, msgBlock})
	}
	if r.Caller != nil {
		file, line, _ := record.CallerView(r.Caller)
		if len(file) > 0 {
			b = append(b, ' ')
			b = ansi(b, t.Key)
			b = append(b, "caller"...)
			b = ansi(b, t.Reset)
			b = append(b, '=')
			b = appendText(b, file)
			b = append(b, ':')
			b = strconv.AppendUint(b, uint64(line), 10)
		}
	}
	var a record.Attr
	for it := r.Attrs(); it.Next(&a); {
		b, blocks = t.appendAttr(b, nil, &a, blocks, tc)
	}
	b = append(b, '\n')
	for _, bl := range blocks {
		if len(bl.key) > 0 || len(bl.prefix) > 0 {
			b = append(b, "    "...)
			if len(bl.prefix) > 0 {
				b = appendText(b, bl.prefix)
				b = append(b, '.')
			}
			b = appendText(b, bl.key)
			b = append(b, ":\n"...)
		}
		for _, line := range bytes.Split(bytes.TrimRight(bl.text, "\n"), []byte{'\n'}) {
			b = append(b, "    | "...)
			b = appendText(b, bytes.TrimSuffix(line, cr))
			b = append(b, '\n')
		}
	}
	return b
}

type block struct{ prefix, key, text []byte }

var cr = []byte{'\r'}

func (t *Theme) appendAttr(b, prefix []byte, a *record.Attr, blocks []block, tc *TimeCache) ([]byte, []block) {
	if a.Kind == record.KindGroup {
		// A group's key prefix is built in a buffer of its own at the top
		// level and extended in place below: siblings overwrite what
		// follows their parent's prefix, never the prefix itself (the
		// record's bytes are never written).
		var p []byte
		if len(prefix) > 0 {
			p = append(append(prefix[:len(prefix):cap(prefix)], '.'), a.Key...)
		} else {
			p = append(make([]byte, 0, 64), a.Key...)
		}
		var ga record.Attr
		for it := a.Group(); it.Next(&ga); {
			b, blocks = t.appendAttr(b, p, &ga, blocks, tc)
		}
		return b, blocks
	}
	// A string is scanned once for what needs quotes, which includes a
	// newline; only a value that does is looked at for lines.
	quote := a.Kind == record.KindString && needsQuote(a.Data)
	if quote && bytes.Contains(bytes.TrimRight(a.Data, "\n"), []byte{'\n'}) {
		// Deferred past the line: the block keeps its own prefix.
		return b, append(blocks, block{bytes.Clone(prefix), a.Key, a.Data})
	}
	b = append(b, ' ')
	b = ansi(b, t.Key)
	switch {
	case len(prefix) > 0 && (needsQuote(prefix) || needsQuote(a.Key)):
		key := append(append(append([]byte(nil), prefix...), '.'), a.Key...)
		b = appendString(b, key)
	case len(prefix) > 0:
		b = append(append(append(b, prefix...), '.'), a.Key...)
	default:
		b = appendString(b, a.Key)
	}
	b = ansi(b, t.Reset)
	b = append(b, '=')
	switch {
	case quote:
		return appendQuoted(b, a.Data), blocks
	case a.Kind == record.KindString:
		return append(b, a.Data...), blocks
	}
	return appendValue(b, a, tc), blocks
}

// AppendValue appends an attribute's value as text.
func AppendValue(b []byte, a *record.Attr) []byte { return appendValue(b, a, nil) }

func appendValue(b []byte, a *record.Attr, tc *TimeCache) []byte {
	switch a.Kind {
	case record.KindString:
		return appendString(b, a.Data)
	case record.KindInt:
		return strconv.AppendInt(b, a.Int(), 10)
	case record.KindUint:
		return strconv.AppendUint(b, a.Uint(), 10)
	case record.KindFloat:
		return strconv.AppendFloat(b, a.Float(), 'g', -1, 64)
	case record.KindBool:
		return strconv.AppendBool(b, a.Bool())
	case record.KindBytes:
		b = append(b, "base64:"...)
		return base64.StdEncoding.AppendEncode(b, a.Data)
	case record.KindTime:
		return tc.Append(b, a.TimeUnixNano(), 0, true)
	case record.KindDuration:
		return append(b, a.Duration().String()...)
	}
	return b
}

func appendString(b, s []byte) []byte {
	if needsQuote(s) {
		return appendQuoted(b, s)
	}
	return append(b, s...)
}

// appendQuoted appends s quoted exactly as strconv.AppendQuote does. ASCII
// is escaped here, runs of printable ASCII copied at once; strconv, which
// makes two calls for every rune, sees only the other runes, one at a
// time, which it quotes as it would inside the whole string.
func appendQuoted(b, s []byte) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			_, n := utf8.DecodeRune(s[i:])
			// One rune quoted alone, less its quotes, moved back over its
			// opening quote (append copies as memmove does, overlap and
			// all, and has the room).
			q := strconv.AppendQuote(b, string(s[i:i+n]))
			b = append(q[:len(b)], q[len(b)+1:len(q)-1]...)
			i += n
			continue
		}
		if c < ' ' || c == 0x7f || c == '"' || c == '\\' {
			b = appendEscapedASCII(b, c)
			i++
			continue
		}
		j := i + 1
		for j < len(s) && quotedAsIs[s[j]] {
			j++
		}
		b = append(b, s[i:j]...)
		i = j
	}
	return append(b, '"')
}

// appendEscapedASCII appends strconv's escape for a control character, a
// double quote or a backslash.
func appendEscapedASCII(b []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(b, '\\', c)
	case '\a':
		return append(b, `\a`...)
	case '\b':
		return append(b, `\b`...)
	case '\f':
		return append(b, `\f`...)
	case '\n':
		return append(b, `\n`...)
	case '\r':
		return append(b, `\r`...)
	case '\t':
		return append(b, `\t`...)
	case '\v':
		return append(b, `\v`...)
	}
	const hex = "0123456789abcdef"
	return append(b, '\\', 'x', hex[c>>4], hex[c&15])
}

// bare marks the ASCII bytes a value may hold without quotes, and
// quotedAsIs those a quoted one holds unescaped: a table lookup a byte
// instead of four comparisons, as in the JSON formatter (BENCHMARKS.md).
var bare, quotedAsIs = func() (bare, asIs [256]bool) {
	for c := byte(' '); c < 0x7f; c++ {
		asIs[c] = c != '"' && c != '\\'
		bare[c] = c != ' ' && c != '=' && c != '"'
	}
	return bare, asIs
}()

func needsQuote(s []byte) bool {
	if len(s) == 0 {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if bare[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			return true
		}
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n == 1 || actedOn(r) {
			return true
		}
		i += n
	}
	return false
}

// appendText appends text that is shown as it is (a message, its lines,
// a logger's name, a caller's file, a sender's, an application's or a
// worker's name), but for what a terminal would act on instead of
// showing: control characters but the tab, DEL, bytes that are not
// UTF-8, C1 controls and the bidirectional controls (actedOn) are
// written as strconv.Quote escapes them (\x1b, \r, \u009b, \u202e;
// \x9b for a stray byte). A record cannot move the cursor, recolour or
// retitle the terminal of whoever reads it, or reorder what it shows;
// other text (no-break spaces, joiners, any script) reads as written.
func appendText(b, s []byte) []byte {
	// The usual text is all printable ASCII: found eight bytes at a
	// time, and copied at once.
	i := shown(s)
	if i == len(s) {
		return append(b, s...)
	}
	b = append(b, s[:i]...)
	for i < len(s) {
		c := s[i]
		if c >= ' ' && c < 0x7f || c == '\t' {
			j := i + 1
			for j < len(s) && (s[j] >= ' ' && s[j] < 0x7f || s[j] == '\t') {
				j++
			}
			b = append(b, s[i:j]...)
			i = j
			continue
		}
		if c < utf8.RuneSelf {
			b = appendEscapedASCII(b, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if (r != utf8.RuneError || n > 1) && !actedOn(r) {
			b = append(b, s[i:i+n]...)
		} else {
			// As appendQuoted does: the rune quoted alone, less its quotes.
			q := strconv.AppendQuote(b, string(s[i:i+n]))
			b = append(q[:len(b)], q[len(b)+1:len(q)-1]...)
		}
		i += n
	}
	return b
}

// ansi appends a theme's escape sequence. The plain theme's are empty,
// and appending an empty string still calls memmove, which the plain
// theme would do for every escape of a line.
func ansi(b []byte, s string) []byte {
	if len(s) == 0 {
		return b
	}
	return append(b, s...)
}

// shown returns how many of s's first bytes are printable ASCII, eight
// at a time while it can (a byte from 0x80, below 0x20 or 0x7f stops it).
func shown(s []byte) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := binary.LittleEndian.Uint64(s[i:])
		del := x ^ (ones * 0x7f)
		if (x|(x-ones*0x20)&^x|(del-ones)&^del)&highs != 0 {
			break
		}
	}
	for i < len(s) && s[i] >= ' ' && s[i] < 0x7f {
		i++
	}
	return i
}

// actedOn says whether a terminal acts on the (non-ASCII) rune r rather
// than showing it: a C1 control (U+0080-U+009F, U+009B is CSI), or a
// bidirectional control that reorders what follows it (the embeddings
// and overrides U+202A-U+202E, the isolates U+2066-U+2069, and the marks
// U+200E, U+200F, U+061C), or the line and paragraph separators U+2028
// and U+2029 (a line break to some viewers).
func actedOn(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return r == 0x200e || r == 0x200f || r == 0x061c || r == 0x2028 || r == 0x2029
}
