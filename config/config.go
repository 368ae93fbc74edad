// Package config is logtk's configuration: the plain data a host and a
// log server run (Config and the blocks in it), and Load, which reads it
// from plugins.hcl (the README documents it) and checks it, reporting every
// mistake at its file:line:col.
//
// A Config may also be built in code; zero-valued fields take the
// defaults each field documents. Nothing in a Config is compiled or
// opened: the host or server that runs one compiles its plugins, owns
// them, and closes them when it stops, so that two Configs can be held
// side by side (as a reload needs).
package config

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// Config is what a host runs: plain data, which Load and Parse build from
// plugins.hcl and a program embedding the host may build directly. It
// holds nothing compiled: whoever runs it (host.New, logserver.New)
// compiles the plugins it names and owns them.
type Config struct {
	Workers []WorkerConfig
	// Formats and Transports are the Wasm stages every record goes
	// through: each transport writes what its format produced. With no
	// transports the host writes text to stdout natively.
	Formats    []FormatConfig
	Transports []TransportConfig
	// PluginDir is searched first for built-in plugins (text.wasm, ...).
	PluginDir string
	// DeadLetterDir receives batches a plugin failed on repeatedly.
	// Default: logtk-dead-letter beside the configuration file (or in the
	// working directory for a Config built in code).
	DeadLetterDir string
	// RuntimeDir, when set, turns on the durable ingest (docs/ipc.md,
	// "When the host dies"): each worker's ring is a file there and the
	// host journals what it read, so that a host killed at any moment
	// loses no record a log call returned from on the ring. It should be
	// on a memory file system (tmpfs): it then survives the host, not the
	// machine. logtk-host run sets DefaultRuntimeDir unless the file says
	// durable_ingest = false. Empty: off (rings are memfds, as a Config
	// built in code has them).
	RuntimeDir string
	// DurableIngest is the file's durable_ingest: nil when not set.
	DurableIngest *bool

	// Server, when set, makes logtk-host serve run a log server.
	Server *ServerConfig

	// Control is the control block; nil takes its defaults.
	Control *ControlConfig

	// Metrics, when set, serves metrics (host and server alike).
	Metrics *MetricsConfig
}

// Load reads and checks an HCL configuration file. It compiles each
// plugin to check it and its configuration, and keeps nothing compiled; it
// opens no connection and starts nothing. On failure the error is
// hcl.Diagnostics, each naming file:line:col; FormatDiagnostics renders
// them.
func Load(filename string) (*Config, error) {
	src, err := readConfigFile(filename)
	if err != nil {
		return nil, err
	}
	return Parse(src, filename)
}

// Parse is Load for a configuration already in memory. Relative paths in
// it are resolved against filename's directory.
func Parse(src []byte, filename string) (*Config, error) {
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, diags
	}
	baseDir, err := filepath.Abs(filepath.Dir(filename))
	if err != nil {
		return nil, err
	}
	cfg, more := decodeConfig(f.Body, baseDir)
	diags = append(diags, more...)
	sortDiagnostics(diags)
	if diags.HasErrors() {
		return nil, diags
	}
	return cfg, nil
}

