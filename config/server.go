package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/logtk/logtk/internal/wire"
)

// ServerConfig is a server block: logtk-host as a log server receiving
// wire protocol v1 (docs/wire-protocol.md) from network transports.
type ServerConfig struct {
	// Listen is host:port. Required.
	Listen string
	// Dir receives a directory per sending application. Required.
	Dir string
	// Tokens are the accepted secrets (from tokens and token_file).
	Tokens [][]byte
	// Fsync: "batch" (default) syncs data and index before acknowledging
	// a batch; "none" acknowledges after the write.
	Fsync string
	// MaxBytes rotates a data file past this size. Default 1 GiB.
	MaxBytes int64
	// MaxOpenApplications bounds the application files the store keeps
	// open at once (two descriptors each; idle ones are closed to make
	// room). Default 256.
	MaxOpenApplications int
	// Limits; zero values take the server's defaults (4 MiB frames, 32 in
	// flight, 4096 authenticated connections, 64 unauthenticated ones, 5s
	// heartbeat, 5s to authenticate).
	MaxFrameBytes, MaxInFlight, MaxConns int
	MaxUnauthenticated                   int
	Heartbeat, AuthTimeout               time.Duration
	// TLS, when set, makes the listener TLS.
	TLS *ServerTLS
}

// ServerTLS configures the server's TLS. Files are PEM.
type ServerTLS struct {
	CertFile, KeyFile string
	// ClientCAFile, when set, requires client certificates signed by it.
	ClientCAFile string
}

// The range of max_frame_bytes: a frame must hold an AUTH and a batch, and
// each connection may hold one frame in memory.
const (
	minFrameBytes = 4 << 10
	maxFrameBytes = 64 << 20
)

var serverSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "listen", Required: true}, {Name: "dir", Required: true}, {Name: "tokens"}, {Name: "token_file"},
		{Name: "fsync"}, {Name: "max_bytes"}, {Name: "max_frame_bytes"}, {Name: "max_in_flight"},
		{Name: "max_connections"}, {Name: "max_unauthenticated"}, {Name: "max_open_applications"}, {Name: "heartbeat"}, {Name: "auth_timeout"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "tls"}},
}

