package textfmt

import "time"

// AppendTime appends the UTC time unixNano nanoseconds after the Unix
// epoch as RFC 3339 ("2006-01-02T15:04:05.000000Z"): with digits (0-9)
// fractional digits, or, with trim, as time.RFC3339Nano does (up to 9
// digits, trailing zeros and an empty fraction dropped). It gives the same
// bytes as time.Time.AppendFormat with the matching layout, with integer
// arithmetic only: formatters call it for every record, and in a Wasm
// plugin each function call of the general formatter is dear.
func AppendTime(b []byte, unixNano int64, digits int, trim bool) []byte {
	return (*TimeCache)(nil).Append(b, unixNano, digits, trim)
}

// splitTime splits unixNano into whole seconds and nanoseconds, the
// latter never negative, and reports whether the fast path applies: a
// year 0-9999 and 0-9 digits.
func splitTime(unixNano int64, digits int) (secs, ns int64, ok bool) {
	secs, ns = unixNano/1e9, unixNano%1e9
	if ns < 0 {
		secs, ns = secs-1, ns+1e9
	}
	return secs, ns, secs >= minSecs && secs <= maxSecs && digits >= 0 && digits <= 9
}

// The seconds of 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
const (
	minSecs = -62167219200
	maxSecs = 253402300799
)

func appendTimeGeneral(b []byte, unixNano int64, digits int, trim bool) []byte {
	layout := "2006-01-02T15:04:05.000000000Z"[:20+min(max(digits, 0), 9)] + "Z"
	if digits == 0 {
		layout = "2006-01-02T15:04:05Z"
	}
	if trim {
		layout = time.RFC3339Nano
	}
	return time.Unix(0, unixNano).UTC().AppendFormat(b, layout)
}

// appendDateTime appends "2006-01-02T15:04:05" for secs in
// [minSecs, maxSecs].
func appendDateTime(b []byte, secs int64) []byte {
	days, sod := secs/86400, secs%86400
	if sod < 0 {
		days, sod = days-1, sod+86400
	}
	y, m, d := civil(days)
	return append(b,
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+m/10), byte('0'+m%10), '-',
		byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+sod/36000), byte('0'+sod/3600%10), ':',
		byte('0'+sod%3600/600), byte('0'+sod%3600/60%10), ':',
		byte('0'+sod%60/10), byte('0'+sod%10))
}

// appendFraction appends the fraction and the zone: digits (0-9) digits
// of ns, or with trim as time.RFC3339Nano does. The nine digits are
// worked out in an array and appended at once, not a byte at a time,
// which was slower in Wasm (BENCHMARKS.md).
func appendFraction(b []byte, ns int64, digits int, trim bool) []byte {
	var d [9]byte
	n := uint32(ns)
	for i := 8; i >= 0; i-- {
		d[i] = byte('0' + n%10)
		n /= 10
	}
	if trim {
		digits = 9
		for digits > 0 && d[digits-1] == '0' {
			digits--
		}
	}
	if digits > 0 {
		b = append(b, '.')
		b = append(b, d[:digits]...)
	}
	return append(b, 'Z')
}

// TimeCache formats times as AppendTime does, remembering the date and
// time of day of the last few seconds it formatted: the records of a
// batch mostly fall within a few seconds, and working out the calendar
// date was a visible part of a formatter's time in Wasm (BENCHMARKS.md).
// The zero value
// is ready to use; a nil *TimeCache formats without remembering. It is
// not safe for concurrent use (a plugin instance is never called
// concurrently).
type TimeCache struct {
	slots [4]struct {
		secs int64
		ok   bool
		text [19]byte // "2006-01-02T15:04:05"
	}
}

// Append appends the time as AppendTime(b, unixNano, digits, trim) does.
func (c *TimeCache) Append(b []byte, unixNano int64, digits int, trim bool) []byte {
	secs, ns, ok := splitTime(unixNano, digits)
	switch {
	case !ok:
		return appendTimeGeneral(b, unixNano, digits, trim)
	case c == nil:
		return appendFraction(appendDateTime(b, secs), ns, digits, trim)
	}
	s := &c.slots[secs&3]
	if !s.ok || s.secs != secs {
		appendDateTime(s.text[:0], secs) // 19 bytes for the years 0-9999: in place
		s.secs, s.ok = secs, true
	}
	b = append(b, s.text[:]...)
	return appendFraction(b, ns, digits, trim)
}

// civil converts days since 1970-01-01 to a proleptic Gregorian date
// (Howard Hinnant's days_from_civil, inverted).
func civil(days int64) (y, m, d int64) {
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	m = mp + 3
	if mp >= 10 {
		m = mp - 9
	}
	y = yoe + era*400
	if m <= 2 {
		y++
	}
	return y, m, d
}