// FormatDiagnostics renders each diagnostic as
// "file:line:col: error: summary; detail", on one line unless its detail
// has several (HCL's own can), which then follow indented by four spaces.
func FormatDiagnostics(err error) string {
	diags, ok := err.(hcl.Diagnostics)
	if !ok {
		return err.Error()
	}
	var b strings.Builder
	for _, d := range diags {
		if d.Subject != nil {
			fmt.Fprintf(&b, "%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		fmt.Fprintf(&b, "%s: %s", sev, d.Summary)
		// A diagnostic is one line, or continues on lines indented by
		// four spaces (HCL's own details can run over paragraphs).
		sep := "; "
		for _, line := range strings.Split(d.Detail, "\n") {
			if line = strings.TrimSpace(line); line != "" {
				b.WriteString(sep)
				b.WriteString(line)
				sep = "\n    "
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// sortDiagnostics orders diagnostics by position, so that the user reads
// them in file order (attribute maps decode in random order).
func sortDiagnostics(diags hcl.Diagnostics) {
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		if a == nil || b == nil {
			return a != nil
		}
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
}

func pos(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

func decodeConfig(body hcl.Body, baseDir string) (*Config, hcl.Diagnostics) {
	cfg := &Config{DeadLetterDir: filepath.Join(baseDir, "logtk-dead-letter")}
	root := attrs{
		{"plugin_dir", false, path(&cfg.PluginDir, baseDir)},
		{"dead_letter_dir", false, path(&cfg.DeadLetterDir, baseDir)},
		{"runtime_dir", false, path(&cfg.RuntimeDir, baseDir)},
		{"durable_ingest", false, func(a *hcl.Attribute) hcl.Diagnostics {
			var on bool
			d := into(&on)(a)
			cfg.DurableIngest = &on
			return d
		}},
	}
	content, diags := root.lenient(body,
		hcl.BlockHeaderSchema{Type: "worker", LabelNames: []string{"name"}},
		hcl.BlockHeaderSchema{Type: "format", LabelNames: []string{"name"}},
		hcl.BlockHeaderSchema{Type: "transport", LabelNames: []string{"name"}},
		hcl.BlockHeaderSchema{Type: "server"},
		hcl.BlockHeaderSchema{Type: "control"},
		hcl.BlockHeaderSchema{Type: "metrics"},
	)
	seen := map[string]*hcl.Block{}
	seenStage := map[string]*hcl.Block{}
	single := map[string]*hcl.Block{} // the blocks allowed once
	var transportBlocks []*pluginBlock
	decoded := decodePluginBlocks(content.Blocks, cfg.PluginDir, baseDir)
	for _, blk := range content.Blocks {
		if blk.Type == "metrics" {
			if d := oneOnly(single, blk, ""); d != nil {
				diags = append(diags, d...)
				continue
			}
			m, d := decodeMetrics(blk)
			diags = append(diags, d...)
			cfg.Metrics = m
			continue
		}
		if blk.Type == "control" {
			if d := oneOnly(single, blk, ""); d != nil {
				diags = append(diags, d...)
				continue
			}
			c, d := decodeControl(blk, baseDir)
			diags = append(diags, d...)
			cfg.Control = c
			continue
		}
		if blk.Type == "server" {
			if d := oneOnly(single, blk, ""); d != nil {
				diags = append(diags, d...)
				continue
			}
			sc, d := decodeServer(blk, baseDir)
			diags = append(diags, d...)
			cfg.Server = sc
			continue
		}
		name := blk.Labels[0]
		if blk.Type != "worker" {
			key := blk.Type + " " + name
			if prev, dup := seenStage[key]; dup {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate " + blk.Type + " block",
					Detail:  fmt.Sprintf("A %s named %q was already defined at %s.", blk.Type, name, pos(prev.DefRange)),
					Subject: blk.LabelRanges[0].Ptr()})
				continue
			}
			seenStage[key] = blk
			pb, d := decoded(blk)
			diags = append(diags, d...)
			if pb == nil {
				continue
			}
			if blk.Type == "format" {
				cfg.Formats = append(cfg.Formats, FormatConfig{Name: name, Plugin: pb.plugin, SHA256: pb.sha256,
					Config: pb.config, Limits: pb.limits, Instances: pb.instances})
			} else {
				transportBlocks = append(transportBlocks, pb)
				cfg.Transports = append(cfg.Transports, TransportConfig{Name: name, Plugin: pb.plugin, SHA256: pb.sha256,
					Format: pb.format, Config: pb.config, Limits: pb.limits, Allow: pb.allow, Spool: pb.spool, AckTimeout: pb.ackTimeout})
			}
			continue
		}
		if prev, dup := seen[name]; dup {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate worker block",
				Detail:   fmt.Sprintf("A worker named %q was already defined at %s. Worker names must be unique.", name, pos(prev.DefRange)),
				Subject:  blk.LabelRanges[0].Ptr(),
			})
			continue
		}
		seen[name] = blk
		if !validName(name) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid worker name",
				Detail:   fmt.Sprintf("Worker name %q must be 1-64 letters, digits, '-', '_' or '.'.", name),
				Subject:  blk.LabelRanges[0].Ptr(),
			})
		}
		w, d := decodeWorker(name, blk, baseDir)
		diags = append(diags, d...)
		if w != nil {
			cfg.Workers = append(cfg.Workers, *w)
		}
	}
	for _, pb := range transportBlocks {
		if pb.formatAttr == nil {
			continue
		}
		if _, ok := seenStage["format "+pb.format]; !ok {
			var names []string
			for _, f := range cfg.Formats {
				names = append(names, strconv.Quote(f.Name))
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown format",
				Detail:  fmt.Sprintf("transport %q refers to format %q, which is not defined (defined: %s).", pb.name, pb.format, orNone(strings.Join(names, ", "))),
				Subject: pb.formatAttr.Expr.Range().Ptr()})
		}
	}
	for _, pb := range transportBlocks {
		if pb.ref == "kafka" {
			diags = append(diags, checkKafkaTransport(pb, cfg)...)
		}
	}
	return cfg, diags
}

