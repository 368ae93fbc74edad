package host

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logtk/logtk/sdk/plugintest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestConfigGolden runs every testdata/config/<case>/plugins.hcl through
// ParseConfig and compares the diagnostics (expected.err) or the decoded
// configuration (expected.out) with the golden file.
func TestConfigGolden(t *testing.T) {
	usePluginDir(t)
	dirs, err := filepath.Glob("testdata/config/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			path := filepath.Join(dir, "plugins.hcl")
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := ParseConfig(src, path)
			var got, golden string
			if err != nil {
				got, golden = FormatDiagnostics(err), filepath.Join(dir, "expected.err")
			} else {
				b, _ := json.MarshalIndent(cfg, "", "  ")
				got, golden = string(b)+"\n", filepath.Join(dir, "expected.out")
			}
			abs, _ := filepath.Abs(dir)
			got = strings.ReplaceAll(got, abs, "$CASE_DIR")
			got = strings.ReplaceAll(got, os.Getenv("LOGTK_PLUGIN_DIR"), "$PLUGIN_DIR")
			if *update {
				os.Remove(filepath.Join(dir, "expected.err"))
				os.Remove(filepath.Join(dir, "expected.out"))
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (output was:\n%s)", err, got)
			}
			if got != string(want) {
				t.Fatalf("%s differs; got:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

// FuzzParseConfig: no input makes the configuration loader panic, and every
// error it returns points into the file.
func FuzzParseConfig(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/config/*/plugins.hcl")
	for _, s := range seeds {
		b, _ := os.ReadFile(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		_, err := ParseConfig(src, "fuzz.hcl")
		if err == nil {
			return
		}
		for i, line := range strings.Split(strings.TrimSuffix(FormatDiagnostics(err), "\n"), "\n") {
			if !strings.HasPrefix(line, "fuzz.hcl:") && (i == 0 || !strings.HasPrefix(line, "    ") || strings.TrimSpace(line) == "") {
				t.Fatalf("diagnostic without a position: %q", line)
			}
		}
	})
}

// usePluginDir makes the built-in plugins findable: make test sets
// LOGTK_PLUGIN_DIR; a plain go test builds them here.
func usePluginDir(t *testing.T) {
	if os.Getenv("LOGTK_PLUGIN_DIR") != "" {
		return
	}
	dir := t.TempDir()
	for _, name := range builtinPlugins {
		src := plugintest.Build(t, filepath.Join("..", "plugins", name, "plugin"))
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".wasm"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("LOGTK_PLUGIN_DIR", dir)
}
