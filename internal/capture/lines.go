// Package capture turns what a worker writes to stdout and stderr into
// records: lines, JSON lines parsed as structured records, and crash reports
// (a Go panic and its goroutine trace) kept whole as one block.
package capture

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// Lines reads r to its end and calls fn for every line, without its line
// terminator ("\n" or "\r\n"). A line longer than max bytes is delivered in
// pieces of max bytes: part counts from 0 and last is false on all but the
// final piece. A final line without a newline is delivered too. Lines
// returns nil at EOF, or the read error.
func Lines(r io.Reader, max int, fn func(line []byte, part int, last bool)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var acc []byte
	part := 0
	for {
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

// crashStarts are line prefixes that begin a crash report which runs to the
// end of the stream: Go's panic and fatal error, and Python's traceback.
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
