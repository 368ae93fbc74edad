package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/logtk/logtk/sdk/plugintest"
)

func TestConformance(t *testing.T) {
	dir := t.TempDir()
	plugintest.TestTransport(t, plugintest.Build(t, "."), plugintest.Options{Config: `{"dir":"` + dir + `"}`, Dirs: []string{dir}})
	files, _ := filepath.Glob(filepath.Join(dir, "batch-*.log"))
	if len(files) != 101 { // the sample batch and 100 more; the empty one writes nothing
		t.Fatalf("%d batch files, want 101", len(files))
	}
	b, _ := os.ReadFile(files[len(files)-1])
	if string(b) != "line\n" {
		t.Fatalf("last batch file holds %q", b)
	}
}
