// A transport that takes every batch and acknowledges none: WriteAsync
// says each is on its way, Poll returns at once with nothing. Used to
// check that the host neither waits for it for ever nor spins on it.
package main

import (
	"time"

	"github.com/logtk/logtk/sdk/plugin"
)

type neverAck struct{}

func (neverAck) Open() error                          { return nil }
func (neverAck) Write(*plugin.Batch) error            { return nil }
func (neverAck) WriteAsync(*plugin.Batch) error       { return nil }
func (neverAck) Poll(time.Duration) ([]uint64, error) { return nil, nil }
func (neverAck) Flush() error                         { return nil }
func (neverAck) Close() error                         { return nil }

func init() {
	plugin.RegisterTransport(plugin.Info{Name: "neverack", Version: "0.0.1"}, neverAck{})
}

func main() {}
