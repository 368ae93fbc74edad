// Command batchfile is an example transport plugin, written as a user
// would write one: only the public plugin SDK. It writes every batch to a
// new file in a directory (for a shipper that picks up whole files) and
// syncs it before acknowledging, so a batch the host forgot is on disk.
//
//	transport "spool" {
//	  plugin = "examples/batchfile/batchfile.wasm"
//	  format = "safe"
//	  config { dir = "spool" }
//	  allow  { directories = ["spool"] }
//	}
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o batchfile.wasm .
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/logtk/logtk/sdk/plugin"
)

// BatchFile writes one file per batch.
type BatchFile struct {
	dir string
	n   int
}

var (
	_ plugin.Transport  = (*BatchFile)(nil)
	_ plugin.Configurer = (*BatchFile)(nil)
)

// Configure implements plugin.Configurer.
func (t *BatchFile) Configure(config []byte) error {
	var c struct {
		Dir string `json:"dir"`
	}
	if err := plugin.DecodeConfig(config, &c); err != nil {
		return err
	}
	if c.Dir == "" {
		return errors.New("dir is required")
	}
	t.dir = c.Dir
	return nil
}

// Open implements plugin.Transport: it continues the numbering of files
// already in the directory, so a restarted host does not overwrite them.
func (t *BatchFile) Open() error {
	entries, err := os.ReadDir(t.dir)
	if err != nil {
		return fmt.Errorf("reading %s (is it granted in allow { directories }?): %w", t.dir, err)
	}
	for _, e := range entries {
		var n int
		if _, err := fmt.Sscanf(e.Name(), "batch-%09d.log", &n); err == nil && n > t.n {
			t.n = n
		}
	}
	return nil
}

// Write implements plugin.Transport.
func (t *BatchFile) Write(b *plugin.Batch) error {
	if b.Len() == 0 {
		return nil
	}
	t.n++
	name := filepath.Join(t.dir, fmt.Sprintf("batch-%09d.log", t.n))
	f, err := os.OpenFile(name+".tmp", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return plugin.Retry(err)
	}
	var werr error
	b.Each(func(e []byte) bool {
		_, werr = f.Write(e)
		return werr == nil
	})
	if werr == nil {
		werr = f.Sync()
	}
	if err := errors.Join(werr, f.Close()); err != nil {
		os.Remove(name + ".tmp")
		t.n--
		return plugin.Retry(err)
	}
	// The rename publishes the whole batch at once.
	if err := os.Rename(name+".tmp", name); err != nil {
		return plugin.Retry(err)
	}
	return nil
}

// Flush implements plugin.Transport; every Write is already durable.
func (t *BatchFile) Flush() error { return nil }

// Close implements plugin.Transport.
func (t *BatchFile) Close() error { return nil }

func init() {
	plugin.RegisterTransport(plugin.Info{
		Name:    "batchfile",
		Version: "1.0.0",
		Config:  []plugin.Field{{Name: "dir", Type: plugin.TypePath, Required: true, Doc: "directory for the batch files; grant it in allow { directories }"}},
	}, &BatchFile{})
}

func main() {}
