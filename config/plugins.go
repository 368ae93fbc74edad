package config

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/logtk/logtk/plugins/builtin"

	"github.com/hashicorp/hcl/v2"

	"github.com/logtk/logtk/internal/entries"
	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/wasm"
	"github.com/logtk/logtk/record"
)

// FormatConfig is a format block: a format plugin and its configuration.
type FormatConfig struct {
	Name string
	// Plugin is the path of the .wasm module (Load resolves
	// built-in names such as "protobuf" to a path), or, for a plugin
	// compiled into logtk-host, builtin.Path of its name
	// ("builtin:json"). ReadPlugin reads either.
	Plugin string
	// SHA256, when set, pins the module's digest.
	SHA256 string
	// Config is the plugin's configuration as JSON, checked against the
	// schema the plugin declares.
	Config json.RawMessage
	Limits PluginLimits
	// Instances is how many instances format batches in parallel.
	// Default: 2.
	Instances int
}

// TransportConfig is a transport block.
type TransportConfig struct {
	Name   string
	Plugin string
	SHA256 string
	// Format names the format block whose output this transport writes.
	Format string
	Config json.RawMessage
	Limits PluginLimits
	Allow  Allow
	// Spool, when set, keeps this transport's batches on disk until they
	// are acknowledged: they survive an unreachable destination and a
	// restart of the host.
	Spool *SpoolConfig
	// AckTimeout bounds how long a transport that has batches on their
	// way (one that exports logtk_poll) may acknowledge none of them. Past
	// it the host takes the instance for broken: it replaces it and sends
	// the batches again, and after three such rounds in a row it
	// dead-letters the oldest; while the host stops, it gives up at once
	// (spooled batches stay in the spool). Default 60s. It should exceed
	// the plugin's own acknowledgement timeout.
	AckTimeout time.Duration
}

// SpoolConfig is a transport's spool block.
type SpoolConfig struct {
	Dir      string
	MaxBytes int64 // default 1 GiB
	// WhenFull: "block" (default) holds the pipeline, and so the workers,
	// until there is room; "drop_oldest" deletes the oldest batches, each
	// drop counted and logged. A disk that refuses a batch (ENOSPC, a
	// quota, EIO) is waited for as under "block", whatever WhenFull says.
	WhenFull string
}

// PluginLimits bound a plugin instance. Zero values take the defaults.
type PluginLimits struct {
	MemoryBytes uint64        // default 64 MiB
	CallTimeout time.Duration // default 5s
	// NoCallTimeout ("call_timeout = \"off\"") runs the plugin without the
	// interruption checks that enforce CallTimeout, which cost part of the
	// plugin's own time (BENCHMARKS.md says how much); a plugin that loops
	// forever then hangs its stage. Only for plugins you trust.
	NoCallTimeout bool
}

// Allow lists the capabilities granted to a transport. The zero value
// grants nothing: no files, no clock, no console.
type Allow struct {
	Directories []string // host directories the plugin may read and write
	Clock       bool     // the real clock instead of a fixed fake
	Stdout      bool     // the host's standard output as the plugin's
	Stderr      bool     // the host's standard error as the plugin's
	// Endpoints the plugin may dial, by the name it dials.
	Endpoints map[string]EndpointConfig
	// Kafka clusters the plugin may produce to, by the name it names.
	Kafka map[string]*KafkaConfig
}

// EndpointConfig is a network destination granted to a transport. The
// host dials it; the plugin only names it.
type EndpointConfig struct {
	Address     string
	TLS         *TLSConfig // nil: plain TCP
	DialTimeout time.Duration
	IOTimeout   time.Duration
}

// TLSConfig configures TLS to an endpoint. Files are PEM; relative paths
// are relative to the configuration file.
type TLSConfig struct {
	CAFile     string // trusted CAs; default: the system's
	CertFile   string // client certificate, for servers that require one
	KeyFile    string
	ServerName string // default: the host part of Address
}

