package logserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/entries"
	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/testlog"
	"github.com/logtk/logtk/internal/wire"
	"github.com/logtk/logtk/record"
	"github.com/logtk/logtk/sdk/plugintest"
)

// TestServerStages: what the server stores also goes through the stages
// of its configuration (here text -> file, a live human-readable copy); a
// malformed record is stored, kept from the stages, and logged.
func TestServerStages(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "tail", "live.log")
	cfg := &config.Config{
		Server:  &config.ServerConfig{Listen: "127.0.0.1:0", Dir: filepath.Join(dir, "received"), Tokens: [][]byte{[]byte("tok")}, Fsync: "batch", MaxBytes: 1 << 30},
		Formats: []config.FormatConfig{{Name: "text", Plugin: plugintest.Build(t, "../plugins/text/plugin")}},
		Transports: []config.TransportConfig{{Name: "tail", Plugin: plugintest.Build(t, "../plugins/file/plugin"), Format: "text",
			Config: []byte(fmt.Sprintf(`{"path":%q}`, out)), Allow: config.Allow{Directories: []string{filepath.Dir(out)}}}},
		DeadLetterDir: filepath.Join(dir, "dead"),
	}
	logs := &testlog.Buffer{}
	ls, err := New(cfg, Options{Logger: hclog.New(&hclog.LoggerOptions{Output: logs})})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ls.Serve(ln) }()
	var batch []byte
	for _, m := range []string{"first", "second"} {
		rec := irecord.AppendHead(nil, time.Unix(1700000000, 0), record.LevelWarn, m, "")
		batch = entries.Append(batch, irecord.AppendStamp(rec, &irecord.Stamp{Worker: "web", Seq: 1}))
	}
	batch = entries.Append(batch, []byte{0x0a, 0x05, 'x'}) // a string field longer than the record
	if err := wire.SendLoad(wire.Load{Addr: ls.Addr().String(), Token: []byte("tok"), Sender: "s", Application: "app",
		Format: "logtk.v1.Record", Batch: batch, Batches: 1, InFlight: 1}); err != nil {
		t.Fatal(err)
	}
	if err := ls.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != ErrServerClosed {
		t.Fatalf("Serve returned %v after Shutdown, want ErrServerClosed", err)
	}
	b, _ := os.ReadFile(out)
	if got := string(b); strings.Count(got, "\n") != 2 || !strings.Contains(got, "WARN  s/app web#0 first") || !strings.Contains(got, "second") {
		t.Fatalf("live copy:\n%s", got)
	}
	if l := logs.String(); !strings.Contains(l, "malformed records: stored, not passed to the stages") || !strings.Contains(l, "records=1") {
		t.Fatalf("the malformed record was not reported; server log:\n%s", l)
	}
}

// TestServerMetrics: a scrape counts the batches, records and bytes
// stored, the duplicates dropped and the syncs made.
func TestServerMetrics(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	cfg := &config.Config{Server: &config.ServerConfig{Listen: "127.0.0.1:0", Dir: dir, Tokens: [][]byte{[]byte("tok")}, Fsync: "batch", MaxBytes: 1 << 30}}
	ls, err := New(cfg, Options{Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ls.Serve(ln)
	defer ls.Shutdown(context.Background())
	var batch []byte
	for i := range 10 {
		rec := irecord.AppendHead(nil, time.Unix(1700000000, 0), record.LevelInfo, fmt.Sprint("m", i), "")
		batch = entries.Append(batch, irecord.AppendStamp(rec, &irecord.Stamp{Worker: "w", Seq: uint64(i + 1)}))
	}
	load := wire.Load{Addr: ln.Addr().String(), Token: []byte("tok"), Sender: "s", Application: "app",
		Format: "logtk.v1.Record", Batch: batch, Batches: 7, InFlight: 2}
	if err := wire.SendLoad(load); err != nil {
		t.Fatal(err)
	}
	if err := wire.SendLoad(load); err != nil { // the same ids again: duplicates
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.Metric {
			switch {
			case m.Counter != nil:
				got[f.GetName()] += m.Counter.GetValue()
			case m.Histogram != nil:
				got[f.GetName()] += float64(m.Histogram.GetSampleCount())
			case m.Gauge != nil:
				got[f.GetName()] += m.Gauge.GetValue()
			}
		}
	}
	want := map[string]float64{
		"logtk_server_batches_total":           7,
		"logtk_server_records_total":           70,
		"logtk_server_duplicate_batches_total": 7,
		"logtk_server_stored_bytes_total":      7 * float64(len(batch)),
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
	if got["logtk_server_fsync_duration_seconds"] < 1 {
		t.Errorf("no fsync observed: %v", got)
	}
}
