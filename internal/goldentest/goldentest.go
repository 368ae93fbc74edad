// Package goldentest runs a formatter over plugintest.SampleRecords for
// each testdata/<case>/config.json and compares with expected.out; run
// go test with -update to rewrite the golden files.
package goldentest

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/logtk/logtk/sdk/plugin"
	"github.com/logtk/logtk/sdk/plugintest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// Run checks every case directory under testdata/. newFormatter returns a
// fresh formatter; the case's config.json (optional) configures it.
func Run(t *testing.T, newFormatter func() plugin.Formatter) {
	dirs, _ := filepath.Glob("testdata/*")
	if len(dirs) == 0 {
		t.Fatal("no testdata cases")
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			f := newFormatter()
			if cfg, err := os.ReadFile(filepath.Join(dir, "config.json")); err == nil {
				if err := f.(plugin.Configurer).Configure(cfg); err != nil {
					t.Fatal(err)
				}
			}
			var got []byte
			for _, rec := range plugintest.SampleRecords() {
				var v plugin.Record
				if !v.Parse(rec) {
					t.Fatal("sample record does not parse")
				}
				var err error
				if got, err = f.Format(got, &v); err != nil {
					t.Fatal(err)
				}
			}
			golden := filepath.Join(dir, "expected.out")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Fatalf("output differs from %s:\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
		})
	}
}

// NoAllocs fails if formatting the sample records allocates, except the
// samples listed in skip.
func NoAllocs(t *testing.T, f plugin.Formatter, skip ...int) {
	buf := make([]byte, 0, 8192)
	var views []plugin.Record
	for _, rec := range plugintest.SampleRecords() {
		var v plugin.Record
		v.Parse(rec)
		views = append(views, v)
	}
	for i := range views {
		if slices.Contains(skip, i) {
			continue
		}
		if n := testing.AllocsPerRun(50, func() { f.Format(buf[:0], &views[i]) }); n != 0 {
			t.Errorf("formatting sample %d allocated %.0f times", i, n)
		}
	}
}
