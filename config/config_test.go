package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logtk/logtk/plugins/builtin"

	"github.com/logtk/logtk/internal/wire"
	"github.com/logtk/logtk/plugins/protobuf/protobuftest"
	"github.com/logtk/logtk/sdk/plugintest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestConfigGolden runs every testdata/config/<case>/plugins.hcl through
// Parse and compares the diagnostics (expected.err) or the decoded
// configuration (expected.out) with the golden file.
func TestConfigGolden(t *testing.T) {
	usePluginDir(t)
	dirs, err := filepath.Glob("testdata/config/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			path := filepath.Join(dir, "plugins.hcl")
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Parse(src, path)
			var got, golden string
			if err != nil {
				got, golden = FormatDiagnostics(err), filepath.Join(dir, "expected.err")
			} else {
				b, _ := json.MarshalIndent(cfg, "", "  ")
				got, golden = string(b)+"\n", filepath.Join(dir, "expected.out")
			}
			abs, _ := filepath.Abs(dir)
			got = strings.ReplaceAll(got, abs, "$CASE_DIR")
			got = strings.ReplaceAll(got, os.Getenv("LOGTK_PLUGIN_DIR"), "$PLUGIN_DIR")
			if *update {
				os.Remove(filepath.Join(dir, "expected.err"))
				os.Remove(filepath.Join(dir, "expected.out"))
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (output was:\n%s)", err, got)
			}
			if got != string(want) {
				t.Fatalf("%s differs; got:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

// FuzzParse: no input makes the configuration loader panic, and every
// error it returns points into the file.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/config/*/plugins.hcl")
	for _, s := range seeds {
		b, _ := os.ReadFile(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		_, err := Parse(src, "fuzz.hcl")
		if err == nil {
			return
		}
		for i, line := range strings.Split(strings.TrimSuffix(FormatDiagnostics(err), "\n"), "\n") {
			if !strings.HasPrefix(line, "fuzz.hcl:") && (i == 0 || !strings.HasPrefix(line, "    ") || strings.TrimSpace(line) == "") {
				t.Fatalf("diagnostic without a position: %q", line)
			}
		}
	})
}

// usePluginDir makes the built-in plugins findable: make test sets
// LOGTK_PLUGIN_DIR; a plain go test builds them here (all but those
// compiled into logtk-host, which a module here would override).
func usePluginDir(t *testing.T) {
	if os.Getenv("LOGTK_PLUGIN_DIR") != "" {
		return
	}
	dir := t.TempDir()
	for _, name := range builtinPlugins {
		if _, ok := builtin.Module(name); ok {
			continue
		}
		src := plugintest.Build(t, filepath.Join("..", "plugins", name, "plugin"))
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".wasm"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("LOGTK_PLUGIN_DIR", dir)
}

// TestConfigNamesOddFiles: a plugin or a plugin's file field that names a
// FIFO is refused at once (validate hung on it, issue 14), and a module's
// sha256 may be given in upper case.
func TestConfigNamesOddFiles(t *testing.T) {
	usePluginDir(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := builtin.Module("text")
	sum := sha256.Sum256(b)
	for _, tc := range []struct{ src, want string }{
		{`format "f" { plugin = "./fifo" }`, `plugins.hcl:1:23: error: Plugin not found; ` + fifo + ` is a named pipe (FIFO), not a regular file`},
		{"format \"f\" {\n  plugin = \"protobuf\"\n  config { schema = \"fifo\" }\n}", `plugins.hcl:3:21: error: Cannot read file; schema: ` + fifo + ` is a named pipe (FIFO), not a regular file`},
		{fmt.Sprintf("format \"f\" {\n  plugin = \"text\"\n  sha256 = %q\n}", strings.ToUpper(hex.EncodeToString(sum[:]))), ""},
		{"format \"f\" { plugin = \"protobuf\" }\ntransport \"t\" {\n  plugin = \"network\"\n  format = \"f\"\n  config {\n    endpoint = \"e\"\n    token = \"a-token-of-20-chars!\"\n    sender = \"s\"\n    application = \"a\"\n  }\n  allow {\n    endpoint \"e\" {\n      address = \"127.0.0.1:7400\"\n      tls { ca_file = \"fifo\" }\n    }\n  }\n}",
			fifo + ` is a named pipe (FIFO), not a regular file`},
		{"format \"f\" { plugin = \"protobuf\" }\ntransport \"t\" {\n  plugin = \"network\"\n  format = \"f\"\n  config {\n    endpoint = \"e\"\n    token = \"a-token-of-20-chars!\"\n    sender = \"s\"\n    application = \"a\"\n  }\n  allow {\n    endpoint \"e\" { address = \"127.0.0.1:99999\" }\n  }\n}",
			`plugins.hcl:12:30: error: Invalid port; address = "127.0.0.1:99999": the port must be a number from 1 to 65535`},
		{"server {\n  listen = \"127.0.0.1:0\"\n  dir = \"d\"\n  tokens = [\"a-token-of-20-chars!\"]\n  tls {\n    cert_file = \"fifo\"\n    key_file = \"fifo\"\n  }\n}",
			fifo + ` is a named pipe (FIFO), not a regular file`},
	} {
		path := filepath.Join(dir, "plugins.hcl")
		done := make(chan error, 1)
		go func() {
			_, err := Parse([]byte(tc.src), path)
			done <- err
		}()
		select {
		case err := <-done:
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("%s: %v", tc.src, FormatDiagnostics(err))
			case tc.want != "" && (err == nil || !strings.Contains(FormatDiagnostics(err), tc.want)):
				t.Errorf("%s: got %v, want %q", tc.src, err, tc.want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: Parse hangs", tc.src)
		}
	}
	// The configuration file itself.
	done := make(chan error, 1)
	go func() { _, err := Load(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "named pipe") {
			t.Errorf("Load of a FIFO: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Load of a FIFO hangs")
	}
}

// TestServerConfigTokenTooLong: a token that could not fit in a client's
// AUTH frame (wire.MaxTokenBytes) is a configuration error at its
// position, not a server that refuses that client for ever.
func TestServerConfigTokenTooLong(t *testing.T) {
	src := fmt.Sprintf("server {\n  listen = \"127.0.0.1:0\"\n  dir    = \"received\"\n  tokens = [%q]\n}\n", strings.Repeat("t", wire.MaxTokenBytes+1))
	_, err := Parse([]byte(src), "server.hcl")
	if err == nil {
		t.Fatal("a token longer than wire.MaxTokenBytes was accepted")
	}
	if got := FormatDiagnostics(err); !strings.HasPrefix(got, "server.hcl:4:12: error: Token too long;") {
		t.Fatalf("diagnostics:\n%s", got)
	}
}

// TestEnvFunctions: a configuration takes per-machine values from the
// environment and the host name, and an unset variable without a default
// is an error at its position that names it.
func TestEnvFunctions(t *testing.T) {
	t.Setenv("LOGTK_TEST_ARG", "from-env")
	os.Unsetenv("LOGTK_TEST_UNSET")
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src := `worker "w" {
  command = "/bin/true"
  args    = [env("LOGTK_TEST_ARG"), env("LOGTK_TEST_UNSET", "fallback"), "${hostname()}-${env("LOGTK_TEST_ARG")}"]
  cwd     = env("LOGTK_TEST_UNSET", "` + dir + `")
}
`
	cfg, err := Parse([]byte(src), filepath.Join(dir, "plugins.hcl"))
	if err != nil {
		t.Fatal(FormatDiagnostics(err))
	}
	w := cfg.Workers[0]
	if want := []string{"from-env", "fallback", host + "-from-env"}; !slices.Equal(w.Args, want) || w.Dir != dir {
		t.Fatalf("args %q, cwd %q; want %q, %q", w.Args, w.Dir, want, dir)
	}

	_, err = Parse([]byte("worker \"w\" {\n  command = \"/bin/true\"\n  args    = [env(\"LOGTK_TEST_UNSET\")]\n}\n"), "plugins.hcl")
	want := `plugins.hcl:3:14: error: Error in function call; Call to function "env" failed: the environment variable LOGTK_TEST_UNSET is not set; set it, or give a default: env("LOGTK_TEST_UNSET", "...").`
	if got := FormatDiagnostics(err); !strings.HasPrefix(got, want) {
		t.Fatalf("unset variable:\n%s\nwant:\n%s", got, want)
	}
}

// TestEmbeddedPlugins: a built-in compiled into logtk-host resolves to
// its embedded module (builtin:NAME), which is what runs; a module of
// its name in plugin_dir, or in LOGTK_PLUGIN_DIR, overrides it, and
// one beside the configuration (bin/plugins) does not.
func TestEmbeddedPlugins(t *testing.T) {
	t.Setenv("LOGTK_PLUGIN_DIR", "")
	dir := t.TempDir()
	other, err := os.ReadFile("../examples/clogfmt/clogfmt.wasm") // a format plugin of another name
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"mine", "env", "bin/plugins"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, d, "json.wasm"), other, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "plugins.hcl")
	for _, tc := range []struct{ pluginDir, env, want string }{
		{"", "", builtin.Path("json")},
		{"mine", "", filepath.Join(dir, "mine", "json.wasm")},
		{"", filepath.Join(dir, "env"), filepath.Join(dir, "env", "json.wasm")},
	} {
		t.Setenv("LOGTK_PLUGIN_DIR", tc.env)
		src := "format \"j\" { plugin = \"json\" }\n"
		if tc.pluginDir != "" {
			src = fmt.Sprintf("plugin_dir = %q\n", tc.pluginDir) + src
		}
		cfg, err := Parse([]byte(src), path)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if got := cfg.Formats[0].Plugin; got != tc.want {
			t.Errorf("%+v: plugin %s, want %s", tc, got, tc.want)
		}
		b, err := ReadPlugin(cfg.Formats[0].Plugin)
		if err != nil {
			t.Fatal(err)
		}
		if embedded, _ := builtin.Module("json"); bytes.Equal(b, embedded) != (tc.want == builtin.Path("json")) {
			t.Errorf("%+v: ReadPlugin read the wrong module", tc)
		}
	}
}

// TestConfigureTrapIsThePlugins: a plugin that traps checking its
// configuration, or answers a status other than 2, is reported as
// failing, not as refusing the configuration (docs/plugin-abi.md); one
// that answers status 2 is.
func TestConfigureTrapIsThePlugins(t *testing.T) {
	raw := plugintest.Build(t, filepath.Join("..", "internal", "wasm", "testdata", "raw"))
	dir := t.TempDir()
	path := filepath.Join(dir, "plugins.hcl")
	for lie, want := range map[string]string{
		"configure":   "plugins.hcl:3,3-9: Plugin failed checking its configuration; " + raw + ": plugin[format f] call[logtk_configure] failed: trapped",
		"configure 2": "plugins.hcl:3,3-9: Plugin rejected its configuration; " + raw + ": lie: not a lie I know",
		"configure 3": "plugins.hcl:3,3-9: Plugin failed checking its configuration; " + raw + ": plugin[format f] call[logtk_configure] failed: out of memory",
		"configure 9": "plugins.hcl:3,3-9: Plugin failed checking its configuration; " + raw + ": plugin[format f] call[logtk_configure] failed: a status of my own",
		"nothing":     "",
	} {
		os.WriteFile(path, fmt.Appendf(nil, "format \"f\" {\n  plugin = %q\n  config { lie = %q }\n}\n", raw, lie), 0o644)
		_, err := Load(path)
		switch {
		case want == "" && err != nil:
			t.Errorf("lie %q: %v", lie, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("lie %q: %v, want %q", lie, err, want)
		}
	}
}

// TestPathOutsideGrants: a transport's path field outside the
// directories it is granted is an error at its file:line:col (the
// plugin could never reach it; validate accepted it, and the first
// write failed with "Capabilities insufficient").
func TestPathOutsideGrants(t *testing.T) {
	usePluginDir(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "plugins.hcl")
	for _, tc := range []struct{ path, allow, want string }{
		{"logs/app.log", `["logs"]`, ""},
		{"logs/deep/er/app.log", `["logs"]`, ""},
		{"/tmp/elsewhere.log", `["logs"]`, `plugins.hcl:4:19: error: Path outside the granted directories; path = "/tmp/elsewhere.log" is not inside a directory this transport is granted (allow { directories = ["` + dir + `/logs"] })`},
		{"logs/../app.log", `["logs"]`, `Path outside the granted directories; path = "` + dir + `/app.log"`},
		{"logsbis/app.log", `["logs"]`, "Path outside the granted directories"},
		{"app.log", `[]`, `allow { directories = [] }`},
	} {
		src := fmt.Sprintf("format \"t\" { plugin = \"text\" }\ntransport \"f\" {\n  plugin = \"file\"\n  config { path = %q }\n  format = \"t\"\n  allow { directories = %s }\n}\n", tc.path, tc.allow)
		os.WriteFile(path, []byte(src), 0o644)
		_, err := Load(path)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.path, err)
		case tc.want != "" && (err == nil || !strings.Contains(FormatDiagnostics(err), tc.want)):
			t.Errorf("%s: %v, want %q", tc.path, err, tc.want)
		}
	}
	// An absolute path is cleaned as a relative one is: the plugin
	// resolves it a component at a time, and "missing/.." must not need
	// missing.
	src := fmt.Sprintf("format \"t\" { plugin = \"text\" }\ntransport \"f\" {\n  plugin = \"file\"\n  config { path = %q }\n  format = \"t\"\n  allow { directories = [\"logs\"] }\n}\n", dir+"/logs/missing/../app.log")
	os.WriteFile(path, []byte(src), 0o644)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(cfg.Transports[0].Config), `{"path":"`+dir+`/logs/app.log"}`; got != want {
		t.Errorf("config %s, want %s", got, want)
	}
}

// TestKafkaFormatByWhatItWrites: the kafka transport takes a format by
// what it writes, not by its plugin's name: a module of the user's that
// writes logtk.v1.Record (here the protobuf module under another name,
// which the check by name refused) is accepted; the protobuf plugin with
// a user's schema is refused at the transport's format attribute.
func TestKafkaFormatByWhatItWrites(t *testing.T) {
	usePluginDir(t)
	dir := t.TempDir()
	pb, ok := builtin.Module("protobuf")
	if !ok {
		t.Fatal("no built-in protobuf module")
	}
	schema, _, err := protobuftest.UserSchema()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "records.wasm"), pb, 0o644)
	os.WriteFile(filepath.Join(dir, "user.binpb"), schema, 0o644)
	const transport = `transport "k" {
  plugin = "kafka"
  format = "f"
  config {
    cluster     = "events"
    topic       = "logs"
    sender      = "web-1"
    application = "shop"
  }
  allow {
    kafka "events" {
      brokers = ["k1.internal:9092"]
      topics  = ["logs"]
    }
  }
}
`
	path := filepath.Join(dir, "plugins.hcl")
	for format, want := range map[string]string{
		"format \"f\" {\n  plugin = \"records.wasm\"\n}\n": "",
		"format \"f\" {\n  plugin = \"protobuf\"\n  config {\n    schema  = \"user.binpb\"\n    message = \"cluster.LoggableMessage\"\n  }\n}\n": `plugins.hcl:10,12-15: Wrong format for the kafka transport; transport "k" sends logtk.v1.Record values: its format must write each record as one (the protobuf plugin without a schema does); format "f" (the built-in protobuf plugin) wrote a sample record as`,
		"format \"f\" {\n  plugin = \"json\"\n}\n": `plugins.hcl:6,12-15: Wrong format for the kafka transport`,
	} {
		os.WriteFile(path, []byte(format+transport), 0o644)
		_, err := Load(path)
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", format, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: %v, want %q", format, err, want)
		}
	}
}
