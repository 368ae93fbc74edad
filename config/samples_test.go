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

// TestDocsHCLValid: every hcl block the documentation shows is a
// configuration a user can paste: it parses (an outside tester found
// one-line blocks with two attributes in the README, which HCL refuses)
// and loads, but for what depends on the machine.
func TestDocsHCLValid(t *testing.T) {
	usePluginDir(t)
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
				continue
			}
			// Loaded as a configuration: only what depends on the
			// machine may fail (a command, user, group or file the
			// example names), and a transport shown without its
			// format when the example has no format at all.
			_, err := Parse([]byte(src.String()), filepath.Join(t.TempDir(), "plugins.hcl"))
			diags, _ := err.(hcl.Diagnostics)
			for _, d := range diags {
				switch d.Summary {
				case "Command not found", "Unknown user", "Unknown group", "Cannot read token file", "Cannot read file", "Invalid TLS configuration":
					continue
				case "Unknown format":
					if !strings.Contains(src.String(), "format \"") {
						continue
					}
				}
				t.Errorf("%s: the hcl block at line %d is not a valid configuration: %s: %s", doc, start, d.Summary, d.Detail)
			}
		}
	}
	if blocks < 5 {
		t.Fatalf("found %d hcl blocks in the documentation", blocks)
	}
}

// TestExampleConfigs: every configuration under examples/ loads, but for
// what must be built first (a worker's command, the example plugins of
// examples/custom: make examples).
func TestExampleConfigs(t *testing.T) {
	usePluginDir(t)
	files, _ := filepath.Glob("../examples/*/*.hcl")
	if len(files) < 2 {
		t.Fatalf("found %d example configurations", len(files))
	}
	for _, f := range files {
		_, err := Load(f)
		diags, _ := err.(hcl.Diagnostics)
		for _, d := range diags {
			if d.Summary != "Command not found" && !(d.Summary == "Plugin not found" && strings.Contains(d.Detail, "/examples/")) {
				t.Errorf("%s: %s: %s", f, d.Summary, d.Detail)
			}
		}
		if err != nil && diags == nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
