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
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/zclconf/go-cty/cty"

	"github.com/logtk/logtk/internal/wasm"
)

// FormatConfig is a format block: a format plugin and its configuration.
type FormatConfig struct {
	Name string
	// Plugin is the path of the .wasm module (Load resolves
	// built-in names such as "text" to a path).
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
	// interruption checks that enforce CallTimeout. They cost 5-19% of the
	// plugin's own time (see BENCHMARKS.md); a plugin that loops forever
	// then hangs its stage. Only for plugins you trust.
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
	if t.CertFile != "" || t.KeyFile != "" {
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
var builtinPlugins = []string{"text", "json", "protobuf", "console", "file", "network"}

// pluginSearchPath lists where built-in plugins are looked for.
func pluginSearchPath(pluginDir, baseDir string) []string {
	var dirs []string
	if pluginDir != "" {
		if !filepath.IsAbs(pluginDir) {
			pluginDir = filepath.Join(baseDir, pluginDir)
		}
		dirs = append(dirs, pluginDir)
	}
	if d := os.Getenv("LOGTK_PLUGIN_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Join(filepath.Dir(exe), "plugins"))
	}
	return append(dirs, filepath.Join(baseDir, "bin", "plugins"))
}

// resolvePlugin finds a plugin: a built-in name, or a path to a .wasm file
// relative to the configuration's directory.
func resolvePlugin(ref, pluginDir, baseDir string) (string, error) {
	if !strings.Contains(ref, "/") && !strings.HasSuffix(ref, ".wasm") {
		known := false
		for _, b := range builtinPlugins {
			known = known || b == ref
		}
		if !known {
			return "", fmt.Errorf("%q is not a built-in plugin (%s); give a path to a .wasm file for your own", ref, strings.Join(builtinPlugins, ", "))
		}
		search := pluginSearchPath(pluginDir, baseDir)
		for _, d := range search {
			p := filepath.Join(d, ref+".wasm")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
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

var pluginBlockSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "plugin", Required: true},
		{Name: "sha256"},
		{Name: "memory_limit"},
		{Name: "call_timeout"},
		{Name: "instances"},
		{Name: "format"},
		{Name: "ack_timeout"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "config"}, {Type: "allow"}, {Type: "spool"}},
}

var spoolSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "dir", Required: true}, {Name: "max_bytes"}, {Name: "when_full"}},
}

var allowSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "directories"}, {Name: "clock"}, {Name: "stdout"}, {Name: "stderr"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "endpoint", LabelNames: []string{"name"}}},
}

var endpointSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "address", Required: true}, {Name: "dial_timeout"}, {Name: "io_timeout"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "tls"}},
}

var tlsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "ca_file"}, {Name: "cert_file"}, {Name: "key_file"}, {Name: "server_name"}},
}

// parseBytes reads "64MiB", "512KiB", "1GiB" or a plain number of bytes.
func parseBytes(s string) (uint64, error) {
	n, err := parseSize(s)
	if err == nil && n == 0 {
		err = errors.New("not a size")
	}
	return n, err
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

// decodeSize decodes a size attribute: a number of bytes or a string that
// parseSize reads. It returns the attribute (nil when absent or wrong,
// with a diagnostic at its position) and the size.
func decodeSize(attrs hcl.Attributes, name string, diags *hcl.Diagnostics) (*hcl.Attribute, uint64) {
	a, ok := attrs[name]
	if !ok {
		return nil, 0
	}
	v, d := a.Expr.Value(nil)
	if *diags = append(*diags, d...); d.HasErrors() {
		return nil, 0
	}
	bad := func(what string) (*hcl.Attribute, uint64) {
		*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid size",
			Detail:  fmt.Sprintf("%s is %s; give a number of bytes or a size such as \"64MiB\" (units B, KiB, MiB, GiB, TiB).", name, what),
			Subject: a.Expr.Range().Ptr()})
		return nil, 0
	}
	switch {
	case v.IsNull() || !v.IsKnown():
		return bad("not set")
	case v.Type() == cty.Number:
		bf := v.AsBigFloat()
		n, _ := bf.Uint64()
		if bf.Sign() < 0 || !bf.IsInt() || bf.Cmp(new(big.Float).SetUint64(1<<63-1)) > 0 {
			return bad(fmt.Sprintf("%s, not a whole number of bytes that fits in 63 bits", bf.Text('g', 20)))
		}
		return a, n
	case v.Type() == cty.String:
		n, err := parseSize(v.AsString())
		if err != nil {
			return bad(fmt.Sprintf("%q, %v", v.AsString(), err))
		}
		return a, n
	}
	return bad("a " + v.Type().FriendlyName())
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
}

