// Package capture turns what a worker writes to stdout and stderr into
// records: lines (with the level a prefix names, see LevelPrefix), JSON
// lines parsed as structured records, and crash reports (a Go panic and its
// goroutine trace, a Python traceback) kept whole as one block (see
// Splitter).
package capture

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"time"
)

// Lines reads r to its end and calls fn for every line, without its line
// terminator ("\n" or "\r\n"). A line longer than max bytes is delivered in
// pieces of max bytes: part counts from 0 and last is false on all but the
// final piece. A final line without a newline is delivered too. Lines
// returns nil at EOF, or the read error.
func Lines(r io.Reader, max int, fn func(line []byte, part int, last bool)) error {
	return readLines(r, max, fn, nil)
}

// quietWatch asks readLines to report quiet spells of its stream.
type quietWatch struct {
	after  time.Duration // how long without anything to read is a quiet spell
	wanted func() bool   // asked before each read: whether to watch now
	quiet  func()        // called when a watched spell passes between lines
}

// deadliner is a reader whose reads can be given a deadline, as an
// *os.File of a pipe can.
type deadliner interface {
	SetReadDeadline(t time.Time) error
}

// readLines is Lines. With w, and r a deadliner, it also calls w.quiet
// when w.wanted and r has had nothing to read for w.after since the last
// piece, with no line begun and not finished, and still has nothing (not
// even its end) when the time is up; then it reads on. A reader that
// cannot take deadlines is read without watching.
func readLines(r io.Reader, max int, fn func(line []byte, part int, last bool), w *quietWatch) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var dl deadliner
	if w != nil && w.after > 0 {
		dl, _ = r.(deadliner)
	}
	armed := false // a read deadline is set
	var acc []byte
	part := 0
	for {
		if dl != nil {
			if w.wanted() {
				if err := dl.SetReadDeadline(time.Now().Add(w.after)); err != nil {
					dl = nil // no deadlines on this reader (a regular file)
				} else {
					armed = true
				}
			} else if armed {
				dl.SetReadDeadline(time.Time{})
				armed = false
			}
		}
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			complete := chunk[len(chunk)-1] == '\n'
			if complete {
				chunk = chunk[:len(chunk)-1]
			}
			if len(acc) == 0 && complete && len(chunk) <= max {
				fn(trimCR(chunk), part, true)
				part = 0
			} else {
				acc = append(acc, chunk...)
				for len(acc) > max {
					fn(acc[:max], part, false)
					part++
					acc = append(acc[:0], acc[max:]...)
				}
				if complete {
					fn(trimCR(acc), part, true)
					acc, part = acc[:0], 0
				}
			}
		}
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if armed && errors.Is(err, os.ErrDeadlineExceeded) {
				// Quiet, between lines, and truly: the deadline may
				// have passed while data or the end of the stream was
				// already waiting (a reader slow to run), which is
				// not quiet. Inside a line the line is not over yet.
				if len(acc) == 0 && part == 0 && !readable(r) {
					w.quiet()
				}
				continue
			}
			if len(acc) > 0 || part > 0 {
				fn(trimCR(acc), part, true)
			}
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

func trimCR(b []byte) []byte {
	return bytes.TrimSuffix(b, []byte{'\r'})
}

// crashStarts are line prefixes that begin a crash report (see Splitter):
// Go's panic and fatal error, and Python's traceback.
var crashStarts = [][]byte{
	[]byte("panic: "),
	[]byte("fatal error: "),
	[]byte("Traceback (most recent call last):"),
}

// IsCrashStart reports whether line begins a crash report.
func IsCrashStart(line []byte) bool {
	for _, p := range crashStarts {
		if bytes.HasPrefix(line, p) {
			return true
		}
	}
	return false
}
