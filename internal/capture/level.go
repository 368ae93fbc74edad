package capture

import (
	"bytes"
	"log/slog"
)

// LevelPrefix returns the level that the start of a text line names, for
// programs whose logger writes the level first. It recognises
//
//	INFO:root:message        a name and a colon (Python logging's default
//	                         format; "error: ..." of command-line tools),
//	                         in any case
//	[INFO] message           a name in brackets, in any case
//	INFO message             a name and a space or tab, in upper case
//	                         only ("Error handling ..." is a sentence)
//	level=info msg=...       logfmt, with "level" or "lvl" as the first
//	                         key or after a first "time", "ts" or "t" key;
//	                         the value in any case, quoted or not
//	I1206 10:00:00.123456 …  glog and klog: I, W, E or F, the month and
//	                         the day, then the time
//
// after an optional timestamp: one or two words that begin with a digit
// and hold only digits, "-/:.,+" and "T" or "Z", one of "-/:" at least
// ("2024/12/06 10:00:00 WARN ..." of log/slog's default logger,
// "2024-12-06 10:00:00,123 INFO ..."). The names are trace, debug, info,
// notice, warn, warning, error, critical and fatal (critical and fatal
// are slog level 12, as in ParseJSONLine). It reports false for any other
// line. It looks at no more than the line's first few dozen bytes and
// does not allocate.
func LevelPrefix(line []byte) (slog.Level, bool) {
	if l, ok := klogLevel(line); ok {
		return l, true
	}
	b := skipTimestamp(line)
	if len(b) == 0 {
		return 0, false
	}
	if b[0] == '[' {
		n := letters(b[1:])
		if n > 0 && len(b) > n+1 && b[n+1] == ']' {
			return levelName(b[1 : 1+n])
		}
		return 0, false
	}
	if l, ok := logfmtLevel(b); ok {
		return l, true
	}
	n := letters(b)
	if n == 0 || n == len(b) {
		return 0, false
	}
	switch b[n] {
	case ':':
		return levelName(b[:n])
	case ' ', '\t':
		for _, c := range b[:n] {
			if c >= 'a' {
				return 0, false // not upper case
			}
		}
		return levelName(b[:n])
	}
	return 0, false
}

// klogLevel reads glog's and klog's "Lmmdd hh:mm:ss.uuuuuu ..." header.
func klogLevel(b []byte) (slog.Level, bool) {
	if len(b) < 9 || b[5] != ' ' || b[8] != ':' {
		return 0, false
	}
	for _, i := range [...]int{1, 2, 3, 4, 6, 7} {
		if b[i] < '0' || b[i] > '9' {
			return 0, false
		}
	}
	switch b[0] {
	case 'I':
		return slog.LevelInfo, true
	case 'W':
		return slog.LevelWarn, true
	case 'E':
		return slog.LevelError, true
	case 'F':
		return 12, true
	}
	return 0, false
}

// logfmtLevel reads "level=info" or "lvl=info", first or after a time key.
func logfmtLevel(b []byte) (slog.Level, bool) {
	for _, k := range [...]string{"time=", "ts=", "t="} {
		if bytes.HasPrefix(b, []byte(k)) {
			i := bytes.IndexByte(b, ' ')
			if i < 0 {
				return 0, false
			}
			b = b[i+1:]
			break
		}
	}
	var v []byte
	switch {
	case bytes.HasPrefix(b, []byte("level=")):
		v = b[len("level="):]
	case bytes.HasPrefix(b, []byte("lvl=")):
		v = b[len("lvl="):]
	default:
		return 0, false
	}
	quoted := len(v) > 0 && v[0] == '"'
	if quoted {
		v = v[1:]
	}
	n := letters(v)
	if n == 0 {
		return 0, false
	}
	if end := v[n:]; len(end) > 0 && !(end[0] == ' ' || quoted && end[0] == '"') {
		return 0, false
	}
	return levelName(v[:n])
}

// skipTimestamp returns b after one or two leading timestamp words and
// the spaces after them.
func skipTimestamp(b []byte) []byte {
	for range 2 {
		if len(b) == 0 || b[0] < '0' || b[0] > '9' {
			return b
		}
		sep := false
		i := 0
		for ; i < len(b) && b[i] != ' '; i++ {
			switch c := b[i]; {
			case '0' <= c && c <= '9', c == '.', c == ',', c == '+', c == 'T', c == 'Z':
			case c == '-', c == '/', c == ':':
				sep = true
			default:
				return b
			}
		}
		if !sep || i == len(b) {
			return b
		}
		for i < len(b) && b[i] == ' ' {
			i++
		}
		b = b[i:]
	}
	return b
}

// letters returns the length of b's leading run of ASCII letters, or 0
// when it is longer than any level name.
func letters(b []byte) int {
	n := 0
	for n < len(b) && (b[n]|0x20 >= 'a' && b[n]|0x20 <= 'z') {
		n++
		if n > len("critical") {
			return 0
		}
	}
	return n
}

// levelName reads a level name, in any case.
func levelName(name []byte) (slog.Level, bool) {
	var buf [8]byte
	if len(name) > len(buf) {
		return 0, false
	}
	for i, c := range name {
		buf[i] = c | 0x20 // ASCII letters only: lower case
	}
	switch string(buf[:len(name)]) {
	case "trace":
		return -8, true
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "notice":
		return 2, true
	case "warn", "warning":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	case "critical", "fatal":
		return 12, true
	}
	return 0, false
}
