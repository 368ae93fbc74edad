package capture

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Crash reports as runtimes print them.
const (
	goPanic = "panic: boom\n" +
		"\n" +
		"goroutine 1 [running]:\n" +
		"main.main()\n" +
		"\t/src/main.go:5 +0x25\n"
	goRecovered = "panic: boom [recovered]\n" +
		"\tpanic: boom\n" +
		"\n" +
		"goroutine 7 [running]:\n" +
		"main.handle.func1()\n" +
		"\t/src/main.go:12 +0x1d\n" +
		"panic({0x4b3e00?, 0x4ef8b0?})\n" +
		"\t/usr/lib/go/src/runtime/panic.go:785 +0x132\n" +
		"net/http.(*conn).serve(0xc000166000, {0x8c2f70, 0xc00007e0f0})\n" +
		"\t/usr/lib/go/src/net/http/server.go:2092 +0x5d0\n" +
		"main.handle(...)\n" +
		"\t/src/main.go:15\n" +
		"...additional frames elided...\n" +
		"created by main.main in goroutine 1\n" +
		"\t/src/main.go:20 +0x25\n"
	goAll = "panic: runtime error: invalid memory address or nil pointer dereference\n" +
		"[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x47e1c5]\n" +
		"\n" +
		"goroutine 1 gp=0xc000002380 m=0 mp=0x5602a0 [running]:\n" +
		"main.main()\n" +
		"\t/src/main.go:5 +0x25 fp=0xc000090f50 sp=0xc000090f38 pc=0x47e1c5\n" +
		"\n" +
		"goroutine 2 gp=0xc000002e00 m=nil [force gc (idle), 2 minutes]:\n" +
		"runtime.gopark(0x0?, 0x0?, 0x0?, 0x0?, 0x0?)\n" +
		"\t/usr/lib/go/src/runtime/proc.go:424 +0xce\n" +
		"created by runtime.init.7 in goroutine 1\n" +
		"\t/usr/lib/go/src/runtime/proc.go:336 +0x1a\n" +
		"\n" +
		"goroutine 5 [running]:\n" +
		"\tgoroutine running on other thread; stack unavailable\n" +
		"\n" +
		"rax    0x0\n" +
		"rip    0x47e1c5\n"
	goFatal = "fatal error: concurrent map writes\n" +
		"\n" +
		"runtime stack:\n" +
		"runtime.throw({0x49a1b7?, 0x0?})\n" +
		"\t/usr/lib/go/src/runtime/panic.go:1023 +0x5c\n" +
		"\n" +
		"goroutine 6 [running]:\n" +
		"main.writer(...)\n" +
		"\t/src/main.go:9\n"
	pyTrace = "Traceback (most recent call last):\n" +
		"  File \"/srv/app.py\", line 12, in handle\n" +
		"    return 1 / 0\n" +
		"           ~~^~~\n" +
		"ZeroDivisionError: division by zero\n"
	pyChained = pyTrace +
		"\n" +
		"During handling of the above exception, another exception occurred:\n" +
		"\n" +
		"Traceback (most recent call last):\n" +
		"  File \"/srv/app.py\", line 14, in handle\n" +
		"    raise RuntimeError(\"handler failed\") from e\n" +
		"RuntimeError: handler failed\n" +
		"\n" +
		"The above exception was the direct cause of the following exception:\n" +
		"\n" +
		"Traceback (most recent call last):\n" +
		"  File \"/srv/app.py\", line 20, in main\n" +
		"KeyboardInterrupt\n"
)

// events records what a Splitter delivers, one string per event.
type events []string

func (e *events) splitter(limit int) *Splitter {
	return &Splitter{
		Limit: limit,
		Line: func(line []byte, part int, last bool) {
			if part > 0 || !last {
				*e = append(*e, fmt.Sprintf("line %d %v: %s", part, last, line))
				return
			}
			*e = append(*e, "line: "+string(line))
		},
		Report: func(r Report) { *e = append(*e, reportEvent("report", r)) },
	}
}

var endings = map[Ending]string{EndLine: "line", EndQuiet: "quiet", EndStream: "stream"}