func decodePluginBlock(ctx context.Context, kind string, blk *hcl.Block, pluginDir, baseDir string) (*pluginBlock, hcl.Diagnostics) {
	pb := &pluginBlock{kind: kind, name: blk.Labels[0], block: blk}
	content, diags := blk.Body.Content(pluginBlockSchema)
	if diags.HasErrors() {
		return nil, diags
	}
	errAt := func(rng hcl.Range, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: rng.Ptr()})
	}
	str := func(name string, target *string) *hcl.Attribute {
		return decodeAttr(content.Attributes, name, target, &diags)
	}
	var ref string
	refAttr := str("plugin", &ref)
	if a := str("sha256", &pb.sha256); a != nil {
		if b, err := hex.DecodeString(pb.sha256); err != nil || len(b) != sha256.Size {
			errAt(a.Expr.Range(), "Invalid sha256", fmt.Sprintf("sha256 = %q is not 64 hexadecimal digits (the output of sha256sum).", pb.sha256))
		}
		pb.sha256 = strings.ToLower(pb.sha256) // either case is hexadecimal
	}
	var timeout string
	if a, n := decodeSize(content.Attributes, "memory_limit", &diags); a != nil {
		if n < 1<<20 || n > 4<<30 {
			errAt(a.Expr.Range(), "Invalid memory limit", fmt.Sprintf("memory_limit = %d bytes; use a size between \"1MiB\" and \"4GiB\".", n))
		}
		pb.limits.MemoryBytes = n
	}
	if a := str("call_timeout", &timeout); a != nil && timeout == "off" {
		pb.limits.NoCallTimeout = true
	} else if a != nil {
		d, err := time.ParseDuration(timeout)
		if err != nil || d <= 0 {
			errAt(a.Expr.Range(), "Invalid duration", fmt.Sprintf("call_timeout = %q is not a positive duration such as \"2s\", or \"off\".", timeout))
		}
		pb.limits.CallTimeout = d
	}
	if a, ok := content.Attributes["instances"]; ok {
		if kind != "format" {
			errAt(a.NameRange, "Unsupported argument", "instances applies to format blocks; a transport runs as one instance to keep order.")
		} else if d := gohcl.DecodeExpression(a.Expr, nil, &pb.instances); d.HasErrors() {
			diags = append(diags, d...)
		} else if pb.instances < 1 || pb.instances > 64 {
			errAt(a.Expr.Range(), "Value out of range", "instances must be between 1 and 64.")
		}
	}
	if a, ok := content.Attributes["ack_timeout"]; ok {
		var s string
		if kind != "transport" {
			errAt(a.NameRange, "Unsupported argument", "ack_timeout applies to transport blocks.")
		} else if str("ack_timeout", &s) != nil {
			d, err := time.ParseDuration(s)
			if err != nil || d < time.Second {
				errAt(a.Expr.Range(), "Invalid duration", fmt.Sprintf("ack_timeout = %q is not a duration of a second or more, such as \"60s\".", s))
			}
			pb.ackTimeout = d
		}
	}
	if a, ok := content.Attributes["format"]; ok {
		if kind != "transport" {
			errAt(a.NameRange, "Unsupported argument", "format applies to transport blocks.")
		} else {
			pb.formatAttr = str("format", &pb.format)
		}
	} else if kind == "transport" {
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
	if refAttr == nil || diags.HasErrors() {
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
	}
	cfg, d := decodePluginConfig(cfgBody, mod.Info(), baseDir)
	diags = append(diags, d...)
	if d.HasErrors() {
		return nil, diags
	}
	pb.config = cfg
	// Let the plugin check its configuration now (Configure does no I/O),
	// so that a bad value is an error at load, not at the first record.
	if err := checkConfigure(ctx, mod, cfg); err != nil {
		errAt(cfgRange, "Plugin rejected its configuration", fmt.Sprintf("%s: %v", ref, err))
		return nil, diags
	}
	return pb, diags
}

func checkConfigure(ctx context.Context, mod *wasm.Module, cfg []byte) error {
	inst, err := mod.NewInstance(ctx)
	if err != nil {
		return err
	}
	defer inst.Close(ctx)
	err = inst.Configure(ctx, cfg)
	var ce *wasm.CallError
	if errors.As(err, &ce) && !ce.Broken {
		return errors.New(ce.Msg)
	}
	return err
}

