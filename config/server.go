package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

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
	// Syslog, when set, also receives syslog (docs/syslog.md).
	Syslog *SyslogConfig
	// OTLP, when set, also receives OpenTelemetry logs (docs/otlp.md).
	OTLP *OTLPConfig
	// Kafka, when set, also reads topics as a member of a consumer group
	// (docs/kafka.md).
	Kafka *KafkaConfig
}

// OTLPConfig is a server's otlp block: OTLP/HTTP and OTLP/gRPC receivers
// of logs.
type OTLPConfig struct {
	// HTTP is host:port for OTLP/HTTP; requests go to /v1/logs. GRPC is
	// host:port for OTLP/gRPC (the LogsService). At least one.
	HTTP, GRPC string
	// Application is what the records are stored under. Default "otlp".
	Application string
	// ByServiceName stores each record under its resource's
	// service.name instead, when that is a valid application name.
	ByServiceName bool
	// MaxRequestBytes bounds a request (a gRPC message) once
	// decompressed. Default 4 MiB.
	MaxRequestBytes int
	// TLS, when set, makes both receivers TLS (HTTPS, gRPC over TLS).
	TLS *ServerTLS
}

// SyslogConfig is a server's syslog block: listeners for syslog messages
// (RFC 5424 and RFC 3164), each stored as a logtk record.
type SyslogConfig struct {
	// TCP is host:port for TCP (RFC 6587 framing: octet counting or a
	// message a line); UDP is host:port for UDP (RFC 5426). At least one.
	TCP, UDP string
	// Application is what the messages are stored under. Default
	// "syslog".
	Application string
	// ByAppName stores each message under its APP-NAME (the TAG of a BSD
	// message) instead, when that is a valid application name; the
	// others go under Application.
	ByAppName bool
	// MaxMessageBytes bounds a message: a longer one is stored cut, with
	// an error attribute saying so. Default 64 KiB.
	MaxMessageBytes int
	// TLS, when set, makes the TCP listener TLS (RFC 5425).
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

// serverAttrs declares a server block's attributes. Tokens are gathered
// from two attributes, so they are checked after decoding.
func serverAttrs(sc *ServerConfig, baseDir string, tokens *[]string, fileTokens *[][]byte) attrs {
	frame := func(name string, n uint64) (string, string) {
		if n < minFrameBytes || n > maxFrameBytes {
			return "Value out of range", fmt.Sprintf("%s = %d bytes; use a size from \"4KiB\" to \"64MiB\" (each connection may hold one frame of it in memory).", name, n)
		}
		return "", ""
	}
	rotate := func(name string, n uint64) (string, string) {
		if n < 1<<20 {
			return "Value out of range", fmt.Sprintf("%s = %d bytes; a data file rotates at 1MiB at the least.", name, n)
		}
		return "", ""
	}
	within := func(target *time.Duration, lo, hi time.Duration, why string) func(*hcl.Attribute) hcl.Diagnostics {
		return duration(target, func(d time.Duration) bool { return d >= lo && d <= hi }, func(name, s string) string {
			return fmt.Sprintf("%s = %q; use a duration from %s to %s (%s).", name, s, lo, hi, why)
		})
	}
	return attrs{
		{"listen", true, into(&sc.Listen, listenAddress)},
		{"dir", true, path(&sc.Dir, baseDir)},
		{"tokens", false, into(tokens)},
		{"token_file", false, tokenFile(fileTokens, baseDir)},
		{"fsync", false, into(&sc.Fsync, oneOf("Invalid fsync", `"batch" or "none"`, "batch", "none"))},
		{"max_bytes", false, size(&sc.MaxBytes, rotate)},
		{"max_frame_bytes", false, size(&sc.MaxFrameBytes, frame)},
		{"max_in_flight", false, into(&sc.MaxInFlight, fromTo(1, 1<<16))},
		{"max_connections", false, into(&sc.MaxConns, fromTo(1, 1<<20))},
		{"max_unauthenticated", false, into(&sc.MaxUnauthenticated, fromTo(1, 1<<16))},
		{"max_open_applications", false, into(&sc.MaxOpenApplications, fromTo(1, 1<<16))},
		{"heartbeat", false, within(&sc.Heartbeat, time.Second, time.Hour, "logtk's network transport answers heartbeats once a second when idle")},
		{"auth_timeout", false, within(&sc.AuthTimeout, 100*time.Millisecond, time.Minute, "a client that has not authenticated by then is closed")},
	}
}

// listenAddress checks a host:port to listen on.
func listenAddress(name, addr string) (string, string) {
	if _, port, err := net.SplitHostPort(addr); err != nil {
		return "Invalid address", fmt.Sprintf("%s = %q is not host:port.", name, addr)
	} else if _, err := net.LookupPort("tcp", port); err != nil {
		return "Invalid port", fmt.Sprintf("%s = %q: the port must be a number from 0 to 65535 (or a service name).", name, addr)
	}
	return "", ""
}

// tokenFile reads a file of tokens, one a line ("#" starts a comment line).
func tokenFile(target *[][]byte, baseDir string) func(*hcl.Attribute) hcl.Diagnostics {
	return func(a *hcl.Attribute) hcl.Diagnostics {
		var name string
		if d := path(&name, baseDir)(a); d.HasErrors() {
			return d
		}
		b, err := readConfigFile(name)
		if err != nil {
			return valueError(a, "Cannot read token file", "%s", err.Error())
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				*target = append(*target, []byte(line))
			}
		}
		return nil
	}
}