func reportEvent(kind string, r Report) string {
	if r.More {
		return fmt.Sprintf("%s part %d (more) %q: %s", kind, r.Part, r.Summary, r.Text)
	}
	return fmt.Sprintf("%s part %d ended by %s %q: %s", kind, r.Part, endings[r.Ended], r.Summary, r.Text)
}

func trim(s string) string { return strings.TrimSuffix(s, "\n") }

func TestSplitter(t *testing.T) {
	tests := []struct {
		name string
		// chunks are fed in turn, with Idle between them; then End.
		chunks []string
		max    int // Lines' max; default 1 MiB
		limit  int
		want   []string
	}{
		{name: "ordinary lines", chunks: []string{"a\n\nb\n"},
			want: []string{"line: a", "line: ", "line: b"}},
		{name: "not a start", chunks: []string{"a panic: in the middle\ngoroutine 1 [running]:\n"},
			want: []string{"line: a panic: in the middle", "line: goroutine 1 [running]:"}},
		{name: "go panic to the end", chunks: []string{"before\n" + goPanic},
			want: []string{"line: before", `end part 0 ended by stream "panic: boom": ` + trim(goPanic)}},
		{name: "go recovered panic, then a log line", chunks: []string{goRecovered + "2024/12/06 10:00:00 still serving\n"},
			want: []string{`report part 0 ended by line "panic: boom [recovered]": ` + trim(goRecovered), "line: 2024/12/06 10:00:00 still serving"}},
		{name: "go trace, blank line, then a line", chunks: []string{goPanic + "\n\nlistening\n"},
			want: []string{`report part 0 ended by line "panic: boom": ` + trim(goPanic), "line: ", "line: ", "line: listening"}},
		{name: "go all goroutines and registers", chunks: []string{goAll},
			want: []string{`end part 0 ended by stream "panic: runtime error: invalid memory address or nil pointer dereference": ` + trim(goAll)}},
		{name: "go fatal error with runtime stack", chunks: []string{goFatal + "next\n"},
			want: []string{`report part 0 ended by line "fatal error: concurrent map writes": ` + trim(goFatal), "line: next"}},
		{name: "go panic line alone, then a line", chunks: []string{"panic: x\nnext\n"},
			want: []string{`report part 0 ended by line "panic: x": panic: x`, "line: next"}},
		{name: "python to the end", chunks: []string{"ERROR:root:failed\n" + pyTrace},
			want: []string{"line: ERROR:root:failed", `end part 0 ended by stream "ZeroDivisionError: division by zero": ` + trim(pyTrace)}},
		{name: "python, then a line", chunks: []string{pyTrace + "INFO:root:next\n"},
			want: []string{`report part 0 ended by line "ZeroDivisionError: division by zero": ` + trim(pyTrace), "line: INFO:root:next"}},
		{name: "python chain: the last exception is the summary", chunks: []string{pyChained + "after\n"},
			want: []string{`report part 0 ended by line "KeyboardInterrupt": ` + trim(pyChained), "line: after"}},
		{name: "python, blank line, not a chain", chunks: []string{pyTrace + "\nafter\n"},
			want: []string{`report part 0 ended by line "ZeroDivisionError: division by zero": ` + trim(pyTrace), "line: ", "line: after"}},
		{name: "python chain link without the blank line", chunks: []string{pyTrace + "During handling of the above exception, another exception occurred:\n"},
			want: []string{`report part 0 ended by line "ZeroDivisionError: division by zero": ` + trim(pyTrace), "line: During handling of the above exception, another exception occurred:"}},
		{name: "two tracebacks in a row", chunks: []string{pyTrace + pyTrace},
			want: []string{`report part 0 ended by line "ZeroDivisionError: division by zero": ` + trim(pyTrace),
				`end part 0 ended by stream "ZeroDivisionError: division by zero": ` + trim(pyTrace)}},
		{name: "python cut short by a blank line", chunks: []string{"Traceback (most recent call last):\n  File \"x.py\", line 1\n\nnext\n"},
			want: []string{`report part 0 ended by line "Traceback (most recent call last):": Traceback (most recent call last):` + "\n" + `  File "x.py", line 1`, "line: ", "line: next"}},
		{name: "quiet ends a python report", chunks: []string{pyTrace, "next\n"},
			want: []string{`report part 0 ended by quiet "ZeroDivisionError: division by zero": ` + trim(pyTrace), "line: next"}},
		{name: "quiet ends a go report; held blank lines follow it", chunks: []string{goPanic + "\n", "goroutine 2 [idle]:\n"},
			want: []string{`report part 0 ended by quiet "panic: boom": ` + trim(goPanic), "line: ", "line: goroutine 2 [idle]:"}},
		{name: "quiet without a report", chunks: []string{"a\n", "b\n"},
			want: []string{"line: a", "line: b"}},
		{name: "long lines in pieces", max: 8, chunks: []string{"0123456789ab\npanic: 0123456789\n\tx\nafter line\n"},
			want: []string{"line 0 false: 01234567", "line 1 true: 89ab",
				`report part 0 ended by line "panic: 0": panic: 0123456789` + "\n\tx",
				"line 0 false: after li", "line 1 true: ne"}},
		{name: "a report that outgrows its limit", limit: 30, chunks: []string{goPanic},
			want: []string{`report part 0 (more) "panic: boom": panic: boom` + "\n\ngoroutine 1 [running]:\n",
				`end part 1 ended by stream "panic: boom": main.main()` + "\n\t/src/main.go:5 +0x25"}},
		{name: "invalid UTF-8 is replaced", chunks: []string{"panic: caf\xe9\n"},
			want: []string{"end part 0 ended by stream \"panic: caf\uFFFD\": panic: caf\uFFFD"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got events
			s := got.splitter(tc.limit)
			max := tc.max
			if max == 0 {
				max = 1 << 20
			}
			for i, c := range tc.chunks {
				if i > 0 {
					s.Idle()
				}
				if err := Lines(strings.NewReader(c), max, s.Feed); err != nil {
					t.Fatal(err)
				}
			}
			if r, ok := s.End(); ok {
				got = append(got, reportEvent("end", r))
			}
			if s.Open() {
				t.Error("a report is open after End")
			}
			if strings.Join(got, "\n---\n") != strings.Join(tc.want, "\n---\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n---\n"), strings.Join(tc.want, "\n---\n"))
			}
		})
	}
}

