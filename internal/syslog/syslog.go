// Package syslog reads syslog messages (RFC 5424, and the older BSD
// format of RFC 3164) and their TCP framings (RFC 6587: octet counting,
// or one message a line), and turns each into a logtk record, for the log
// server's syslog listeners (docs/syslog.md).
//
// Nothing a client sends is dropped silently: a message that does not
// parse becomes a record of its raw bytes with a "syslog_error"
// attribute saying why, at notice level.
package syslog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"
)

// Message is a parsed syslog message. Its byte slices point into the
// bytes Parse was given.
type Message struct {
	Facility, Severity int // from PRI; -1 when the message had none
	Time               time.Time
	Hostname, AppName  []byte // nil for the NILVALUE "-"
	ProcID, MsgID      []byte
	// Data is RFC 5424 structured data, element by element.
	Data []Element
	Msg  []byte
	// RFC3164 reports a BSD-format message.
	RFC3164 bool
}

// Element is one SD-ELEMENT: an id and its params in order.
type Element struct {
	ID     []byte
	Params []Param
}

// Param is one SD-PARAM; Value is unescaped.
type Param struct {
	Name, Value []byte
}

// ErrTooLong is a frame longer than the limit.
var ErrTooLong = errors.New("syslog: message longer than the limit")

// Parse reads one message, RFC 5424 if its PRI is followed by a version,
// else RFC 3164. now and loc complete a BSD timestamp, which has no year
// and no zone.
func Parse(b []byte, now time.Time, loc *time.Location) (Message, error) {
	m := Message{Facility: -1, Severity: -1}
	for len(b) > 0 && (b[len(b)-1] == '\r' || b[len(b)-1] == '\n' || b[len(b)-1] == 0) {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return m, errors.New("empty message")
	}
	rest := b
	if rest[0] == '<' {
		end := bytes.IndexByte(rest, '>')
		if end < 2 || end > 4 {
			return m, errors.New("malformed PRI")
		}
		pri := 0
		for _, c := range rest[1:end] {
			if c < '0' || c > '9' {
				pri = -1
				break
			}
			pri = pri*10 + int(c-'0')
		}
		if pri < 0 || pri > 191 {
			return m, fmt.Errorf("PRI %q is not 0..191", rest[1:end])
		}
		m.Facility, m.Severity = pri/8, pri%8
		rest = rest[end+1:]
	}
	if len(rest) >= 2 && rest[0] == '1' && rest[1] == ' ' {
		return m, parse5424(&m, rest[2:])
	}
	m.RFC3164 = true
	return m, parse3164(&m, rest, now, loc)
}

// rfc3339 reads the timestamps senders write (YYYY-MM-DDTHH:MM:SS, an
// optional fraction of up to 9 digits, Z or ±HH:MM) without time.Parse's
// cost; it reports false for anything else, which time.Parse then
// judges. The time is in UTC.
func rfc3339(b []byte) (time.Time, bool) {
	// "T" and "Z" are upper case, as RFC 5424 has them (and time.Parse).
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	num := func(s []byte) int {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	year, month, day := num(b[0:4]), num(b[5:7]), num(b[8:10])
	hour, minute, sec := num(b[11:13]), num(b[14:16]), num(b[17:19])
	if year < 0 || month < 1 || month > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return time.Time{}, false
	}
	rest := b[19:]
	nanos := 0
	if rest[0] == '.' {
		i := 1
		for ; i < len(rest) && rest[i] >= '0' && rest[i] <= '9'; i++ {
		}
		digits := rest[1:i]
		if len(digits) == 0 || len(digits) > 9 {
			return time.Time{}, false
		}
		nanos = num(digits)
		for range 9 - len(digits) {
			nanos *= 10
		}
		rest = rest[i:]
	}
	offset := 0
	switch {
	case len(rest) == 1 && rest[0] == 'Z':
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		h, mi := num(rest[1:3]), num(rest[4:6])
		if h < 0 || h > 23 || mi < 0 || mi > 59 {
			return time.Time{}, false
		}
		offset = (h*60 + mi) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nanos, time.UTC)
	if t.Day() != day {
		return time.Time{}, false // February 30th and the like: time.Parse says why
	}
	return t.Add(-time.Duration(offset) * time.Second), true
}

// field cuts the next space-separated field.
func field(b []byte) (f, rest []byte, ok bool) {
	i := bytes.IndexByte(b, ' ')
	if i < 0 {
		return b, nil, len(b) > 0
	}
	return b[:i], b[i+1:], i > 0
}

func nilValue(f []byte) []byte {
	if len(f) == 1 && f[0] == '-' {
		return nil
	}
	return f
}