// Build reads the files and returns the client TLS configuration.
func (t *TLSConfig) Build() (*tls.Config, error) {
	c := &tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := readConfigFile(t.CAFile)
		if err != nil {
			return nil, err
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", t.CAFile)
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("cert_file and key_file go together: a client certificate needs its key, and a key its certificate")
	}
	if t.CertFile != "" {
		cert, err := loadKeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// dialPort reports whether port can be dialled: 1-65535, or a service
// name.
func dialPort(port string) bool {
	if n, err := strconv.ParseUint(port, 10, 16); err == nil {
		return n > 0
	}
	_, err := net.LookupPort("tcp", port)
	return err == nil
}

// loadKeyPair is tls.LoadX509KeyPair reading its files as the other files a
// configuration names (regular files only: a FIFO would hang validate).
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	cert, err := readConfigFile(certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := readConfigFile(keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(cert, key)
}

// builtinPlugins are the plugins that ship with logtk, referred to by
// name in plugins.hcl.
var builtinPlugins = []string{"text", "json", "protobuf", "console", "file", "network", "syslog", "otlp", "kafka"}

// pluginSearchPath lists where built-in plugins are looked for: the
// directories that override the plugins compiled into logtk-host
// (plugin_dir, LOGTK_PLUGIN_DIR), and those holding the ones that are
// not (beside the executable, bin/plugins beside the configuration).
func pluginSearchPath(pluginDir, baseDir string) (override, beside []string) {
	if pluginDir != "" {
		if !filepath.IsAbs(pluginDir) {
			pluginDir = filepath.Join(baseDir, pluginDir)
		}
		override = append(override, pluginDir)
	}
	if d := os.Getenv("LOGTK_PLUGIN_DIR"); d != "" {
		override = append(override, d)
	}
	if exe, err := os.Executable(); err == nil {
		beside = append(beside, filepath.Join(filepath.Dir(exe), "plugins"))
	}
	return override, append(beside, filepath.Join(baseDir, "bin", "plugins"))
}

// resolvePlugin finds a plugin: a built-in name, or a path to a .wasm file
// relative to the configuration's directory. A built-in compiled into
// logtk-host resolves to builtin.Path(name) unless an overriding
// directory holds a module of its name.
func resolvePlugin(ref, pluginDir, baseDir string) (string, error) {
	if !strings.Contains(ref, "/") && !strings.HasSuffix(ref, ".wasm") {
		known := false
		for _, b := range builtinPlugins {
			known = known || b == ref
		}
		if !known {
			return "", fmt.Errorf("%q is not a built-in plugin (%s); give a path to a .wasm file for your own", ref, strings.Join(builtinPlugins, ", "))
		}
		override, beside := pluginSearchPath(pluginDir, baseDir)
		search := append(override, beside...)
		_, embedded := builtin.Module(ref)
		if embedded {
			search = override
		}
		for _, d := range search {
			p := filepath.Join(d, ref+".wasm")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
		if embedded {
			return builtin.Path(ref), nil
		}
		return "", fmt.Errorf("built-in plugin %q is not built: no %s.wasm in %s. Run \"make plugins\" or set plugin_dir.", ref, ref, strings.Join(search, ", "))
	}
	if !filepath.IsAbs(ref) {
		ref = filepath.Join(baseDir, ref)
	}
	st, err := os.Stat(ref)
	if err != nil {
		return "", fmt.Errorf("%s does not exist (plugin paths are relative to the configuration file)", ref)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is %s, not a regular file", ref, describeType(st.Mode()))
	}
	return ref, nil
}

// parseSize reads a size: a whole number of bytes with an optional unit,
// B, KiB, MiB, GiB or TiB ("4096", "512KiB", "64MiB"). Zero is a size; a
// size that does not fit in 63 bits is an error, not a wrapped value.
func parseSize(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	mult := uint64(1)
	for _, u := range []struct {
		suffix string
		m      uint64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.m
			break
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, errors.New("not a size")
	}
	if n > (1<<63-1)/mult {
		return 0, errors.New("too large")
	}
	return n * mult, nil
}

// describeType names what a file that is not a regular one is.
func describeType(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file (" + m.Type().String() + ")"
}

// maxConfigFile bounds a file the configuration names (a plugin, a
// token, a schema): larger is a mistake, not a plugin.
const maxConfigFile = 512 << 20

// readConfigFile reads a file the configuration names. It must be a
// regular file (a FIFO would hang validate, /dev/zero never end) of at
// most maxConfigFile bytes.
func readConfigFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is %s, not a regular file", path, describeType(st.Mode()))
	}
	if st.Size() > maxConfigFile {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d a configuration may name", path, st.Size(), maxConfigFile)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err == nil && len(b) > maxConfigFile {
		err = fmt.Errorf("%s grew past %d bytes while read", path, maxConfigFile)
	}
	return b, err
}

// pluginBlock is what format and transport blocks share while decoding.
type pluginBlock struct {
	kind, name string
	block      *hcl.Block
	plugin     string
	sha256     string
	limits     PluginLimits
	instances  int
	format     string
	formatAttr *hcl.Attribute
	spool      *SpoolConfig
	ackTimeout time.Duration
	config     json.RawMessage
	allow      Allow
	ref        string     // the plugin attribute as written ("kafka", a path)
	configRng  *hcl.Range // the config block's, for checks of its values
}

// pluginAttrs declares the attributes of format and transport blocks;
// those of one kind only are refused in the other at their name.
func pluginAttrs(pb *pluginBlock, ref *string) attrs {
	only := func(kind string, decode func(*hcl.Attribute) hcl.Diagnostics, why string) func(*hcl.Attribute) hcl.Diagnostics {
		return func(a *hcl.Attribute) hcl.Diagnostics {
			if pb.kind != kind {
				return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Unsupported argument", Detail: why, Subject: a.NameRange.Ptr()}}
			}
			return decode(a)
		}
	}
	memory := func(name string, n uint64) (string, string) {
		if n < 1<<20 || n > 4<<30 {
			return "Invalid memory limit", fmt.Sprintf("%s = %d bytes; use a size between \"1MiB\" and \"4GiB\".", name, n)
		}
		return "", ""
	}
	callTimeout := func(a *hcl.Attribute) hcl.Diagnostics {
		var s string
		if d := decodeExpr(a.Expr, &s); d.HasErrors() {
			return d
		}
		if s == "off" {
			pb.limits.NoCallTimeout = true
			return nil
		}
		return duration(&pb.limits.CallTimeout, func(d time.Duration) bool { return d > 0 }, func(name, s string) string {
			return fmt.Sprintf("%s = %q is not a positive duration such as \"2s\", or \"off\".", name, s)
		})(a)
	}
	ackTimeout := duration(&pb.ackTimeout, func(d time.Duration) bool { return d >= time.Second }, func(name, s string) string {
		return fmt.Sprintf("%s = %q is not a duration of a second or more, such as \"60s\".", name, s)
	})
	format := func(a *hcl.Attribute) hcl.Diagnostics {
		d := decodeExpr(a.Expr, &pb.format)
		if !d.HasErrors() {
			pb.formatAttr = a
		}
		return d
	}
	return attrs{
		{"plugin", true, into(ref)},
		{"sha256", false, into(&pb.sha256, sha256Digest)},
		{"memory_limit", false, size(&pb.limits.MemoryBytes, memory)},
		{"call_timeout", false, callTimeout},
		{"instances", false, only("format", into(&pb.instances, instances), "instances applies to format blocks; a transport runs as one instance to keep order.")},
		{"format", false, only("transport", format, "format applies to transport blocks.")},
		{"ack_timeout", false, only("transport", ackTimeout, "ack_timeout applies to transport blocks.")},
	}
}

// sha256Digest checks a module digest: 64 hexadecimal digits, either case.
func sha256Digest(name, s string) (string, string) {
	if b, err := hex.DecodeString(s); err != nil || len(b) != sha256.Size {
		return "Invalid sha256", fmt.Sprintf("%s = %q is not 64 hexadecimal digits (the output of sha256sum).", name, s)
	}
	return "", ""
}

func instances(_ string, n int) (string, string) {
	if n < 1 || n > 64 {
		return "Value out of range", "instances must be between 1 and 64."
	}
	return "", ""
}

func decodePluginBlock(ctx context.Context, kind string, blk *hcl.Block, pluginDir, baseDir string) (*pluginBlock, hcl.Diagnostics) {
	pb := &pluginBlock{kind: kind, name: blk.Labels[0], block: blk}
	var ref string
	content, diags := pluginAttrs(pb, &ref).content(blk.Body, hcl.BlockHeaderSchema{Type: "config"}, hcl.BlockHeaderSchema{Type: "allow"}, hcl.BlockHeaderSchema{Type: "spool"})
	if content == nil {
		return nil, diags
	}
	pb.sha256 = strings.ToLower(pb.sha256) // either case is hexadecimal
	defer func() { pb.ref = ref }()
	errAt := func(rng hcl.Range, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: rng.Ptr()})
	}
	refAttr := content.Attributes["plugin"]
	if _, ok := content.Attributes["format"]; !ok && kind == "transport" {
		errAt(blk.DefRange, "Missing required argument", fmt.Sprintf("transport %q needs format = \"<name of a format block>\".", pb.name))
	}
	var allowBlk, configBlk, spoolBlk *hcl.Block
	for _, b := range content.Blocks {
		seen := &configBlk
		switch b.Type {
		case "allow":
			seen = &allowBlk
		case "spool":
			seen = &spoolBlk
		}
		if *seen != nil {
			errAt(b.DefRange, "Duplicate "+b.Type+" block", fmt.Sprintf("Only one %s block is allowed; the first is at %s.", b.Type, pos((*seen).DefRange)))
			continue
		}
		*seen = b
	}
	if allowBlk != nil {
		if kind != "transport" {
			errAt(allowBlk.DefRange, "Unsupported block type", "allow applies to transport blocks: format plugins get no capabilities.")
		} else {
			diags = append(diags, decodeAllow(allowBlk, baseDir, &pb.allow)...)
		}
	}
	if spoolBlk != nil {
		if kind != "transport" {
			errAt(spoolBlk.DefRange, "Unsupported block type", "spool applies to transport blocks.")
		} else {
			sc, d := decodeSpool(spoolBlk, baseDir)
			diags = append(diags, d...)
			pb.spool = sc
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}
	path, err := resolvePlugin(ref, pluginDir, baseDir)
	if err != nil {
		errAt(refAttr.Expr.Range(), "Plugin not found", err.Error())
		return nil, diags
	}
	pb.plugin = path
	// Compiled to be checked, then closed: the Config stays plain data,
	// and whoever runs it compiles what it runs.
	mod, err := checkModule(ctx, path, pb.sha256, pb.limits, kind+" "+pb.name)
	if err != nil {
		errAt(refAttr.Expr.Range(), "Plugin failed to load", err.Error())
		return nil, diags
	}
	defer mod.Close(ctx)
	if got := mod.Info().Kind; got != kind {
		errAt(refAttr.Expr.Range(), "Wrong kind of plugin", fmt.Sprintf("%s is a %s plugin; a %s block needs a %s plugin.", ref, got, kind, kind))
		return nil, diags
	}
	var cfgBody hcl.Body = hcl.EmptyBody()
	cfgRange := blk.DefRange
	if configBlk != nil {
		cfgBody, cfgRange = configBlk.Body, configBlk.DefRange
		pb.configRng = &configBlk.DefRange
	}
	var grants []string
	if kind == "transport" {
		grants = pb.allow.Directories
	}
	cfg, d := decodePluginConfig(cfgBody, mod.Info(), baseDir, kind == "transport", grants)
	diags = append(diags, d...)
	if d.HasErrors() {
		return nil, diags
	}
	pb.config = cfg
	// Let the plugin check its configuration now (Configure does no I/O),
	// so that a bad value is an error at load, not at the first record.
	if err := checkConfigure(ctx, mod, cfg); err != nil {
		if ce := (*wasm.CallError)(nil); errors.As(err, &ce) && ce.Status == wasm.StatusInvalid {
			// Status 2: the plugin says the configuration is wrong.
			errAt(cfgRange, "Plugin rejected its configuration", fmt.Sprintf("%s: %s", ref, ce.Msg))
		} else {
			// A trap, a call out of time, garbage or another status:
			// the plugin's fault, not the configuration's
			// (docs/plugin-abi.md).
			errAt(cfgRange, "Plugin failed checking its configuration", fmt.Sprintf("%s: %v", ref, err))
		}
		return nil, diags
	}
	return pb, diags
}

func checkConfigure(ctx context.Context, mod *wasm.Module, cfg []byte) error {
	inst, err := configured(ctx, mod, cfg)
	if err == nil {
		inst.Close(ctx)
	}
	return err
}

// configured returns an instance of mod given cfg, for the caller to
// close.
func configured(ctx context.Context, mod *wasm.Module, cfg []byte) (*wasm.Instance, error) {
	inst, err := mod.NewInstance(ctx)
	if err != nil {
		return nil, err
	}
	if err := inst.Configure(ctx, cfg); err != nil {
		inst.Close(ctx)
		return nil, err
	}
	return inst, nil
}

func allowAttrs(a *Allow, baseDir string) attrs {
	dirs := func(at *hcl.Attribute) hcl.Diagnostics {
		var dirs []string
		if d := decodeExpr(at.Expr, &dirs); d.HasErrors() {
			return d
		}
		for _, d := range dirs {
			if !filepath.IsAbs(d) {
				d = filepath.Join(baseDir, d)
			}
			// The directory is created at start, not here: validate
			// touches nothing.
			a.Directories = append(a.Directories, filepath.Clean(d))
		}
		return nil
	}
	return attrs{
		{"directories", false, dirs},
		{"clock", false, into(&a.Clock)},
		{"stdout", false, into(&a.Stdout)},
		{"stderr", false, into(&a.Stderr)},
	}
}

func decodeAllow(blk *hcl.Block, baseDir string, a *Allow) hcl.Diagnostics {
	content, diags := allowAttrs(a, baseDir).lenient(blk.Body, hcl.BlockHeaderSchema{Type: "endpoint", LabelNames: []string{"name"}},
		hcl.BlockHeaderSchema{Type: "kafka", LabelNames: []string{"name"}})
	for _, blk := range content.Blocks {
		name := blk.Labels[0]
		if blk.Type == "kafka" {
			if _, dup := a.Kafka[name]; dup {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate kafka cluster",
					Detail: fmt.Sprintf("kafka cluster %q is granted twice.", name), Subject: blk.LabelRanges[0].Ptr()})
				continue
			}
			k, d := decodeKafka(blk, baseDir, false)
			diags = append(diags, d...)
			if a.Kafka == nil {
				a.Kafka = map[string]*KafkaConfig{}
			}
			a.Kafka[name] = k
			continue
		}
		if _, dup := a.Endpoints[name]; dup {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate endpoint",
				Detail: fmt.Sprintf("endpoint %q is granted twice.", name), Subject: blk.LabelRanges[0].Ptr()})
			continue
		}
		ep, d := decodeEndpoint(blk, baseDir)
		diags = append(diags, d...)
		if a.Endpoints == nil {
			a.Endpoints = map[string]EndpointConfig{}
		}
		a.Endpoints[name] = ep
	}
	return diags
}

