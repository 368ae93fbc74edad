package file_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logtk/logtk/plugins/file"
	"github.com/logtk/logtk/sdk/plugin"
)

func batch(t *testing.T, entries ...string) *plugin.Batch {
	var b []byte
	for _, e := range entries {
		b = plugin.AppendEntry(b, []byte(e))
	}
	bt, err := plugin.NewBatch(1, b)
	if err != nil {
		t.Fatal(err)
	}
	return bt
}

func open(t *testing.T, cfg map[string]any) *file.Transport {
	t.Helper()
	tr := file.New()
	b, _ := json.Marshal(cfg)
	if err := tr.Configure(b); err != nil {
		t.Fatal(err)
	}
	if err := tr.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func TestAppendAndRotate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	tr := open(t, map[string]any{"path": path, "max_bytes": 20, "max_files": 2})
	for i := 0; i < 6; i++ {
		if err := tr.Write(batch(t, "0123456789\n")); err != nil { // 11 bytes: one batch per file
			t.Fatal(err)
		}
	}
	rotated, err := file.Rotated(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rotated) != 2 {
		t.Fatalf("%d rotated files kept, want 2: %v", len(rotated), rotated)
	}
	for _, p := range append(rotated, path) {
		if b, _ := os.ReadFile(p); string(b) != "0123456789\n" {
			t.Fatalf("%s holds %q", p, b)
		}
	}
}

func TestFraming(t *testing.T) {
	dir := t.TempDir()
	for framing, want := range map[string]string{
		"raw":             "ab",
		"newline":         "a\nb\n",
		"length-prefixed": "\x01a\x01b",
	} {
		path := filepath.Join(dir, framing)
		tr := open(t, map[string]any{"path": path, "framing": framing, "fsync": "never"})
		if err := tr.Write(batch(t, "a", "b")); err != nil {
			t.Fatal(err)
		}
		if err := tr.Flush(); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != want {
			t.Errorf("%s: %q, want %q", framing, b, want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for cfg, want := range map[string]string{
		`{}`:                               "path is required",
		`{"path":"x","fsync":"sometimes"}`: `unknown fsync "sometimes"`,
		`{"path":"x","framing":"xml"}`:     `unknown framing "xml"`,
		`{"path":"x","max_age":"soon"}`:    `max_age "soon" is not a positive duration`,
		`{"path":"x","max_bytes":-1}`:      "must not be negative",
	} {
		err := file.New().Configure([]byte(cfg))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", cfg, err, want)
		}
	}
}