// TestLastWords: a report that ended by a quiet spell is the last words
// until a line other than a blank one follows it.
func TestLastWords(t *testing.T) {
	var ev events
	s := ev.splitter(0)
	feed := func(text string) {
		if err := Lines(strings.NewReader(text), 1<<20, s.Feed); err != nil {
			t.Fatal(err)
		}
	}
	feed(pyTrace)
	if _, ok := s.LastWords(); ok {
		t.Fatal("last words before the report ended")
	}
	s.Idle()
	feed("\n")
	if r, ok := s.LastWords(); !ok || r.Summary != "ZeroDivisionError: division by zero" || r.Ended != EndQuiet {
		t.Fatalf("LastWords after a quiet end and a blank line: %v %+v", ok, r)
	}
	feed("next\n")
	if _, ok := s.LastWords(); ok {
		t.Fatal("still the last words after a line followed")
	}
	feed(pyTrace + "next\n") // ended by a line: never the last words
	s.Idle()
	if _, ok := s.LastWords(); ok {
		t.Fatal("a report ended by a line counts as last words")
	}
}

// TestSplitterRead: over a pipe, a report ends when the stream has been
// quiet, while the writer keeps it open, and the lines after it are lines
// again; a report open when the stream ends is returned.
func TestSplitterRead(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	got := make(chan string, 16)
	s := &Splitter{
		Quiet:  50 * time.Millisecond,
		Line:   func(line []byte, part int, last bool) { got <- "line: " + string(line) },
		Report: func(r Report) { got <- reportEvent("report", r) },
	}
	type result struct {
		r    Report
		open bool
		err  error
	}
	done := make(chan result, 1)
	go func() {
		r, open, err := s.Read(pr, 1<<20)
		done <- result{r, open, err}
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case g := <-got:
			if g != want {
				t.Fatalf("got %q, want %q", g, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("nothing after 10s; want %q", want)
		}
	}
	write := func(s string) {
		t.Helper()
		pw.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := pw.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	write("before\n" + pyTrace)
	expect("line: before")
	expect(`report part 0 ended by quiet "ZeroDivisionError: division by zero": ` + trim(pyTrace))
	write("after\n")
	expect("line: after")
	write(goPanic)
	pw.Close()
	select {
	case res := <-done:
		if res.err != nil || !res.open || res.r.Text != trim(goPanic) || res.r.Ended != EndStream {
			t.Fatalf("Read returned %+v", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read did not return after the stream ended")
	}
	if len(got) > 0 {
		t.Fatalf("unexpected %q", <-got)
	}
}

// FuzzSplitter: whatever a worker prints, the splitter neither panics nor
// loses, duplicates or reorders a byte (ordinary lines and reports, in
// order, are the lines fed), a report's text and summary are UTF-8, and
// LevelPrefix reads every line.
func FuzzSplitter(f *testing.F) {
	for _, s := range []string{goPanic, goRecovered + "next\n", goAll, goFatal, pyTrace + "\nx\n", pyChained, "a\n\nb"} {
		f.Add([]byte(s), uint8(0), uint8(200))
		f.Add([]byte(s), uint8(3), uint8(7))
	}
	f.Add([]byte("I1206 10:00:00.000000 1 x.go:1] m\n[warn] x\nlevel=\"info\" y\n2024/12/06 10:00:00 INFO z\n"), uint8(1), uint8(255))
	f.Fuzz(func(t *testing.T, data []byte, idleEvery, maxLine uint8) {
		max := int(maxLine)%64 + 1
		ascii := bytes.Map(func(r rune) rune {
			if r >= 0x80 {
				return '?'
			}
			return r
		}, data)
		for _, in := range [][]byte{data, ascii} {
			var want, got bytes.Buffer
			Lines(bytes.NewReader(in), max, func(line []byte, part int, last bool) {
				want.Write(line)
				if last {
					want.WriteByte('\n')
				}
			})
			check := func(r Report) {
				if !utf8.ValidString(r.Text) || !utf8.ValidString(r.Summary) {
					t.Fatalf("report not UTF-8: %q %q", r.Summary, r.Text)
				}
				got.WriteString(r.Text)
				if !r.More {
					got.WriteByte('\n')
				}
			}
			s := &Splitter{
				Limit: 4 * max,
				Line: func(line []byte, part int, last bool) {
					got.Write(line)
					if last {
						got.WriteByte('\n')
					}
				},
				Report: check,
			}
			n := 0
			Lines(bytes.NewReader(in), max, func(line []byte, part int, last bool) {
				LevelPrefix(line)
				s.Feed(line, part, last)
				if n++; last && idleEvery > 0 && n%int(idleEvery) == 0 {
					s.Idle()
				}
			})
			// End returns the report after the blank lines held after it.
			before := got.Len()
			if r, ok := s.End(); ok {
				held := append([]byte(nil), got.Bytes()[before:]...)
				got.Truncate(before)
				check(r)
				got.Write(held)
			}
			if utf8.Valid(in) && !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Fatalf("splitter output differs from its input\ngot:  %q\nwant: %q", got.Bytes(), want.Bytes())
			}
		}
	})
}

// BenchmarkSplitterLines: the cost per ordinary line (no report open).
func BenchmarkSplitterLines(b *testing.B) {
	s := &Splitter{Line: func([]byte, int, bool) {}, Report: func(Report) {}}
	line := []byte(`127.0.0.1 - - [06/Dec/2024 10:00:00] "GET /index.html HTTP/1.1" 200 -`)
	b.ReportAllocs()
	for b.Loop() {
		s.Feed(line, 0, true)
	}
}

// TestReadable: quiet is declared only when a pipe has nothing pending,
// not even its end.
func TestReadable(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	if readable(pr) {
		t.Fatal("an empty pipe is readable")
	}
	pw.WriteString("x")
	if !readable(pr) {
		t.Fatal("a pipe with data is not readable")
	}
	buf := make([]byte, 1)
	pr.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := pr.Read(buf); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if !readable(pr) {
		t.Fatal("a pipe whose writer is gone is not readable")
	}
	if readable(strings.NewReader("x")) {
		t.Fatal("a reader that is not a file is readable")
	}
}