// decodePluginConfig decodes a config block against the fields the
// plugin declares and renders it as JSON. When confined (a transport,
// which sees only the directories it is granted), a path field must lie
// in one of grants: any other path would fail at its first use, and here
// is where to say so.
func decodePluginConfig(body hcl.Body, info wasm.Info, baseDir string, confined bool, grants []string) (json.RawMessage, hcl.Diagnostics) {
	schema := &hcl.BodySchema{}
	types := map[string]string{}
	for _, f := range info.Config {
		schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: f.Name, Required: f.Required})
		types[f.Name] = f.Type
	}
	content, diags := body.Content(schema)
	if diags.HasErrors() {
		return nil, diags
	}
	out := map[string]any{}
	for name, attr := range content.Attributes {
		var d hcl.Diagnostics
		switch types[name] {
		case "string":
			var v string
			d = decodeExpr(attr.Expr, &v)
			out[name] = v
		case "number":
			var v float64
			d = decodeExpr(attr.Expr, &v)
			out[name] = v
		case "bool":
			var v bool
			d = decodeExpr(attr.Expr, &v)
			out[name] = v
		case "list(string)":
			var v []string
			d = decodeExpr(attr.Expr, &v)
			out[name] = v
		case "map(string)":
			var v map[string]string
			d = decodeExpr(attr.Expr, &v)
			out[name] = v
		case "path":
			var v string
			d = decodeExpr(attr.Expr, &v)
			if v != "" && !filepath.IsAbs(v) {
				v = filepath.Join(baseDir, v)
			}
			if v != "" {
				// Clean, as a relative one is by Join: the plugin resolves
				// it a component at a time, and "x/.." must not need x.
				v = filepath.Clean(v)
			}
			if !d.HasErrors() && v != "" && confined && !granted(v, grants) {
				d = append(d, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Path outside the granted directories",
					Detail: fmt.Sprintf("%s = %q is not inside a directory this transport is granted (allow { directories = %s }): the plugin cannot reach it. Grant its directory, or choose a path inside one.",
						name, v, quoteList(grants)), Subject: attr.Expr.Range().Ptr()})
			}
			out[name] = v
		case "file":
			var p string
			d = decodeExpr(attr.Expr, &p)
			if !d.HasErrors() {
				if !filepath.IsAbs(p) {
					p = filepath.Join(baseDir, p)
				}
				b, err := readConfigFile(p)
				if err != nil {
					d = append(d, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot read file",
						Detail: fmt.Sprintf("%s: %v", name, err), Subject: attr.Expr.Range().Ptr()})
				}
				out[name] = b
			}
		default:
			d = hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Plugin declares an unknown field type",
				Detail: fmt.Sprintf("%s %s declares field %q of type %q", info.Kind, info.Name, name, types[name]), Subject: attr.NameRange.Ptr()}}
		}
		diags = append(diags, d...)
	}
	b, err := json.Marshal(out)
	if err != nil {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot encode plugin configuration", Detail: err.Error()})
	}
	return b, diags
}

