package host

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPluginSamples keeps each plugin's sample configuration valid and
// identical to the one its README shows.
func TestPluginSamples(t *testing.T) {
	usePluginDir(t)
	samples, _ := filepath.Glob("../plugins/*/sample.hcl")
	if len(samples) < 5 {
		t.Fatalf("found %d sample.hcl files", len(samples))
	}
	var all strings.Builder
	for _, s := range samples {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		readme, err := os.ReadFile(filepath.Join(filepath.Dir(s), "README.md"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(readme), string(b)) {
			t.Errorf("%s: README.md does not show sample.hcl as it is", filepath.Dir(s))
		}
		all.Write(b)
		all.WriteByte('\n')
	}
	path := filepath.Join(t.TempDir(), "plugins.hcl")
	cfg, err := ParseConfig([]byte(all.String()), path)
	if err != nil {
		t.Fatalf("the samples together do not load:\n%s", FormatDiagnostics(err))
	}
	if len(cfg.Formats) < 3 || len(cfg.Transports) < 2 {
		t.Fatalf("loaded %d formats and %d transports", len(cfg.Formats), len(cfg.Transports))
	}
}
