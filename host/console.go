package host

import (
	"bufio"
	"io"
	"sync"

	"github.com/logtk/logtk/record/textfmt"
)

// ConsoleOutput writes records as text lines (see record/textfmt) to a
// writer, flushing after every batch.
type ConsoleOutput struct {
	mu  sync.Mutex
	w   *bufio.Writer
	buf []byte
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
		c.buf = textfmt.AppendEncoded(c.buf[:0], r)
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

func renderText(rec []byte) []byte { return textfmt.AppendEncoded(nil, rec) }