// checkModule compiles a plugin as Load checks it: its digest, ABI,
// exports and kind, without the capabilities (Configure, which is all the
// check calls, does no I/O).
func checkModule(ctx context.Context, path, sha string, limits PluginLimits, name string) (*wasm.Module, error) {
	b, err := ReadPlugin(path)
	if err != nil {
		return nil, err
	}
	return wasm.Load(ctx, b, wasm.Options{Name: name, Limits: limits.wasm(), SHA256: sha})
}

// writesRecords checks that the format f writes a record as a
// logtk.v1.Record, whatever its plugin: it formats a sample record and
// reads the output back, wanting the record's message and what the
// kafka transport keys and heads it by (worker, index, incarnation,
// seq). It answers why not, or nil.
func writesRecords(ctx context.Context, f FormatConfig) error {
	mod, err := checkModule(ctx, f.Plugin, f.SHA256, f.Limits, "format "+f.Name)
	if err != nil {
		return fmt.Errorf("did not load: %w", err)
	}
	defer mod.Close(ctx)
	inst, err := configured(ctx, mod, f.Config)
	if err != nil {
		return fmt.Errorf("did not start: %w", err)
	}
	defer inst.Close(ctx)
	const msg = "a sample record, written to check the format"
	sample := irecord.AppendHead(nil, time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), record.LevelInfo, msg, "logtk")
	stamp := irecord.Stamp{Worker: "check", WorkerIndex: 3, Incarnation: 2, Seq: 42, Received: time.Date(2026, 1, 2, 3, 4, 5, 7, time.UTC)}
	sample = irecord.AppendStamp(sample, &stamp)
	out, err := inst.Format(ctx, entries.Append(nil, sample), 1)
	if err != nil {
		return fmt.Errorf("failed to format a sample record: %w", err)
	}
	entry, _ := entries.Next(out)
	var r record.Record
	if !r.Parse(entry) || string(r.Message) != msg || r.Seq != stamp.Seq || string(r.Worker) != stamp.Worker ||
		r.WorkerIndex != stamp.WorkerIndex || r.Incarnation != stamp.Incarnation {
		return fmt.Errorf("wrote a sample record as %d bytes that do not read back as that logtk.v1.Record (%.40q)", len(entry), entry)
	}
	return nil
}