// decodePluginBlocks decodes the format and transport blocks (the first
// of each name) at once, each compiling its plugin to check it, on as
// many cores as there are: compiling is most of a configuration's
// loading. The returned function waits for a block's result.
func decodePluginBlocks(blocks hcl.Blocks, pluginDir, baseDir string) func(*hcl.Block) (*pluginBlock, hcl.Diagnostics) {
	type result struct {
		pb    *pluginBlock
		diags hcl.Diagnostics
		done  chan struct{}
	}
	results := map[*hcl.Block]*result{}
	first := map[string]bool{}
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for _, blk := range blocks {
		if (blk.Type != "format" && blk.Type != "transport") || len(blk.Labels) == 0 || first[blk.Type+" "+blk.Labels[0]] {
			continue
		}
		first[blk.Type+" "+blk.Labels[0]] = true
		r := &result{done: make(chan struct{})}
		results[blk] = r
		go func() {
			defer close(r.done)
			sem <- struct{}{}
			defer func() { <-sem }()
			r.pb, r.diags = decodePluginBlock(context.Background(), blk.Type, blk, pluginDir, baseDir)
		}()
	}
	return func(blk *hcl.Block) (*pluginBlock, hcl.Diagnostics) {
		r := results[blk]
		<-r.done
		return r.pb, r.diags
	}
}

// checkKafkaTransport checks what the built-in kafka transport needs of
// the rest of the configuration: its cluster granted, its topic among
// the grant's, and a format that writes each record as a logtk.v1.Record
// (otherwise each batch would fail at run time, retried or
// dead-lettered).
func checkKafkaTransport(pb *pluginBlock, cfg *Config) hcl.Diagnostics {
	var diags hcl.Diagnostics
	at := pb.block.DefRange
	if pb.configRng != nil {
		at = *pb.configRng
	}
	var c struct{ Cluster, Topic string }
	json.Unmarshal(pb.config, &c)
	if g, ok := pb.allow.Kafka[c.Cluster]; c.Cluster != "" && !ok {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Kafka cluster not granted",
			Detail:  fmt.Sprintf("transport %q produces to cluster %q, which its allow block does not grant (allow { kafka %q { ... } }).", pb.name, c.Cluster, c.Cluster),
			Subject: at.Ptr()})
	} else if ok && c.Topic != "" && !slices.Contains(g.Topics, c.Topic) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Kafka topic not granted",
			Detail:  fmt.Sprintf("transport %q produces to topic %q, which the grant of cluster %q does not list (topics = %q).", pb.name, c.Topic, c.Cluster, g.Topics),
			Subject: at.Ptr()})
	}
	for _, f := range cfg.Formats {
		if f.Name != pb.format {
			continue
		}
		if err := writesRecords(context.Background(), f); err != nil {
			rng := at
			if pb.formatAttr != nil {
				rng = pb.formatAttr.Expr.Range()
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Wrong format for the kafka transport",
				Detail: fmt.Sprintf("transport %q sends logtk.v1.Record values: its format must write each record as one (the protobuf plugin without a schema does); format %q (%s) %v.",
					pb.name, f.Name, describePlugin(f.Plugin), err),
				Subject: rng.Ptr()})
		}
	}
	return diags
}

func orNone(s string) string {
	if s == "" {
		return "none that loaded"
	}
	return s
}