func serverTLSAttrs(t *ServerTLS, baseDir string) attrs {
	return attrs{
		{"cert_file", true, path(&t.CertFile, baseDir)},
		{"key_file", true, path(&t.KeyFile, baseDir)},
		{"client_ca_file", false, path(&t.ClientCAFile, baseDir)},
	}
}

func decodeServer(blk *hcl.Block, baseDir string) (*ServerConfig, hcl.Diagnostics) {
	sc := &ServerConfig{Fsync: "batch", MaxBytes: 1 << 30}
	var tokens []string
	var fileTokens [][]byte
	content, diags := serverAttrs(sc, baseDir, &tokens, &fileTokens).content(blk.Body, hcl.BlockHeaderSchema{Type: "tls"}, hcl.BlockHeaderSchema{Type: "syslog"}, hcl.BlockHeaderSchema{Type: "otlp"},
		hcl.BlockHeaderSchema{Type: "kafka"})
	if content == nil {
		return nil, diags
	}
	for _, t := range tokens {
		sc.Tokens = append(sc.Tokens, []byte(t))
	}
	sc.Tokens = append(sc.Tokens, fileTokens...)
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
		if a, ok := content.Attributes["tokens"]; ok {
			rng = a.Expr.Range()
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: rng.Ptr()})
		break
	}
	single := map[string]*hcl.Block{}
	for _, tb := range content.Blocks {
		if d := oneOnly(single, tb, " in a server block"); d != nil {
			diags = append(diags, d...)
			continue
		}
		var d hcl.Diagnostics
		switch tb.Type {
		case "otlp":
			sc.OTLP, d = decodeOTLP(tb, baseDir)
		case "syslog":
			sc.Syslog, d = decodeSyslog(tb, baseDir)
		case "kafka":
			sc.Kafka, d = decodeKafka(tb, baseDir, true)
		default:
			sc.TLS, d = decodeServerTLS(tb, baseDir)
		}
		diags = append(diags, d...)
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

// applicationName checks a name the store keeps a directory for.
func applicationName(name, s string) (string, string) {
	if !wire.ValidName(s) {
		return "Invalid application", fmt.Sprintf("%s = %q must be 1-128 letters, digits, '.', '_' or '-'.", name, s)
	}
	return "", ""
}

// decodeServerTLS decodes a tls block of a server's listener.
func decodeServerTLS(tb *hcl.Block, baseDir string) (*ServerTLS, hcl.Diagnostics) {
	t := &ServerTLS{}
	_, diags := serverTLSAttrs(t, baseDir).content(tb.Body)
	if _, err := t.Build(); err != nil && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid TLS configuration", Detail: err.Error(), Subject: tb.DefRange.Ptr()})
	}
	return t, diags
}

func decodeSyslog(blk *hcl.Block, baseDir string) (*SyslogConfig, hcl.Diagnostics) {
	sl := &SyslogConfig{Application: "syslog", MaxMessageBytes: 64 << 10}
	msgSize := func(name string, n uint64) (string, string) {
		if n < 480 || n > 16<<20 {
			return "Value out of range", fmt.Sprintf("%s = %d bytes; use a size from 480 (the least RFC 5424 allows) to \"16MiB\".", name, n)
		}
		return "", ""
	}
	content, diags := attrs{
		{"tcp", false, into(&sl.TCP, listenAddress)},
		{"udp", false, into(&sl.UDP, listenAddress)},
		{"application", false, into(&sl.Application, applicationName)},
		{"by_app_name", false, into(&sl.ByAppName)},
		{"max_message_bytes", false, size(&sl.MaxMessageBytes, msgSize)},
	}.content(blk.Body, hcl.BlockHeaderSchema{Type: "tls"})
	if content == nil {
		return nil, diags
	}
	if sl.TCP == "" && sl.UDP == "" {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No syslog listener",
			Detail: "A syslog block needs tcp = \"host:port\", udp = \"host:port\", or both.", Subject: blk.DefRange.Ptr()})
	}
	for _, tb := range content.Blocks {
		var d hcl.Diagnostics
		sl.TLS, d = decodeServerTLS(tb, baseDir)
		diags = append(diags, d...)
	}
	return sl, diags
}

func decodeOTLP(blk *hcl.Block, baseDir string) (*OTLPConfig, hcl.Diagnostics) {
	o := &OTLPConfig{Application: "otlp", MaxRequestBytes: 4 << 20}
	reqSize := func(name string, n uint64) (string, string) {
		if n < 4<<10 || n > 256<<20 {
			return "Value out of range", fmt.Sprintf("%s = %d bytes; use a size from \"4KiB\" to \"256MiB\".", name, n)
		}
		return "", ""
	}
	content, diags := attrs{
		{"http", false, into(&o.HTTP, listenAddress)},
		{"grpc", false, into(&o.GRPC, listenAddress)},
		{"application", false, into(&o.Application, applicationName)},
		{"by_service_name", false, into(&o.ByServiceName)},
		{"max_request_bytes", false, size(&o.MaxRequestBytes, reqSize)},
	}.content(blk.Body, hcl.BlockHeaderSchema{Type: "tls"})
	if content == nil {
		return nil, diags
	}
	if o.HTTP == "" && o.GRPC == "" {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No OTLP receiver",
			Detail: "An otlp block needs http = \"host:port\" (OTLP/HTTP), grpc = \"host:port\" (OTLP/gRPC), or both.", Subject: blk.DefRange.Ptr()})
	}
	for _, tb := range content.Blocks {
		var d hcl.Diagnostics
		o.TLS, d = decodeServerTLS(tb, baseDir)
		diags = append(diags, d...)
	}
	return o, diags
}