// describePlugin names the plugin at path for a message: "the built-in
// text plugin", or the module's file name.
func describePlugin(path string) string {
	if name, ok := strings.CutPrefix(path, builtin.Prefix); ok {
		return "the built-in " + name + " plugin"
	}
	return filepath.Base(path)
}

// ReadPlugin returns the module at a plugin path a Config holds: a file,
// or a plugin compiled into logtk-host (builtin.Path).
func ReadPlugin(path string) ([]byte, error) {
	if b, ok := builtin.Read(path); ok {
		return b, nil
	}
	return readConfigFile(path)
}

// wasm returns the limits as the plugin runtime takes them.
func (l PluginLimits) wasm() wasm.Limits {
	return wasm.Limits{MemoryBytes: l.MemoryBytes, CallTimeout: l.CallTimeout, NoCallTimeout: l.NoCallTimeout}
}

func endpointAttrs(ep *EndpointConfig) attrs {
	return attrs{
		{"address", true, into(&ep.Address, dialAddress)},
		{"dial_timeout", false, duration(&ep.DialTimeout, func(d time.Duration) bool { return d > 0 }, notPositive)},
		{"io_timeout", false, duration(&ep.IOTimeout, func(d time.Duration) bool { return d > 0 }, notPositive)},
	}
}

