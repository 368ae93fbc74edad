// Package console is the reference console transport: it writes each
// batch to the process's standard output or standard error in one write.
// The host gives the plugin its real stdout/stderr only when
// plugins.hcl grants them (allow { stdout = true }). See README.md.
package console

import (
	"fmt"
	"io"
	"os"

	"github.com/logtk/logtk/sdk/plugin"
)

// Info describes the plugin.
var Info = plugin.Info{
	Name:    "console",
	Version: "1.0.0",
	Config: []plugin.Field{
		{Name: "stream", Type: plugin.TypeString, Doc: `"stdout" (default) or "stderr"`},
	},
}

// Transport writes to a console stream.
type Transport struct {
	w   io.Writer
	buf []byte
}

// New returns a Transport writing to standard output.
func New() *Transport { return &Transport{w: os.Stdout} }

// NewWriter returns a Transport writing to w (for native tests).
func NewWriter(w io.Writer) *Transport { return &Transport{w: w} }

var _ plugin.Transport = (*Transport)(nil)
var _ plugin.Configurer = (*Transport)(nil)

// Configure implements plugin.Configurer.
func (t *Transport) Configure(config []byte) error {
	var c struct {
		Stream string `json:"stream"`
	}
	if err := plugin.DecodeConfig(config, &c); err != nil {
		return err
	}
	switch c.Stream {
	case "", "stdout":
		t.w = os.Stdout
	case "stderr":
		t.w = os.Stderr
	default:
		return fmt.Errorf("unknown stream %q (want \"stdout\" or \"stderr\")", c.Stream)
	}
	return nil
}

// Open implements plugin.Transport.
func (t *Transport) Open() error { return nil }

// Write implements plugin.Transport: the batch goes out in one write.
func (t *Transport) Write(b *plugin.Batch) error {
	t.buf = t.buf[:0]
	b.Each(func(e []byte) bool {
		t.buf = append(t.buf, e...)
		return true
	})
	if _, err := t.w.Write(t.buf); err != nil {
		return plugin.Retry(err)
	}
	return nil
}

// Flush implements plugin.Transport.
func (t *Transport) Flush() error { return nil }

// Close implements plugin.Transport.
func (t *Transport) Close() error { return nil }
