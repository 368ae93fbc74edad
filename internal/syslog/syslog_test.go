package syslog

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/record"
)

var now = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func TestParse5424(t *testing.T) {
	in := `<165>1 2026-12-06T10:45:12.123456Z web-1 shop 4242 ID47 [exampleSDID@32473 iut="3" eventSource="App\"lication"][meta x="]"] an \xef\xbb\xbfapplication event`
	m, err := Parse([]byte(strings.ReplaceAll(in, `\xef\xbb\xbf`, "\xef\xbb\xbf")), now, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if m.Facility != 20 || m.Severity != 5 || string(m.Hostname) != "web-1" || string(m.AppName) != "shop" || string(m.ProcID) != "4242" || string(m.MsgID) != "ID47" {
		t.Fatalf("header %+v", m)
	}
	if !m.Time.Equal(time.Date(2026, 12, 6, 10, 45, 12, 123456000, time.UTC)) {
		t.Fatalf("time %v", m.Time)
	}
	if len(m.Data) != 2 || string(m.Data[0].ID) != "exampleSDID@32473" || string(m.Data[0].Params[1].Value) != `App"lication` || string(m.Data[1].Params[0].Value) != "]" {
		t.Fatalf("structured data %+v", m.Data)
	}
	if string(m.Msg) != "an \xef\xbb\xbfapplication event" && string(m.Msg) != "an application event" {
		t.Fatalf("msg %q", m.Msg)
	}
	m, err = Parse([]byte(`<34>1 - - - - - -`), now, time.UTC)
	if err != nil || m.Hostname != nil || m.AppName != nil || !m.Time.IsZero() || len(m.Msg) != 0 {
		t.Fatalf("all NILVALUE: %+v, %v", m, err)
	}
}

func TestParse3164(t *testing.T) {
	m, err := Parse([]byte("<13>Dec  6 11:59:58 web-1 sshd[811]: Accepted publickey for root"), now, time.UTC)
	if err != nil || !m.RFC3164 {
		t.Fatal(err)
	}
	if string(m.Hostname) != "web-1" || string(m.AppName) != "sshd" || string(m.ProcID) != "811" || string(m.Msg) != "Accepted publickey for root" {
		t.Fatalf("%+v: host %q app %q pid %q msg %q", m, m.Hostname, m.AppName, m.ProcID, m.Msg)
	}
	if !m.Time.Equal(time.Date(2026, 12, 6, 11, 59, 58, 0, time.UTC)) {
		t.Fatalf("time %v", m.Time)
	}
	// Late December read in early January is last year's.
	m, _ = Parse([]byte("<13>Dec 31 23:59:59 h app: x"), time.Date(2027, 1, 1, 0, 0, 5, 0, time.UTC), time.UTC)
	if m.Time.Year() != 2026 {
		t.Fatalf("year %d", m.Time.Year())
	}
	// logger's default local format: no hostname.
	m, _ = Parse([]byte("<13>Dec  6 11:59:58 root: hello"), now, time.UTC)
	if string(m.AppName) != "root" || string(m.Msg) != "hello" || m.Hostname != nil {
		t.Fatalf("host %q app %q msg %q", m.Hostname, m.AppName, m.Msg)
	}
}

func TestBadMessages(t *testing.T) {
	for _, in := range []string{"", "<999>1 - - - - - -", "<12", "<13>1 notatime h a p m - x", "<13>1 2026-12-06T10:45:12Z h a p m [id x=\"y] z"} {
		if _, err := Parse([]byte(in), now, time.UTC); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
	// A message that does not parse is still a record, with the reason.
	raw := []byte("<13>1 notatime h")
	_, err := Parse(raw, now, time.UTC)
	b := AppendRecord(nil, nil, raw, err, now)
	if err := irecord.Validate(b); err != nil {
		t.Fatal(err)
	}
	var r record.Record
	r.Parse(b)
	var a record.Attr
	found := false
	for it := r.Attrs(); it.Next(&a); {
		found = found || string(a.Key) == "syslog_error"
	}
	if string(r.Message) != string(raw) || !found {
		t.Fatalf("raw record %q, syslog_error %v", r.Message, found)
	}
}

func TestFraming(t *testing.T) {
	in := "12 <13>1 - - - " + "first line\n" + "5 <13>x" + strings.Repeat("y", 40) + "\n" + "30 " + strings.Repeat("z", 30) + "last"
	r := NewReader(strings.NewReader(in), 20)
	var got []string
	var errs []error
	for {
		f, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, err)
			if err != ErrTooLong {
				break
			}
			continue
		}
		got = append(got, string(f))
	}
	// 12 bytes counted; a line; an oversized line cut (its rest
	// dropped); a counted frame over the limit skipped whole; the last
	// line.
	want := []string{"<13>1 - - - ", "first line", "<13>x", "last"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("frames %q, want %q (errors %v)", got, want, errs)
	}
	if len(errs) != 2 {
		t.Fatalf("errors %v: want the long line and the long counted frame", errs)
	}
}