func notPositive(name, s string) string {
	return fmt.Sprintf("%s = %q is not a positive duration.", name, s)
}

// dialAddress checks a host:port to dial.
func dialAddress(name, addr string) (string, string) {
	_, port, err := net.SplitHostPort(addr)
	switch {
	case err != nil:
		return "Invalid address", fmt.Sprintf("%s = %q is not host:port.", name, addr)
	case !dialPort(port):
		return "Invalid port", fmt.Sprintf("%s = %q: the port must be a number from 1 to 65535 (or a service name).", name, addr)
	}
	return "", ""
}

func tlsAttrs(t *TLSConfig, baseDir string) attrs {
	return attrs{
		{"ca_file", false, path(&t.CAFile, baseDir)},
		{"cert_file", false, path(&t.CertFile, baseDir)},
		{"key_file", false, path(&t.KeyFile, baseDir)},
		{"server_name", false, into(&t.ServerName)},
	}
}

func decodeEndpoint(blk *hcl.Block, baseDir string) (EndpointConfig, hcl.Diagnostics) {
	var ep EndpointConfig
	content, diags := endpointAttrs(&ep).content(blk.Body, hcl.BlockHeaderSchema{Type: "tls"})
	if content == nil {
		return ep, diags
	}
	for _, tb := range content.Blocks {
		t := &TLSConfig{}
		_, d := tlsAttrs(t, baseDir).lenient(tb.Body)
		diags = append(diags, d...)
		if _, err := t.Build(); err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid TLS configuration",
				Detail: err.Error(), Subject: tb.DefRange.Ptr()})
		}
		ep.TLS = t
	}
	return ep, diags
}

