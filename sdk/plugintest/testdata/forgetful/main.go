// A transport that says it keeps marks and keeps them only in memory: a
// new instance names nothing its predecessor wrote.
package main

import "github.com/logtk/logtk/sdk/plugin"

type forgetful struct{ held []plugin.Mark }

func (f *forgetful) Open() error                   { return nil }
func (f *forgetful) Flush() error                  { return nil }
func (f *forgetful) Close() error                  { return nil }
func (f *forgetful) Marks() ([]plugin.Mark, error) { return f.held, nil }
func (f *forgetful) Write(b *plugin.Batch) error {
	f.held = plugin.MergeMarks(f.held, b.Marks())
	return nil
}

func init() { plugin.RegisterTransport(plugin.Info{Name: "forgetful", Version: "0"}, &forgetful{}) }

func main() {}
