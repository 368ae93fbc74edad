package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
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
	cfg, err := Parse([]byte(all.String()), path)
	if err != nil {
		t.Fatalf("the samples together do not load:\n%s", FormatDiagnostics(err))
	}
	if len(cfg.Formats) < 3 || len(cfg.Transports) < 2 {
		t.Fatalf("loaded %d formats and %d transports", len(cfg.Formats), len(cfg.Transports))
	}
}

// TestDocsHCLParses: every hcl block the documentation shows is HCL a
// user can paste (an outside tester found one-line blocks with two
// attributes in the README, which HCL refuses).
func TestDocsHCLParses(t *testing.T) {
	docs, _ := filepath.Glob("../docs/*.md")
	plugins, _ := filepath.Glob("../plugins/*/README.md")
	docs = append(append(docs, "../README.md"), plugins...)
	blocks := 0
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		for i := 0; i < len(lines); i++ {
			if strings.TrimSpace(lines[i]) != "```hcl" {
				continue
			}
			start := i + 1
			var src strings.Builder
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
				src.WriteString(lines[i] + "\n")
			}
			blocks++
			if _, diags := hclsyntax.ParseConfig([]byte(src.String()), fmt.Sprintf("%s:%d", doc, start), hcl.Pos{Line: start + 1, Column: 1}); diags.HasErrors() {
				t.Errorf("%s: the hcl block at line %d does not parse: %s", doc, start, diags.Error())
			}
		}
	}
	if blocks < 5 {
		t.Fatalf("found %d hcl blocks in the documentation", blocks)
	}
}