// TestHugeCount: a frame announcing a billion bytes does not make the
// reader allocate them.
func TestHugeCount(t *testing.T) {
	r := NewReader(strings.NewReader("1000000000 <13>x"), 64<<10)
	if _, err := r.Next(); err == nil {
		t.Fatal("a billion-byte frame was read")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`<165>1 2026-12-06T10:45:12.123456Z web-1 shop 4242 ID47 [a@1 b="c\"d"] msg`,
		"<13>Dec  6 11:59:58 web-1 sshd[811]: Accepted",
		"<34>1 - - - - - -", "plain text", "<13>Feb 29 00:00:00 h t: x",
	} {
		f.Add([]byte(s))
	}
	f.Add([]byte("<14>1 2026-12-06T10:45:12.5+05:30 h a - - - x"))
	f.Add([]byte("<14>1 2026-02-30T10:45:12Z h a - - - x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b, now, time.UTC)
		rec := AppendRecord(nil, &m, b, err, now)
		if verr := irecord.Validate(rec); verr != nil {
			t.Fatalf("%q: the record does not validate: %v", b, verr)
		}
		if want := appendRecordReference(nil, &m, b, err, now); !bytes.Equal(rec, want) {
			t.Fatalf("%q: encoded\n%x\nthe general encoder gives\n%x", b, rec, want)
		}
		// The fast timestamp reader agrees with time.Parse.
		for _, f := range bytes.Fields(b) {
			if got, ok := rfc3339(f); ok {
				want, err := time.Parse(time.RFC3339Nano, string(f))
				if err != nil || !got.Equal(want) {
					t.Fatalf("%q: read as %v, time.Parse gives %v (%v)", f, got, want, err)
				}
			}
		}
	})
}

// appendRecordReference is AppendRecord written with the general
// encoder: the fast one must give the same bytes.
func appendRecordReference(b []byte, m *Message, raw []byte, perr error, received time.Time) []byte {
	if perr != nil {
		b = irecord.AppendHead(b, received, record.LevelNotice, string(ValidUTF8(raw)), "")
		return irecord.AppendAttr(b, slog.String("syslog_error", perr.Error()))
	}
	t := m.Time
	if t.IsZero() {
		t = received
	}
	level := int32(record.LevelNotice)
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

func FuzzReader(f *testing.F) {
	f.Add([]byte("12 <13>1 - - - first\nsecond\n99999999999 x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Every frame, even an empty line or one too long, consumes at
		// least a byte: a finite input has at most len(b)+1 of them.
		r := NewReader(bytes.NewReader(b), 256)
		for i := 0; i <= len(b)+1; i++ {
			fr, err := r.Next()
			if len(fr) > 256 {
				t.Fatalf("a frame of %d bytes over the limit", len(fr))
			}
			if err != nil && err != ErrTooLong {
				return
			}
		}
		t.Fatal("no end to the frames of a finite input")
	})
}

// BenchmarkParseAppend: one 200-byte RFC 5424 message parsed and encoded
// as a record, what the syslog listener does per message.
func BenchmarkParseAppend(b *testing.B) {
	msg := []byte("<134>1 2026-11-27T08:00:00.000000Z web-01 shop 4242 - - ")
	for len(msg) < 199 {
		msg = append(msg, 'x')
	}
	var rec []byte
	b.ReportAllocs()
	for b.Loop() {
		m, err := Parse(msg, now, time.UTC)
		rec = AppendRecord(rec[:0], &m, msg, err, now)
	}
}

// TestFramingEdges: an octet-counted message far over the limit is
// skipped whole and the next one read (it lost the framing when its count
// had more digits than the limit); a message of exactly the limit before
// its newline (or CRLF) is whole; a line that starts with a digit but no
// count ("2026-12-06 ...") is a line, not the end of the stream.
func TestFramingEdges(t *testing.T) {
	big := strings.Repeat("y", 5000)
	exact := strings.Repeat("e", 480)
	in := "5000 " + big + "9 <14>after" + exact + "\n" + exact + "\r\n" + "2026-12-06 10:00 no PRI\n" + "12345678901 eleven digits\n"
	r := NewReader(strings.NewReader(in), 480)
	var got []string
	var errs []error
	for {
		f, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, err)
			if err != ErrTooLong {
				break
			}
			continue
		}
		got = append(got, string(f))
	}
	want := []string{"<14>after", exact, exact, "2026-12-06 10:00 no PRI", "12345678901 eleven digits"}
	if strings.Join(got, "|") != strings.Join(want, "|") || len(errs) != 1 {
		t.Fatalf("frames %q, errors %v; want %q and one ErrTooLong", got, errs, want)
	}
}

// TestBSDYear: a BSD timestamp takes the latest year that puts it at
// most a week ahead of the clock, in which its date exists.
func TestBSDYear(t *testing.T) {
	clock := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]int{
		"<14>Dec  8 12:00:00 h t: x": 2026, // two days ahead
		"<14>Jan  1 00:00:00 h t: x": 2026, // 26 days ahead: last January
		"<14>Nov  1 00:00:00 h t: x": 2026,
		"<14>Jun  1 00:00:00 h t: x": 2026,
		"<14>Feb 29 00:00:00 h t: x": 2024, // the last leap year
	} {
		m, err := Parse([]byte(in), clock, time.UTC)
		if err != nil || m.Time.Year() != want || m.Time.Month() != mustMonth(in) {
			t.Errorf("%q: %v (%v), want year %d", in, m.Time, err, want)
		}
	}
}

func mustMonth(in string) time.Month {
	p, _ := time.Parse("Jan", in[4:7])
	return p.Month()
}

// A message a few seconds into the new year, on a clock still in the
// old one, is next year's.
func TestBSDNewYear(t *testing.T) {
	m, _ := Parse([]byte("<14>Jan  1 00:00:03 h t: x"), time.Date(2026, 12, 31, 23, 59, 58, 0, time.UTC), time.UTC)
	if m.Time.Year() != 2027 {
		t.Fatalf("%v", m.Time)
	}
}