func parse5424(m *Message, b []byte) error {
	ts, b, ok := field(b)
	if !ok {
		return errors.New("RFC 5424: no TIMESTAMP")
	}
	if string(ts) != "-" {
		t, ok := rfc3339(ts)
		if !ok {
			var err error
			if t, err = time.Parse(time.RFC3339Nano, string(ts)); err != nil {
				return fmt.Errorf("RFC 5424: TIMESTAMP %q: %v", ts, err)
			}
		}
		m.Time = t
	}
	var fs [4][]byte
	for i := range fs {
		var f []byte
		if f, b, ok = field(b); !ok {
			return fmt.Errorf("RFC 5424: header ends after %d of its fields", i+2)
		}
		fs[i] = nilValue(f)
	}
	m.Hostname, m.AppName, m.ProcID, m.MsgID = fs[0], fs[1], fs[2], fs[3]
	if len(b) == 0 {
		return errors.New("RFC 5424: no STRUCTURED-DATA")
	}
	if b[0] == '-' {
		b = b[1:]
	} else {
		var err error
		if b, err = parseSD(m, b); err != nil {
			return err
		}
	}
	if len(b) > 0 {
		if b[0] != ' ' {
			return errors.New("RFC 5424: no space before MSG")
		}
		b = b[1:]
	}
	m.Msg = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // the BOM that marks UTF-8
	return nil
}

// parseSD reads SD-ELEMENTs: [id name="value" ...]...
func parseSD(m *Message, b []byte) ([]byte, error) {
	for len(b) > 0 && b[0] == '[' {
		b = b[1:]
		end := bytes.IndexAny(b, " ]")
		if end <= 0 {
			return nil, errors.New("RFC 5424: SD-ELEMENT without an id")
		}
		el := Element{ID: b[:end]}
		b = b[end:]
		for len(b) > 0 && b[0] == ' ' {
			b = b[1:]
			eq := bytes.IndexByte(b, '=')
			if eq <= 0 || len(b) < eq+2 || b[eq+1] != '"' {
				return nil, errors.New("RFC 5424: malformed SD-PARAM")
			}
			name := b[:eq]
			b = b[eq+2:]
			var val []byte
			i := 0
			for ; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' && i+1 < len(b) && (b[i+1] == '"' || b[i+1] == '\\' || b[i+1] == ']') {
					i++
				}
				val = append(val, b[i])
			}
			if i == len(b) {
				return nil, errors.New("RFC 5424: unterminated SD-PARAM value")
			}
			el.Params = append(el.Params, Param{Name: name, Value: val})
			b = b[i+1:]
		}
		if len(b) == 0 || b[0] != ']' {
			return nil, errors.New("RFC 5424: unterminated SD-ELEMENT")
		}
		b = b[1:]
		m.Data = append(m.Data, el)
	}
	return b, nil
}

// parse3164 reads "Mmm dd hh:mm:ss host tag[pid]: msg", taking what is
// there: BSD syslog is a convention more than a format.
func parse3164(m *Message, b []byte, now time.Time, loc *time.Location) error {
	if len(b) >= 15 {
		if t, ok := bsdTime(b[:15], now, loc); ok {
			m.Time = t
			b = bytes.TrimLeft(b[15:], " ")
			if h, rest, ok := field(b); ok && !bytes.ContainsAny(h, ":[") {
				m.Hostname, b = h, rest
			}
		}
	}
	// TAG: letters, digits and a few more, up to 32, then "[pid]" and ":".
	i := 0
	for i < len(b) && i < 48 && (isTagByte(b[i])) {
		i++
	}
	if i > 0 && i < len(b) && (b[i] == ':' || b[i] == '[') {
		m.AppName = b[:i]
		rest := b[i:]
		if rest[0] == '[' {
			if end := bytes.IndexByte(rest, ']'); end > 0 {
				m.ProcID = rest[1:end]
				rest = rest[end+1:]
			}
		}
		rest = bytes.TrimPrefix(rest, []byte(":"))
		b = bytes.TrimPrefix(rest, []byte(" "))
	}
	m.Msg = b
	return nil
}

// bsdTime reads "Mmm dd hh:mm:ss", which has no year and no zone: in
// loc, in the latest year that does not put it more than bsdSkew ahead of
// now and in which the date exists (Feb 29 only in a leap year): a
// sender's clock may run a little ahead, its messages do not come from
// months ahead.
func bsdTime(b []byte, now time.Time, loc *time.Location) (time.Time, bool) {
	p, err := time.ParseInLocation(time.Stamp, string(b), loc)
	if err != nil {
		return time.Time{}, false
	}
	limit := now.Add(bsdSkew)
	for year := now.In(loc).Year() + 1; year >= now.In(loc).Year()-8; year-- {
		t := time.Date(year, p.Month(), p.Day(), p.Hour(), p.Minute(), p.Second(), 0, loc)
		if t.Month() == p.Month() && !t.After(limit) {
			return t, true
		}
	}
	return time.Time{}, false
}

