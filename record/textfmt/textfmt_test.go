package textfmt

import (
	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/record"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestGroupKeys: nested and sibling groups get their full dotted keys, and
// rendering leaves the record's bytes as they were.
func TestGroupKeys(t *testing.T) {
	rec := irecord.AppendHead(nil, time.Time{}, record.LevelInfo, "m", "")
	rec = irecord.AppendAttr(rec, slog.Group("a",
		slog.Group("b", slog.Int("x", 1)),
		slog.Group("c", slog.Int("y", 2), slog.Group("d", slog.String("w", "two words"))),
		slog.Int("e", 4)))
	rec = irecord.AppendAttr(rec, slog.Group("f", slog.Int("g", 5)))
	rec = irecord.AppendAttr(rec, slog.Int("z", 3))
	orig := string(rec)
	got := string(AppendEncoded(nil, rec))
	want := "INFO  m a.b.x=1 a.c.y=2 a.c.d.w=\"two words\" a.e=4 f.g=5 z=3\n"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if string(rec) != orig {
		t.Fatal("rendering changed the record")
	}
}

// TestAppendTime: the same bytes as time.Time.AppendFormat, for random
// instants across and beyond years 0-9999 and the edges of days and eras,
// from AppendTime and from one TimeCache over the whole run (instants in
// the same second, in seconds that share a slot, and far apart).
func TestAppendTime(t *testing.T) {
	var tc TimeCache
	check := func(ns int64) {
		t.Helper()
		tm := time.Unix(0, ns).UTC()
		for _, c := range []struct {
			digits int
			trim   bool
			layout string
		}{
			{6, false, "2006-01-02T15:04:05.000000Z"},
			{0, false, "2006-01-02T15:04:05Z"},
			{3, false, "2006-01-02T15:04:05.000Z"},
			{9, false, "2006-01-02T15:04:05.000000000Z"},
			{0, true, time.RFC3339Nano},
		} {
			want := tm.Format(c.layout)
			if got := string(AppendTime(nil, ns, c.digits, c.trim)); got != want {
				t.Fatalf("AppendTime(%d, %d, %v) = %q, want %q", ns, c.digits, c.trim, got, want)
			}
			if got := string(tc.Append([]byte("x"), ns, c.digits, c.trim)); got != "x"+want {
				t.Fatalf("TimeCache.Append(%d, %d, %v) = %q, want %q", ns, c.digits, c.trim, got, "x"+want)
			}
		}
	}
	for _, ns := range []int64{0, -1, 1, 999_999_999, -1_000_000_000, 86_399_999_999_999, 951_782_400e9 /* 2000-02-29 */, 1 << 62, -(1 << 62), 9_223_372_036_854_775_807, -9_223_372_036_854_775_808} {
		check(ns)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100_000 {
		ns := rng.Int64() >> rng.IntN(40)
		check(ns)
		// Nearby: the same second, the next ones, a slot's other seconds.
		for _, d := range []int64{1, 1e9, 4e9, -4e9, 8e9 + 7} {
			if (d > 0 && ns <= math.MaxInt64-d) || (d < 0 && ns >= math.MinInt64-d) {
				check(ns + d)
			}
		}
	}
	var nilCache *TimeCache
	if got, want := string(nilCache.Append(nil, 1, 3, false)), "1970-01-01T00:00:00.000Z"; got != want {
		t.Fatalf("nil TimeCache: %q, want %q", got, want)
	}
}

func FuzzAppendTime(f *testing.F) {
	f.Add(int64(0))
	f.Fuzz(func(t *testing.T, ns int64) {
		want := time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
		if got := string(AppendTime(nil, ns, 0, true)); got != want {
			t.Fatalf("AppendTime(%d) = %q, want %q", ns, got, want)
		}
		// A cache holding another second in the same slot, then this one.
		var tc TimeCache
		other := ns - 4e9
		if ns < math.MinInt64+4e9 {
			other = ns + 4e9
		}
		tc.Append(nil, other, 0, true)
		for range 2 {
			if got := string(tc.Append(nil, ns, 0, true)); got != want {
				t.Fatalf("TimeCache.Append(%d) = %q, want %q", ns, got, want)
			}
		}
	})
}

// TestNeedsQuoteEveryPosition: a byte that makes a value need quotes is
// found wherever it falls in strings of 1-24 bytes.
func TestNeedsQuoteEveryPosition(t *testing.T) {
	quoted := map[string]bool{" ": true, "=": true, `"`: true, "\x7f": true, "\x00": true, "\n": true, "\xff": true, "é": false, "!": false, "~": false, `\`: false}
	for n := 1; n <= 24; n++ {
		for p := 0; p < n; p++ {
			for c, want := range quoted {
				s := strings.Repeat("a", p) + c + strings.Repeat("b", n-p-1)
				if got := needsQuote([]byte(s)); got != want {
					t.Fatalf("needsQuote(%q) = %v, want %v", s, got, want)
				}
			}
		}
	}
}

// quoteCases are strings of 0-24 bytes with each kind of byte and rune at
// every position: printable ASCII, what strconv escapes in ASCII, runes of
// two to four bytes, printable and not, and invalid or cut UTF-8.
func quoteCases() []string {
	var out []string
	kinds := []string{"a", " ", `"`, `\`, "'", "\x00", "\a", "\b", "\f", "\n", "\r", "\t", "\v", "\x1b", "\x7f",
		"é", "✓", "😀", "\u00a0", "\u200b", "\ufeff", "\U0010ffff", "\ufffd", "\xff", "\xc3", "\xe2\x9c", "\xed\xa0\x80", "\xf4\x90\x80\x80"}
	for n := 0; n <= 24; n++ {
		for p := 0; p < max(n, 1); p++ {
			for _, k := range kinds {
				out = append(out, strings.Repeat("x", p)+k+strings.Repeat("y", max(n-p-1, 0)))
			}
		}
	}
	return out
}

// TestAppendQuoted: the same bytes as strconv.AppendQuote, appended to
// what the buffer holds, whether or not it has room.
func TestAppendQuoted(t *testing.T) {
	for _, s := range quoteCases() {
		for _, c := range []int{0, 4, 200} {
			b := append(make([]byte, 0, c), "ab"...)
			got := string(appendQuoted(b, []byte(s)))
			if want := string(strconv.AppendQuote([]byte("ab"), s)); got != want {
				t.Fatalf("appendQuoted(%q) = %q, want %q", s, got, want)
			}
		}
	}
}

func FuzzAppendQuoted(f *testing.F) {
	for _, s := range quoteCases()[:200] {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(appendQuoted([]byte("ab"), []byte(s))), strconv.AppendQuote([]byte("ab"), s); got != string(want) {
			t.Fatalf("appendQuoted(%q) = %q, want %q", s, got, want)
		}
	})
}

// TestNothingForTheTerminal: what a record says reaches a terminal as
// text, never as something the terminal acts on: escape sequences,
// carriage returns, backspaces, C1 controls and bidirectional overrides
// in the message, its lines, the logger's name, the caller's file and
// values are written escaped, as strconv.Quote escapes them; tabs and
// printable text, quotes and backslashes included, stay as they are;
// so does the sender, application and worker's.
func TestNothingForTheTerminal(t *testing.T) {
	hostile := "a\x1b]0;pwned\x07b\x1b[2Jc\rd\be\x7ff\u009bg\u202eh\xff\xc2i\tj\"k\\l é ✓ \ufffd"
	rec := irecord.AppendHead(nil, time.Time{}, record.LevelInfo, hostile+"\nline 2: "+hostile, hostile)
	rec = irecord.AppendCaller(rec, hostile, 7, "f")
	for _, a := range []slog.Attr{slog.String("v", "x\u009by"), slog.String("w", "p\u202eq"), slog.String("block", "one\n"+hostile)} {
		rec = irecord.AppendAttr(rec, a)
	}
	got := string(AppendEncoded(nil, rec))
	esc := `a\x1b]0;pwned\ab\x1b[2Jc\rd\be\x7ff\u009bg\u202eh\xff\xc2i` + "\tj\"k\\l é ✓ \ufffd"
	want := "INFO  " + esc + ": " + esc + " caller=" + esc + `:7 v="x\u009by" w="p\u202eq"` + "\n" +
		"    | line 2: " + esc + "\n" +
		"    block:\n    | one\n    | " + esc + "\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	// The sender, the application and the worker come from a remote
	// record too (logtk-host logs shows stored ones); text a terminal
	// only shows (no-break spaces, joiners, any script) stays as it is.
	shown := "10\u202f000\u00a0€ 👨\u200d👩 日本\u3000語 ‐"
	rec = irecord.AppendHead(nil, time.Time{}, record.LevelInfo, shown, "")
	rec = irecord.AppendStamp(rec, &irecord.Stamp{Worker: "w\x1b]0;x\x07", WorkerIndex: 1})
	rec = irecord.AppendServerStamp(rec, "s\x1b[2J", "", "a\u202eb")
	got = string(AppendEncoded(nil, rec))
	want = `INFO  s\x1b[2J/a\u202eb w\x1b]0;x\a#1 ` + shown + "\n"
	if got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	// A CRLF line ends at its \r; a \r inside a line is escaped.
	rec = irecord.AppendHead(nil, time.Time{}, record.LevelInfo, "one\r\ntw\ro\r\n", "")
	if got, want := string(AppendEncoded(nil, rec)), "INFO  one\n    | tw\\ro\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range len(got) {
		if c := got[i]; c < ' ' && c != '\n' && c != '\t' || c == 0x7f {
			t.Fatalf("byte %#x at %d reaches the terminal", c, i)
		}
	}
}