func spoolAttrs(sc *SpoolConfig, baseDir string) attrs {
	room := func(name string, n uint64) (string, string) {
		if n == 0 {
			return "Invalid size", fmt.Sprintf("%s = 0: a spool needs room; use a size such as \"512MiB\".", name)
		}
		return "", ""
	}
	return attrs{
		{"dir", true, path(&sc.Dir, baseDir)},
		{"max_bytes", false, size(&sc.MaxBytes, room)},
		{"when_full", false, into(&sc.WhenFull, oneOf("Invalid policy", `"block" or "drop_oldest"`, "block", "drop_oldest"))},
	}
}

func decodeSpool(blk *hcl.Block, baseDir string) (*SpoolConfig, hcl.Diagnostics) {
	sc := &SpoolConfig{MaxBytes: 1 << 30, WhenFull: "block"}
	_, diags := spoolAttrs(sc, baseDir).lenient(blk.Body)
	return sc, diags
}

// granted reports whether path lies in (or is) one of the directories,
// as the sandbox sees it: by the path's text, cleaned, not by where its
// links lead.
func granted(path string, dirs []string) bool {
	path = filepath.Clean(path)
	for _, d := range dirs {
		d = filepath.Clean(d)
		if path == d || strings.HasPrefix(path, d+string(filepath.Separator)) || d == string(filepath.Separator) {
			return true
		}
	}
	return false
}

// quoteList writes names as an HCL list: ["a", "b"], or [] for none.
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
