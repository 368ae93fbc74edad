package host

import (
	"bufio"
	"fmt"
	"io"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/logtk/logtk/internal/textfmt"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
)

// ConsoleOutput writes records as text lines (see internal/textfmt) to a
// writer, flushing after every batch.
type ConsoleOutput struct {
	mu  sync.Mutex
	w   *bufio.Writer
	buf []byte
	rec logtkv1.Record
}

// NewConsoleOutput returns an Output that writes text to w.
func NewConsoleOutput(w io.Writer) *ConsoleOutput {
	return &ConsoleOutput{w: bufio.NewWriterSize(w, 64<<10)}
}

// WriteBatch implements Output.
func (c *ConsoleOutput) WriteBatch(records [][]byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range records {
		c.buf = appendText(c.buf[:0], r, &c.rec)
		if _, err := c.w.Write(c.buf); err != nil {
			return err
		}
	}
	return c.w.Flush()
}

// Close implements Output.
func (c *ConsoleOutput) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.Flush()
}

func appendText(b, rec []byte, scratch *logtkv1.Record) []byte {
	scratch.Reset()
	if err := proto.Unmarshal(rec, scratch); err != nil {
		return fmt.Appendf(b, "(undecodable record of %d bytes: %v)\n", len(rec), err)
	}
	return textfmt.Append(b, scratch)
}

func renderText(rec []byte) []byte {
	var r logtkv1.Record
	return appendText(nil, rec, &r)
}