func decodeServer(blk *hcl.Block, baseDir string) (*ServerConfig, hcl.Diagnostics) {
	content, diags := blk.Body.Content(serverSchema)
	if diags.HasErrors() {
		return nil, diags
	}
	sc := &ServerConfig{Fsync: "batch", MaxBytes: 1 << 30}
	errAt := func(a *hcl.Attribute, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: a.Expr.Range().Ptr()})
	}
	get := func(name string, target any) *hcl.Attribute {
		return decodeAttr(content.Attributes, name, target, &diags)
	}
	if a := get("listen", &sc.Listen); a != nil {
		if _, port, err := net.SplitHostPort(sc.Listen); err != nil {
			errAt(a, "Invalid address", fmt.Sprintf("listen = %q is not host:port.", sc.Listen))
		} else if _, err := net.LookupPort("tcp", port); err != nil {
			errAt(a, "Invalid port", fmt.Sprintf("listen = %q: the port must be a number from 0 to 65535 (or a service name).", sc.Listen))
		}
	}
	if get("dir", &sc.Dir) != nil && !filepath.IsAbs(sc.Dir) {
		sc.Dir = filepath.Join(baseDir, sc.Dir)
	}
	var tokens []string
	tokensAttr := get("tokens", &tokens)
	for _, t := range tokens {
		sc.Tokens = append(sc.Tokens, []byte(t))
	}
	var tokenFile string
	if a := get("token_file", &tokenFile); a != nil {
		if !filepath.IsAbs(tokenFile) {
			tokenFile = filepath.Join(baseDir, tokenFile)
		}
		b, err := readConfigFile(tokenFile)
		if err != nil {
			errAt(a, "Cannot read token file", err.Error())
		} else {
			for _, line := range strings.Split(string(b), "\n") {
				if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
					sc.Tokens = append(sc.Tokens, []byte(line))
				}
			}
		}
	}
	if len(sc.Tokens) == 0 && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No tokens",
			Detail: "A server needs tokens = [...] or token_file: without one it would refuse every client.", Subject: blk.DefRange.Ptr()})
	}
	for _, t := range sc.Tokens {
		var summary, detail string
		switch {
		case len(t) < 16:
			summary, detail = "Token too short", "Tokens must be at least 16 characters."
		case len(t) > wire.MaxTokenBytes:
			summary, detail = "Token too long", fmt.Sprintf("Tokens must be at most %d bytes: a client's AUTH frame is limited to %d bytes (docs/wire-protocol.md).", wire.MaxTokenBytes, wire.MaxAuthBytes)
		default:
			continue
		}
		rng := blk.DefRange
		if tokensAttr != nil {
			rng = tokensAttr.Expr.Range()
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: rng.Ptr()})
		break
	}
	if a := get("fsync", &sc.Fsync); a != nil && sc.Fsync != "batch" && sc.Fsync != "none" {
		errAt(a, "Invalid fsync", fmt.Sprintf("fsync = %q; use \"batch\" or \"none\".", sc.Fsync))
	}
	if a, n := decodeSize(content.Attributes, "max_bytes", &diags); a != nil {
		if n < 1<<20 {
			errAt(a, "Value out of range", fmt.Sprintf("max_bytes = %d bytes; a data file rotates at 1MiB at the least.", n))
		}
		sc.MaxBytes = int64(n)
	}
	if a, n := decodeSize(content.Attributes, "max_frame_bytes", &diags); a != nil {
		if n < minFrameBytes || n > maxFrameBytes {
			errAt(a, "Value out of range", fmt.Sprintf("max_frame_bytes = %d bytes; use a size from \"4KiB\" to \"64MiB\" (each connection may hold one frame of it in memory).", n))
		}
		sc.MaxFrameBytes = int(min(n, maxFrameBytes))
	}
	for _, limit := range []struct {
		name   string
		target *int
		max    int
	}{
		{"max_in_flight", &sc.MaxInFlight, 1 << 16},
		{"max_connections", &sc.MaxConns, 1 << 20},
		{"max_unauthenticated", &sc.MaxUnauthenticated, 1 << 16},
		{"max_open_applications", &sc.MaxOpenApplications, 1 << 16},
	} {
		if a := get(limit.name, limit.target); a != nil && (*limit.target < 1 || *limit.target > limit.max) {
			errAt(a, "Value out of range", fmt.Sprintf("%s = %d; it must be from 1 to %d.", limit.name, *limit.target, limit.max))
		}
	}
	for _, dur := range []struct {
		name     string
		target   *time.Duration
		min, max time.Duration
		why      string
	}{
		{"heartbeat", &sc.Heartbeat, time.Second, time.Hour, "logtk's network transport answers heartbeats once a second when idle"},
		{"auth_timeout", &sc.AuthTimeout, 100 * time.Millisecond, time.Minute, "a client that has not authenticated by then is closed"},
	} {
		var s string
		if a := get(dur.name, &s); a != nil {
			d, err := time.ParseDuration(s)
			if err != nil || d < dur.min || d > dur.max {
				errAt(a, "Invalid duration", fmt.Sprintf("%s = %q; use a duration from %s to %s (%s).", dur.name, s, dur.min, dur.max, dur.why))
			}
			*dur.target = d
		}
	}
	for _, tb := range content.Blocks {
		c, d := tb.Body.Content(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{
			{Name: "cert_file", Required: true}, {Name: "key_file", Required: true}, {Name: "client_ca_file"}}})
		diags = append(diags, d...)
		t := &ServerTLS{}
		for name, target := range map[string]*string{"cert_file": &t.CertFile, "key_file": &t.KeyFile, "client_ca_file": &t.ClientCAFile} {
			if a, ok := c.Attributes[name]; ok {
				diags = append(diags, gohcl.DecodeExpression(a.Expr, nil, target)...)
				if *target != "" && !filepath.IsAbs(*target) {
					*target = filepath.Join(baseDir, *target)
				}
			}
		}
		if _, err := t.Build(); err != nil && !diags.HasErrors() {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid TLS configuration", Detail: err.Error(), Subject: tb.DefRange.Ptr()})
		}
		sc.TLS = t
	}
	return sc, diags
}

// Build reads the files and returns the server's TLS configuration.
func (t *ServerTLS) Build() (*tls.Config, error) {
	cert, err := loadKeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, err
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.ClientCAFile != "" {
		pem, err := readConfigFile(t.ClientCAFile)
		if err != nil {
			return nil, err
		}
		c.ClientCAs = x509.NewCertPool()
		if !c.ClientCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", t.ClientCAFile)
		}
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}
