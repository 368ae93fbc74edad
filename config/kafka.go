package config

import (
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// KafkaConfig is a Kafka cluster: granted to a transport by name
// (allow { kafka "name" { ... } }: the host's client produces for the
// plugin, which never reaches the brokers itself), or read by a log
// server (server { kafka { ... } }) as a member of a consumer group.
// docs/kafka.md has the whole story.
type KafkaConfig struct {
	// Brokers are the seed brokers, host:port (required).
	Brokers []string
	// Topics: for a grant, the topics the plugin may produce to; for a
	// server, the topics it reads (required).
	Topics []string
	// ClientID names the client to the brokers. Default "logtk".
	ClientID string
	// TLS, when set, connects to the brokers over TLS.
	TLS *TLSConfig
	// SASL, when set, authenticates to the brokers.
	SASL *SASLConfig
	// DialTimeout bounds a connection to a broker. Default 10s.
	DialTimeout time.Duration

	// A grant's producer:
	// Compression of produced batches: "none", "gzip", "snappy", "lz4"
	// or "zstd". Default "zstd".
	Compression string
	// Timeout is how long the brokers may acknowledge nothing while
	// records wait before a produce fails (the host then retries, and
	// spools when the transport has a spool). Default 30s.
	Timeout time.Duration

	// A server's consumer:
	// Group is the consumer group the server joins (required).
	Group string
	// Member names this server in the group's offset commits, where it
	// keeps what it committed last (docs/kafka.md): stable across its
	// restarts and distinct from the group's other servers. Default the
	// machine's hostname and the store directory's path, hashed.
	Member string
	// Application is what a record that is not logtk's (no identity
	// headers) is stored under. Default "kafka".
	Application string
	// SessionTimeout is how long the group waits for a member that stopped
	// answering (one that died) before its partitions go to the others.
	// Default 45s; the brokers bound it (group.min.session.timeout.ms,
	// 6s, and group.max.session.timeout.ms, 30m, by default).
	SessionTimeout time.Duration
}

// SASLConfig authenticates to Kafka brokers.
type SASLConfig struct {
	// Mechanism: "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512".
	Mechanism          string
	Username, Password string
}

// kafkaAttrs declares a kafka block's attributes; server says which use
// the block is for.
func kafkaAttrs(k *KafkaConfig, server bool) attrs {
	as := attrs{
		{"brokers", true, into(&k.Brokers, brokerList)},
		{"topics", true, into(&k.Topics, topicList)},
		{"client_id", false, into(&k.ClientID)},
		{"dial_timeout", false, duration(&k.DialTimeout, func(d time.Duration) bool { return d > 0 }, notPositive)},
	}
	if server {
		return append(as,
			attr{"group", true, into(&k.Group, groupName)},
			attr{"member", false, into(&k.Member, memberName)},
			attr{"session_timeout", false, duration(&k.SessionTimeout, func(d time.Duration) bool { return d >= time.Second && d <= 30*time.Minute }, func(name, s string) string {
				return fmt.Sprintf("%s = %q: use a duration from 1s to 30m.", name, s)
			})},
			attr{"application", false, into(&k.Application, applicationName)})
	}
	return append(as,
		attr{"compression", false, into(&k.Compression, oneOf("Invalid compression", `"none", "gzip", "snappy", "lz4" or "zstd"`, "none", "gzip", "snappy", "lz4", "zstd"))},
		attr{"timeout", false, duration(&k.Timeout, func(d time.Duration) bool { return d >= time.Second }, func(name, s string) string {
			return fmt.Sprintf("%s = %q: use a duration of at least 1s.", name, s)
		})})
}

func decodeKafka(blk *hcl.Block, baseDir string, server bool) (*KafkaConfig, hcl.Diagnostics) {
	k := &KafkaConfig{ClientID: "logtk", DialTimeout: 10 * time.Second, Compression: "zstd", Timeout: 30 * time.Second}
	if server {
		k.Compression, k.Timeout, k.Application, k.SessionTimeout = "", 0, "kafka", 45*time.Second
	}
	content, diags := kafkaAttrs(k, server).content(blk.Body, hcl.BlockHeaderSchema{Type: "tls"}, hcl.BlockHeaderSchema{Type: "sasl"})
	if content == nil {
		return k, diags
	}
	single := map[string]*hcl.Block{}
	for _, b := range content.Blocks {
		if d := oneOnly(single, b, " in a kafka block"); d != nil {
			diags = append(diags, d...)
			continue
		}
		switch b.Type {
		case "tls":
			t := &TLSConfig{}
			_, d := tlsAttrs(t, baseDir).lenient(b.Body)
			diags = append(diags, d...)
			if _, err := t.Build(); err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid TLS configuration",
					Detail: err.Error(), Subject: b.DefRange.Ptr()})
			}
			k.TLS = t
		case "sasl":
			s := &SASLConfig{}
			_, d := attrs{
				{"mechanism", true, into(&s.Mechanism, oneOf("Invalid SASL mechanism", `"PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512"`, "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"))},
				{"username", true, into(&s.Username, nonEmpty)},
				{"password", true, into(&s.Password)},
			}.content(b.Body)
			diags = append(diags, d...)
			k.SASL = s
		}
	}
	return k, diags
}

func brokerList(name string, v []string) (string, string) {
	if len(v) == 0 {
		return "No brokers", fmt.Sprintf("%s = []: name at least one broker, host:port.", name)
	}
	for _, b := range v {
		if s, d := dialAddress(name, b); s != "" {
			return s, d
		}
	}
	return "", ""
}

// topicList checks topic names as Kafka does: 1-249 of [a-zA-Z0-9._-],
// not "." or "..".
func topicList(name string, v []string) (string, string) {
	if len(v) == 0 {
		return "No topics", fmt.Sprintf("%s = []: name at least one topic.", name)
	}
	for _, t := range v {
		ok := len(t) > 0 && len(t) <= 249 && t != "." && t != ".."
		for _, c := range []byte(t) {
			ok = ok && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-')
		}
		if !ok {
			return "Invalid topic", fmt.Sprintf("%s: %q is not a Kafka topic name (1-249 letters, digits, '.', '_' or '-').", name, t)
		}
	}
	return "", ""
}

func nonEmpty(name, s string) (string, string) {
	if s == "" {
		return "Empty value", fmt.Sprintf("%s = \"\": a value is needed.", name)
	}
	return "", ""
}

func memberName(name, s string) (string, string) {
	ok := len(s) > 0 && len(s) <= 64
	for _, c := range []byte(s) {
		ok = ok && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-')
	}
	if !ok {
		return "Invalid member name", fmt.Sprintf("%s = %q must be 1-64 letters, digits, '.', '_' or '-'.", name, s)
	}
	return "", ""
}

// groupName checks a consumer group: the server keeps a file named after
// it beside its store.
func groupName(name, s string) (string, string) {
	ok := len(s) > 0 && len(s) <= 200
	for _, c := range []byte(s) {
		ok = ok && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-')
	}
	if !ok {
		return "Invalid group", fmt.Sprintf("%s = %q must be 1-200 letters, digits, '.', '_' or '-'.", name, s)
	}
	return "", ""
}
