// Package custom runs examples/custom/plugins.hcl: the user-written
// example plugins in the host's pipeline.
package custom

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/host"
	"github.com/logtk/logtk/sdk/plugintest"
)

func TestCustomPlugins(t *testing.T) {
	dir := t.TempDir()
	// Lay out what plugins.hcl refers to, relative to a copy of it.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	cfgDir := filepath.Join(dir, "examples", "custom")
	must(os.MkdirAll(cfgDir, 0o755))
	must(os.MkdirAll(filepath.Join(dir, "bin"), 0o755))
	for _, p := range []string{"redact", "batchfile"} {
		must(os.MkdirAll(filepath.Join(dir, "examples", p), 0o755))
		b, err := os.ReadFile(plugintest.Build(t, "../"+p))
		must(err)
		must(os.WriteFile(filepath.Join(dir, "examples", p, p+".wasm"), b, 0o644))
	}
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "bin", "hello"), "../hello").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	src, err := os.ReadFile("plugins.hcl")
	must(err)
	must(os.WriteFile(filepath.Join(cfgDir, "plugins.hcl"), src, 0o644))

	cfg, err := config.Load(filepath.Join(cfgDir, "plugins.hcl"))
	if err != nil {
		t.Fatal(config.FormatDiagnostics(err))
	}
	h, err := host.New(cfg, host.Options{})
	must(err)
	must(h.Start())
	select {
	case <-h.Done():
	case <-time.After(time.Minute):
		t.Fatal("not done")
	}
	files, _ := filepath.Glob(filepath.Join(cfgDir, "spool", "batch-*.log"))
	var all strings.Builder
	for _, f := range files {
		b, _ := os.ReadFile(f)
		all.Write(b)
	}
	got := all.String()
	for _, want := range []string{`msg="Hello, world!" user=[REDACTED] answer=42`, `worker exited with status 2: panic:`} {
		if !strings.Contains(got, want) {
			t.Errorf("spool lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "unprivileged-worker") {
		t.Error("a redacted value reached the spool")
	}
}
