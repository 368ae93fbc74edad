package host

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/wire"
	"github.com/logtk/logtk/sdk/plugintest"
)

// TestServerStages: what the server stores also goes through the stages
// of its configuration (here text -> file, a live human-readable copy); a
// malformed record is stored, kept from the stages, and logged.
func TestServerStages(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "tail", "live.log")
	cfg := &Config{
		Server:  &ServerConfig{Listen: "127.0.0.1:0", Dir: filepath.Join(dir, "received"), Tokens: [][]byte{[]byte("tok")}, Fsync: "batch", MaxBytes: 1 << 30},
		Formats: []FormatConfig{{Name: "text", Plugin: plugintest.Build(t, "../plugins/text/plugin")}},
		Transports: []TransportConfig{{Name: "tail", Plugin: plugintest.Build(t, "../plugins/file/plugin"), Format: "text",
			Config: []byte(fmt.Sprintf(`{"path":%q}`, out)), Allow: Allow{Directories: []string{filepath.Dir(out)}}}},
		DeadLetterDir: filepath.Join(dir, "dead"),
	}
	logs := &syncBuffer{}
	ls, err := Serve(cfg, hclog.New(&hclog.LoggerOptions{Output: logs}))
	if err != nil {
		t.Fatal(err)
	}
	var batch []byte
	for _, m := range []string{"first", "second"} {
		rec := record.AppendHead(nil, time.Unix(1700000000, 0), record.LevelWarn, m, "")
		batch = entries.Append(batch, record.AppendStamp(rec, &record.Stamp{Worker: "web", Seq: 1}))
	}
	batch = entries.Append(batch, []byte{0x0a, 0x05, 'x'}) // a string field longer than the record
	if err := wire.SendLoad(wire.Load{Addr: ls.Addr().String(), Token: []byte("tok"), Sender: "s", Application: "app",
		Format: "logtk.v1.Record", Batch: batch, Batches: 1, InFlight: 1}); err != nil {
		t.Fatal(err)
	}
	if err := ls.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	if got := string(b); strings.Count(got, "\n") != 2 || !strings.Contains(got, "WARN  s/app web#0 first") || !strings.Contains(got, "second") {
		t.Fatalf("live copy:\n%s", got)
	}
	if l := logs.String(); !strings.Contains(l, "malformed records: stored, not passed to the stages") || !strings.Contains(l, "records=1") {
		t.Fatalf("the malformed record was not reported; server log:\n%s", l)
	}
}

// TestServerConfigTokenTooLong: a token that could not fit in a client's
// AUTH frame (wire.MaxTokenBytes) is a configuration error at its
// position, not a server that refuses that client for ever.
func TestServerConfigTokenTooLong(t *testing.T) {
	src := fmt.Sprintf("server {\n  listen = \"127.0.0.1:0\"\n  dir    = \"received\"\n  tokens = [%q]\n}\n", strings.Repeat("t", wire.MaxTokenBytes+1))
	_, err := ParseConfig([]byte(src), "server.hcl")
	if err == nil {
		t.Fatal("a token longer than wire.MaxTokenBytes was accepted")
	}
	if got := FormatDiagnostics(err); !strings.HasPrefix(got, "server.hcl:4:12: error: Token too long;") {
		t.Fatalf("diagnostics:\n%s", got)
	}
}