// bsdSkew is how far ahead of the server's clock a BSD timestamp may be.
const bsdSkew = 7 * 24 * time.Hour

func isTagByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '/'
}

// Reader reads framed messages from a TCP stream: each frame is either
// "LEN SP MSG" (octet counting) or a message ending at a newline, chosen
// per frame by its first byte (a digit: octet counting), as RFC 6587
// describes receivers doing.
type Reader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

// NewReader reads frames of at most max bytes.
func NewReader(r io.Reader, max int) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// Next returns the next frame, valid until the next call. A frame over
// the limit is ErrTooLong: an octet-counted one is skipped whole (no
// frame returned), a line is returned cut at the limit and the rest of
// it dropped, so the stream stays in step either way. At the end of the stream it returns io.EOF;
// a frame cut short by it, io.ErrUnexpectedEOF.
func (r *Reader) Next() ([]byte, error) {
	c, err := r.r.Peek(1)
	if err != nil {
		return nil, err
	}
	if c[0] >= '1' && c[0] <= '9' && r.counts() {
		return r.counted()
	}
	return r.line()
}

// maxCountDigits bounds an octet count: ten digits is more than any
// message, and a frame whose digits run longer is a line.
const maxCountDigits = 10

// counts reports whether the stream starts with an octet count: digits
// then a space. A line that merely starts with a digit ("2026-12-06
// ...", a message without PRI) is a line.
func (r *Reader) counts() bool {
	for i := 1; ; i++ {
		b, err := r.r.Peek(i + 1)
		if len(b) <= i {
			return err == nil // (cannot happen: Peek returns what it has with an error)
		}
		c := b[i]
		switch {
		case c == ' ':
			return true
		case c < '0' || c > '9' || i >= maxCountDigits:
			return false
		}
		if err != nil {
			return false
		}
	}
}

func (r *Reader) counted() ([]byte, error) {
	digits, err := r.r.ReadSlice(' ')
	if err != nil {
		return nil, io.ErrUnexpectedEOF
	}
	n, err := strconv.ParseUint(string(digits[:len(digits)-1]), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("syslog: octet count %q: %v", digits, err)
	}
	if n > uint64(r.max) {
		// Skip it whole, so that the next frame starts in step; a count
		// that never arrives in full is the end of the stream.
		if _, err := r.r.Discard(int(min(n, 1<<40))); err != nil {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, ErrTooLong
	}
	r.buf = append(r.buf[:0], make([]byte, n)...)
	if _, err := io.ReadFull(r.r, r.buf); err != nil {
		return nil, io.ErrUnexpectedEOF
	}
	return r.buf, nil
}

func (r *Reader) line() ([]byte, error) {
	frag, err := r.r.ReadSlice('\n')
	if err == nil {
		// A whole line in the buffer is returned where it stands (valid,
		// as Next says, until the next call): no copy.
		body := len(frag) - 1
		if body > 0 && frag[body-1] == '\r' {
			body--
		}
		if body <= r.max {
			return frag[:body], nil
		}
	}
	r.buf = r.buf[:0]
	for {
		r.buf = append(r.buf, frag...)
		// The limit is on the message: its line end does not count.
		body := len(r.buf)
		if err == nil {
			body--
			if body > 0 && r.buf[body-1] == '\r' {
				body--
			}
		}
		if body > r.max {
			// Cut at the limit; the rest of the line is read and dropped,
			// so that the next frame starts at the next line.
			r.buf = r.buf[:r.max]
			for err == bufio.ErrBufferFull {
				_, err = r.r.ReadSlice('\n')
			}
			return r.buf, ErrTooLong
		}
		switch {
		case err == nil:
			return r.buf[:body], nil // without its line end
		case err == bufio.ErrBufferFull:
			frag, err = r.r.ReadSlice('\n')
			continue
		case errors.Is(err, io.EOF) && len(r.buf) > 0:
			return r.buf, nil // the last line, without its newline
		default:
			return nil, err
		}
	}
}

// ValidUTF8 returns b, or b with invalid bytes replaced, so that records
// hold valid strings.
func ValidUTF8(b []byte) []byte {
	if utf8.Valid(b) {
		return b
	}
	return bytes.ToValidUTF8(b, []byte("\uFFFD"))
}

// Buffered reports the bytes read from the stream and not yet returned.
func (r *Reader) Buffered() int { return r.r.Buffered() }
