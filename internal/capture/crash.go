package capture

import (
	"bytes"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultQuiet is how long a crash report may go without a new line before
// Splitter.Read ends it: long enough for a dying runtime to print a trace
// line by line, short enough that a worker that survived its traceback has
// it delivered promptly.
const DefaultQuiet = 300 * time.Millisecond

// Report is a crash report: a Go panic or fatal error with its goroutine
// trace, or a Python traceback (with the exceptions chained to it), as the
// worker printed it.
type Report struct {
	// Text is the report's lines joined by "\n", without a final newline.
	// It never ends with a blank line: blank lines after a report are
	// ordinary lines. It is valid UTF-8 (other bytes become U+FFFD).
	Text string
	// Summary is the line that says what went wrong: Go's first line
	// ("panic: ...", "fatal error: ..."), or the exception line of a
	// Python traceback ("ZeroDivisionError: division by zero"), the last
	// one of a chain; the first line while there is none yet.
	Summary string
	// Part counts the pieces of a report that outgrew Splitter.Limit,
	// from 0; More is true on all but its last piece. A piece with More
	// holds whole pieces of lines, as Feed got them, newlines included;
	// the last piece is never empty.
	Part int
	More bool
	// Ended says how the report ended (meaningless when More is set).
	Ended Ending
}

// Ending is how a crash report ended.
type Ending uint8

const (
	// EndLine: a line that is not part of it followed.
	EndLine Ending = iota
	// EndQuiet: the stream went quiet (Splitter.Idle).
	EndQuiet
	// EndStream: the stream ended (Splitter.End).
	EndStream
)

// reportState is where a Splitter is in the grammar of a crash report.
type reportState uint8

const (
	noReport    reportState = iota
	goHead                  // after "panic: " or "fatal error: " (and its tab-indented lines)
	goGap                   // after a blank line of a Go report
	goStack                 // in the frames of a goroutine (or of "runtime stack:")
	goRegisters             // in a register dump ("rax    0x0")
	pyFrames                // in a Python traceback's indented "File" and code lines
	pyDone                  // after the exception line: a chained exception may follow
	pyChain                 // after "During handling of the above exception, ...:"
)

// Splitter separates crash reports from the ordinary lines of a stream (a
// worker's stderr). A report begins at a line IsCrashStart accepts and
// takes the lines that follow as long as they fit the report's shape:
//
//   - Go: tab-indented lines and "[...]" lines after the first line;
//     then blank lines, each followed by a goroutine header ("goroutine 7
//     [running]:"), "runtime stack:" or a register dump; in a goroutine,
//     frames: a function line ("main.f(0x1)", "created by ...",
//     "...additional frames elided...") and tab-indented file lines.
//   - Python: the indented "  File ..." and code lines, then one
//     unindented line, the exception ("ValueError: bad"); then, after a
//     blank line, "During handling of the above exception, another
//     exception occurred:" or "The above exception was the direct cause
//     of the following exception:", a blank line and the next traceback.
//
// The first line that does not fit ends the report and is an ordinary
// line (or begins the next report); so do Idle (the stream went quiet)
// and End (the stream ended). Everything fed comes out once and in order
// (but for the report End returns, which follows the blank lines held
// after it): ordinary lines through Line as they are fed (blank lines that
// might still belong to a report are held until that is decided), reports
// through Report when they end, or from End.
//
// The zero Splitter needs Line and Report set; it is not safe for
// concurrent use.
type Splitter struct {
	// Line receives the ordinary lines, as Lines delivers them.
	Line func(line []byte, part int, last bool)
	// Report receives each report that ended before the stream did, and
	// each piece (More) of a report that outgrew Limit.
	Report func(Report)
	// Limit: a report that reaches Limit bytes is delivered in pieces of
	// about Limit bytes. 0: no limit.
	Limit int
	// Quiet is how long Read lets a report go without a line before it
	// ends it (Idle). 0: DefaultQuiet; negative: never.
	Quiet time.Duration

	state   reportState
	inLine  bool // the line being fed (in pieces) belongs to the report
	held    int  // blank lines not yet known to belong to the report
	text    []byte
	summary string
	part    int
	last    *Report // the last report, if it ended by Idle and no line came after it
}

// Open reports whether a report is open: begun, not yet ended.
func (s *Splitter) Open() bool { return s.state != noReport }

// Feed takes the next piece of the stream, as Lines delivers it.
func (s *Splitter) Feed(line []byte, part int, last bool) {
	if part > 0 {
		// The rest of a long line goes where its first piece went.
		if s.inLine {
			s.add(line, last)
		} else {
			s.Line(line, part, last)
		}
		return
	}
	if len(line) > 0 {
		s.last = nil
	}
	if s.state != noReport {
		blank := last && len(line) == 0
		next, ok := s.step(line, blank)
		switch {
		case ok && blank:
			s.held++
			s.state = next
			return
		case ok:
			s.state = next
			s.inLine = true
			s.add(line, last)
			return
		}
		s.end(EndLine)
	}
	if IsCrashStart(line) {
		if bytes.HasPrefix(line, []byte("Traceback")) {
			s.state = pyFrames
		} else {
			s.state = goHead
		}
		s.summary = validString(line)
		s.inLine = true
		s.add(line, last)
		return
	}
	s.inLine = false
	s.Line(line, part, last)
}

// Idle ends the open report, if any, as the stream has gone quiet: it goes
// to Report with Ended EndQuiet.
func (s *Splitter) Idle() {
	if s.state == noReport {
		return
	}
	s.end(EndQuiet)
}

// End ends the stream. It returns the report still open, if any, with
// Ended EndStream; that one is not given to Report, and the blank lines
// held after it go to Line before End returns.
func (s *Splitter) End() (Report, bool) {
	if s.state == noReport {
		return Report{}, false
	}
	r := s.take(EndStream)
	s.flushHeld()
	return r, true
}

// LastWords returns the last report if it ended by Idle and no line but
// blank ones came after it: what a worker that went quiet and then died
// printed last.
func (s *Splitter) LastWords() (Report, bool) {
	if s.last == nil {
		return Report{}, false
	}
	return *s.last, true
}

// Read feeds s the lines of r, as Lines reads them (max is Lines' max),
// until r ends, and then returns s.End. When a report is open and r has
// had nothing to read for Quiet, it calls Idle. That needs r to take read
// deadlines, as an *os.File of a pipe does; from another reader reports
// end only at a line that is not theirs and at the end of r. The error is
// Lines'.
func (s *Splitter) Read(r io.Reader, max int) (Report, bool, error) {
	quiet := s.Quiet
	if quiet == 0 {
		quiet = DefaultQuiet
	}
	err := readLines(r, max, s.Feed, &quietWatch{after: quiet, wanted: s.Open, quiet: s.Idle})
	rep, open := s.End()
	return rep, open, err
}

// end delivers the open report to Report, then the blank lines held after
// it to Line.
func (s *Splitter) end(how Ending) {
	r := s.take(how)
	s.Report(r)
	if how == EndQuiet {
		s.last = &r
	}
	s.flushHeld()
}

// take closes the open report and returns it.
func (s *Splitter) take(how Ending) Report {
	r := Report{Text: validString(bytes.TrimSuffix(s.text, []byte{'\n'})), Summary: s.summary, Part: s.part, Ended: how}
	s.state, s.inLine, s.text, s.summary, s.part = noReport, false, s.text[:0], "", 0
	return r
}

func (s *Splitter) flushHeld() {
	for ; s.held > 0; s.held-- {
		s.Line(nil, 0, true)
	}
}

// add appends a piece of a report line, after the blank lines held
// before it. When the report has reached Limit, what it has so far goes
// out first as a piece: the last piece of a report is never empty.
func (s *Splitter) add(line []byte, last bool) {
	if s.Limit > 0 && len(s.text) >= s.Limit {
		s.Report(Report{Text: validString(s.text), Summary: s.summary, Part: s.part, More: true})
		s.part++
		s.text = s.text[:0]
	}
	for ; s.held > 0; s.held-- {
		s.text = append(s.text, '\n')
	}
	s.text = append(s.text, line...)
	if last {
		s.text = append(s.text, '\n')
	}
}

// step decides whether line (the first piece of a line; blank: an empty
// line) belongs to the open report, and the state after it.
func (s *Splitter) step(line []byte, blank bool) (reportState, bool) {
	st := s.state
	if blank {
		switch st {
		case goHead, goGap, goStack, goRegisters:
			return goGap, true
		case pyDone, pyChain:
			return st, true
		}
		return st, false // a blank line inside a Python traceback's frames
	}
	switch st {
	case goHead:
		if line[0] == '\t' || isBracketed(line) {
			return goHead, true
		}
		if isGoroutineHeader(line) {
			return goStack, true
		}
	case goGap:
		switch {
		case isGoroutineHeader(line), string(line) == "runtime stack:":
			return goStack, true
		case isRegister(line):
			return goRegisters, true
		}
	case goStack:
		if line[0] == '\t' || isFrame(line) || isGoroutineHeader(line) || isBracketed(line) {
			return goStack, true
		}
	case goRegisters:
		if isRegister(line) {
			return goRegisters, true
		}
	case pyFrames:
		if line[0] == ' ' || line[0] == '\t' {
			return pyFrames, true
		}
		s.summary = validString(line) // the exception line
		return pyDone, true
	case pyDone:
		// Only after a blank line: a chained exception's link.
		if s.held > 0 && (string(line) == "During handling of the above exception, another exception occurred:" ||
			string(line) == "The above exception was the direct cause of the following exception:") {
			return pyChain, true
		}
	case pyChain:
		if s.held > 0 && bytes.HasPrefix(line, []byte("Traceback (most recent call last):")) {
			return pyFrames, true
		}
	}
	return st, false
}

// isGoroutineHeader: "goroutine 7 [running]:", "goroutine 1 gp=0x... m=0
// [chan receive, 2 minutes]:", "goroutine running on other thread; stack
// unavailable".
func isGoroutineHeader(line []byte) bool {
	return bytes.HasPrefix(line, []byte("goroutine ")) && (line[len(line)-1] == ':' || bytes.HasSuffix(line, []byte("stack unavailable")))
}

// isFrame: a goroutine trace's function line ("main.main()",
// "net/http.(*conn).serve(0xc000166000, {0x8c2f70, 0xc00007e0f0})",
// "main.f(...)") or its companions.
func isFrame(line []byte) bool {
	if bytes.HasPrefix(line, []byte("created by ")) || bytes.HasPrefix(line, []byte("...")) {
		return true
	}
	i := bytes.IndexByte(line, '(')
	return i > 0 && line[len(line)-1] == ')' && bytes.IndexByte(line[:i], ' ') < 0
}

// isBracketed: "[signal SIGSEGV: segmentation violation ...]",
// "[originating from goroutine 1]:".
func isBracketed(line []byte) bool {
	return line[0] == '[' && (line[len(line)-1] == ']' || bytes.HasSuffix(line, []byte("]:")))
}

// isRegister: a line of a register dump, "rax    0x0", "rip    0x45f0d4".
func isRegister(line []byte) bool {
	name, value, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(name) == 0 || len(name) > 8 {
		return false
	}
	value = bytes.TrimLeft(value, " ")
	if !bytes.HasPrefix(value, []byte("0x")) || len(value) == 2 {
		return false
	}
	for _, c := range value[2:] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// validString is string(b), with bytes that are not UTF-8 replaced by
// U+FFFD.
func validString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