func decodeAllow(blk *hcl.Block, baseDir string, a *Allow) hcl.Diagnostics {
	content, diags := blk.Body.Content(allowSchema)
	for name, target := range map[string]*bool{"clock": &a.Clock, "stdout": &a.Stdout, "stderr": &a.Stderr} {
		if attr, ok := content.Attributes[name]; ok {
			diags = append(diags, gohcl.DecodeExpression(attr.Expr, nil, target)...)
		}
	}
	for _, blk := range content.Blocks {
		name := blk.Labels[0]
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
	if attr, ok := content.Attributes["directories"]; ok {
		var dirs []string
		if d := gohcl.DecodeExpression(attr.Expr, nil, &dirs); d.HasErrors() {
			return append(diags, d...)
		}
		for _, d := range dirs {
			if !filepath.IsAbs(d) {
				d = filepath.Join(baseDir, d)
			}
			// The directory is created at start, not here: validate
			// touches nothing.
			a.Directories = append(a.Directories, filepath.Clean(d))
		}
	}
	return diags
}

// decodePluginConfig decodes a config block against the fields the plugin
// declares and renders it as JSON.
func decodePluginConfig(body hcl.Body, info wasm.Info, baseDir string) (json.RawMessage, hcl.Diagnostics) {
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
			d = gohcl.DecodeExpression(attr.Expr, nil, &v)
			out[name] = v
		case "number":
			var v float64
			d = gohcl.DecodeExpression(attr.Expr, nil, &v)
			out[name] = v
		case "bool":
			var v bool
			d = gohcl.DecodeExpression(attr.Expr, nil, &v)
			out[name] = v
		case "list(string)":
			var v []string
			d = gohcl.DecodeExpression(attr.Expr, nil, &v)
			out[name] = v
		case "map(string)":
			var v map[string]string
			d = gohcl.DecodeExpression(attr.Expr, nil, &v)
			out[name] = v
		case "path":
			var v string
			d = gohcl.DecodeExpression(attr.Expr, nil, &v)
			if v != "" && !filepath.IsAbs(v) {
				v = filepath.Join(baseDir, v)
			}
			out[name] = v
		case "file":
			var p string
			d = gohcl.DecodeExpression(attr.Expr, nil, &p)
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
	b, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	return wasm.Load(ctx, b, wasm.Options{Name: name, Limits: limits.wasm(), SHA256: sha})
}

// wasm returns the limits as the plugin runtime takes them.
func (l PluginLimits) wasm() wasm.Limits {
	return wasm.Limits{MemoryBytes: l.MemoryBytes, CallTimeout: l.CallTimeout, NoCallTimeout: l.NoCallTimeout}
}

func decodeEndpoint(blk *hcl.Block, baseDir string) (EndpointConfig, hcl.Diagnostics) {
	var ep EndpointConfig
	content, diags := blk.Body.Content(endpointSchema)
	if diags.HasErrors() {
		return ep, diags
	}
	if a, ok := content.Attributes["address"]; ok {
		diags = append(diags, gohcl.DecodeExpression(a.Expr, nil, &ep.Address)...)
		if _, port, err := net.SplitHostPort(ep.Address); err != nil && !diags.HasErrors() {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid address",
				Detail: fmt.Sprintf("address = %q is not host:port.", ep.Address), Subject: a.Expr.Range().Ptr()})
		} else if err == nil && !dialPort(port) {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid port",
				Detail: fmt.Sprintf("address = %q: the port must be a number from 1 to 65535 (or a service name).", ep.Address), Subject: a.Expr.Range().Ptr()})
		}
	}
	for name, target := range map[string]*time.Duration{"dial_timeout": &ep.DialTimeout, "io_timeout": &ep.IOTimeout} {
		if a, ok := content.Attributes[name]; ok {
			var s string
			if d := gohcl.DecodeExpression(a.Expr, nil, &s); d.HasErrors() {
				diags = append(diags, d...)
				continue
			}
			v, err := time.ParseDuration(s)
			if err != nil || v <= 0 {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid duration",
					Detail: fmt.Sprintf("%s = %q is not a positive duration.", name, s), Subject: a.Expr.Range().Ptr()})
			}
			*target = v
		}
	}
	for _, tb := range content.Blocks {
		c, d := tb.Body.Content(tlsSchema)
		diags = append(diags, d...)
		t := &TLSConfig{}
		for name, target := range map[string]*string{"ca_file": &t.CAFile, "cert_file": &t.CertFile, "key_file": &t.KeyFile, "server_name": &t.ServerName} {
			if a, ok := c.Attributes[name]; ok {
				diags = append(diags, gohcl.DecodeExpression(a.Expr, nil, target)...)
				if name != "server_name" && *target != "" && !filepath.IsAbs(*target) {
					*target = filepath.Join(baseDir, *target)
				}
			}
		}
		if _, err := t.Build(); err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid TLS configuration",
				Detail: err.Error(), Subject: tb.DefRange.Ptr()})
		}
		ep.TLS = t
	}
	return ep, diags
}

func decodeSpool(blk *hcl.Block, baseDir string) (*SpoolConfig, hcl.Diagnostics) {
	content, diags := blk.Body.Content(spoolSchema)
	sc := &SpoolConfig{MaxBytes: 1 << 30, WhenFull: "block"}
	if a, ok := content.Attributes["dir"]; ok {
		diags = append(diags, gohcl.DecodeExpression(a.Expr, nil, &sc.Dir)...)
		if !filepath.IsAbs(sc.Dir) {
			sc.Dir = filepath.Join(baseDir, sc.Dir)
		}
	}
	if a, n := decodeSize(content.Attributes, "max_bytes", &diags); a != nil {
		if n == 0 {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid size",
				Detail: "max_bytes = 0: a spool needs room; use a size such as \"512MiB\".", Subject: a.Expr.Range().Ptr()})
		}
		sc.MaxBytes = int64(n)
	}
	if a, ok := content.Attributes["when_full"]; ok {
		diags = append(diags, gohcl.DecodeExpression(a.Expr, nil, &sc.WhenFull)...)
		if sc.WhenFull != "block" && sc.WhenFull != "drop_oldest" {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid policy",
				Detail: fmt.Sprintf("when_full = %q; use \"block\" or \"drop_oldest\".", sc.WhenFull), Subject: a.Expr.Range().Ptr()})
		}
	}
	return sc, diags
}
