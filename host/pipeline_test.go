package host

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/internal/record"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
	"github.com/logtk/logtk/sdk/plugintest"
)

// TestPipelineEndToEnd: workers -> host -> Wasm json formatter -> Wasm
// file transport. Every record is in the file, in order per worker.
func TestPipelineEndToEnd(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "logs", "app.log")
	cfg := &Config{
		Workers: []WorkerConfig{func() WorkerConfig {
			w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": "5000"})
			w.Count = 2
			return w
		}()},
		Formats: []FormatConfig{{Name: "json", Plugin: plugintest.Build(t, "../plugins/json/plugin")}},
		Transports: []TransportConfig{{
			Name: "file", Plugin: plugintest.Build(t, "../plugins/file/plugin"), Format: "json",
			Config: []byte(fmt.Sprintf(`{"path":%q,"max_bytes":1000000}`, out)),
			Allow:  Allow{Directories: []string{filepath.Dir(out)}},
		}},
		DeadLetterDir: filepath.Join(dir, "dead"),
	}
	h, err := New(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	select {
	case <-h.Done():
	case <-time.After(2 * time.Minute):
		t.Fatal("not done")
	}
	files, _ := filepath.Glob(out + "*")
	// Rotated files sort before the live one by name: read them in order.
	var lines []string
	for _, f := range append(files[1:], files[0]) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
	}
	if len(files) < 2 {
		t.Errorf("expected rotation at 1 MB, got files %v", files)
	}
	next := map[string]int{}
	for _, l := range lines {
		if !strings.Contains(l, `"msg":"rec"`) {
			continue
		}
		var idx, i int
		if _, err := fmt.Sscanf(l[strings.Index(l, `"worker_index":`):], `"worker_index":%d`, &idx); err != nil {
			t.Fatal(err)
		}
		fmt.Sscanf(l[strings.Index(l, `"i":`):], `"i":%d`, &i)
		key := fmt.Sprint(idx)
		if i != next[key] {
			t.Fatalf("worker %s: record i=%d, want %d", key, i, next[key])
		}
		next[key]++
	}
	if next["0"] != 5000 || next["1"] != 5000 {
		t.Fatalf("delivered %v of 5000 each", next)
	}
	if _, err := os.Stat(cfg.DeadLetterDir); err == nil {
		t.Fatal("something was dead-lettered")
	}
}

func testLogger(t *testing.T) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: testWriter{t}, Level: hclog.Warn})
}

// TestPipelineContainsHostilePlugins: a formatter that traps, loops or
// leaks on some records; the host stays up, every other record is
// delivered, and the poison records are dead-lettered with the reason.
func TestPipelineContainsHostilePlugins(t *testing.T) {
	dir := t.TempDir()
	cfg := &Config{
		Formats: []FormatConfig{{Name: "hostile", Plugin: plugintest.Build(t, "../internal/wasm/testdata/hostile"),
			Limits: PluginLimits{CallTimeout: time.Second, MemoryBytes: 32 << 20}}},
		Transports: []TransportConfig{{Name: "sink", Plugin: plugintest.Build(t, "../internal/wasm/testdata/fsprobe"), Format: "hostile",
			Config: []byte(fmt.Sprintf(`{"write":%q}`, filepath.Join(dir, "out", "got"))), Allow: Allow{Directories: []string{filepath.Join(dir, "out")}}}},
		DeadLetterDir: filepath.Join(dir, "dead"),
	}
	reports := make(chan string, 100)
	p, err := newPipeline(context.Background(), cfg, testLogger(t), func(level int32, msg string, _ ...slog.Attr) { reports <- msg }, func() bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	msgs := []string{"a", "trap", "b", "loop", "c", "leak", "d"}
	var recs [][]byte
	for _, m := range msgs {
		recs = append(recs, record.AppendHead(nil, time.Unix(1, 0), record.LevelInfo, m, ""))
	}
	if err := p.WriteBatch(recs); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteBatch(recs[:1]); err != nil { // the pipeline still works afterwards
		t.Fatal(err)
	}
	p.Close()
	got, _ := os.ReadFile(filepath.Join(dir, "out", "got"))
	if string(got) != "a\nb\nc\nd\na\n" {
		t.Fatalf("delivered %q", got)
	}
	dead, _ := filepath.Glob(filepath.Join(cfg.DeadLetterDir, "*.batch"))
	if len(dead) != 3 {
		t.Fatalf("%d dead-lettered batches, want 3", len(dead))
	}
	var poison []string
	for _, d := range dead {
		b, _ := os.ReadFile(d)
		entries.Each(b, func(e []byte) {
			var r logtkv1.Record
			proto.Unmarshal(e, &r)
			poison = append(poison, r.Message)
		})
		reason, _ := os.ReadFile(strings.TrimSuffix(d, ".batch") + ".reason")
		if !strings.Contains(string(reason), "stage: format hostile") || !strings.Contains(string(reason), "plugin[format hostile] call[logtk_format] failed") {
			t.Errorf("reason file:\n%s", reason)
		}
	}
	slices.Sort(poison)
	if strings.Join(poison, ",") != "leak,loop,trap" {
		t.Fatalf("dead-lettered %v", poison)
	}
	if len(reports) != 3 {
		t.Fatalf("%d error records reported, want 3", len(reports))
	}
}

// TestPipelineGarbageOutput: a formatter that returns a pointer outside its
// memory never gets a record through, and every record is dead-lettered,
// none dropped.
func TestPipelineGarbageOutput(t *testing.T) {
	dir := t.TempDir()
	cfg := &Config{
		Formats: []FormatConfig{{Name: "raw", Plugin: plugintest.Build(t, "../internal/wasm/testdata/raw"), Config: []byte(`{"lie":"result"}`)}},
		Transports: []TransportConfig{{Name: "sink", Plugin: plugintest.Build(t, "../internal/wasm/testdata/fsprobe"), Format: "raw",
			Config: []byte(fmt.Sprintf(`{"write":%q}`, filepath.Join(dir, "got"))), Allow: Allow{Directories: []string{dir}}}},
		DeadLetterDir: filepath.Join(dir, "dead"),
	}
	p, err := newPipeline(context.Background(), cfg, testLogger(t), func(int32, string, ...slog.Attr) {}, func() bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	var recs [][]byte
	for i := range 5 {
		recs = append(recs, record.AppendHead(nil, time.Unix(1, 0), record.LevelInfo, fmt.Sprint(i), ""))
	}
	p.WriteBatch(recs)
	p.Close()
	dead, _ := filepath.Glob(filepath.Join(cfg.DeadLetterDir, "*.batch"))
	n := 0
	for _, d := range dead {
		b, _ := os.ReadFile(d)
		c, _ := entries.Count(b)
		n += c
	}
	if n != 5 {
		t.Fatalf("%d of 5 records dead-lettered", n)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "got")); len(got) != 0 {
		t.Fatalf("garbage reached the transport: %q", got)
	}
}

// TestPluginOutputReachesHostLog: a plugin's logtk.log calls and stderr
// reach the host's logger, named after the plugin block, also when the
// plugin was compiled while LoadConfig checked the configuration (before
// there was a logger), and a pipeline releases the compiled plugins it
// does not share with its Config.
func TestPluginOutputReachesHostLog(t *testing.T) {
	dir := t.TempDir()
	hostile := plugintest.Build(t, "../internal/wasm/testdata/hostile")
	file := plugintest.Build(t, "../plugins/file/plugin")
	src := fmt.Sprintf(`
format "hostile" {
  plugin = %q
}
transport "sink" {
  plugin = %q
  format = "hostile"
  config {
    path = %q
  }
  allow { directories = [%q] }
}
dead_letter_dir = %q
`, hostile, file, filepath.Join(dir, "out", "got.log"), filepath.Join(dir, "out"), filepath.Join(dir, "dead"))
	cfg, err := ParseConfig([]byte(src), filepath.Join(dir, "plugins.hcl"))
	if err != nil {
		t.Fatal(FormatDiagnostics(err))
	}
	logs := &syncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug})
	p, err := newPipeline(context.Background(), cfg, logger, func(int32, string, ...slog.Attr) {}, func() bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WriteBatch([][]byte{record.AppendHead(nil, time.Unix(1, 0), record.LevelInfo, "log", "")}); err != nil {
		t.Fatal(err)
	}
	p.Close()
	got := logs.String()
	for _, want := range []string{"format.hostile: hostile logs through logtk.log", "format.hostile: hostile writes to stderr"} {
		if !strings.Contains(got, want) {
			t.Errorf("host log lacks %q:\n%s", want, got)
		}
	}
	if n := len(cfg.modules.mods); n != 2 {
		t.Errorf("%d compiled plugins held by the Config after the pipeline closed, want its 2", n)
	}

	// A Config built in code holds none: its pipeline's plugins are closed.
	cfg2 := &Config{Formats: cfg.Formats, Transports: cfg.Transports, DeadLetterDir: cfg.DeadLetterDir}
	p2, err := newPipeline(context.Background(), cfg2, logger, func(int32, string, ...slog.Attr) {}, func() bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	p2.Close()
	if n := len(cfg2.modules.mods); n != 0 {
		t.Errorf("%d compiled plugins left open after the pipeline closed", n)
	}
}

// TestPipelineNeverAckingTransport: an asynchronous transport that takes
// every batch and acknowledges none neither holds its batches for ever
// nor keeps the host from stopping. While running, after ack_timeout it
// is replaced and its batches sent again; after three such rounds the
// oldest is dead-lettered with the reason. At shutdown the host gives up
// on what is still unacknowledged after one ack_timeout.
func TestPipelineNeverAckingTransport(t *testing.T) {
	dir := t.TempDir()
	dead := filepath.Join(dir, "dead")
	cfg := &Config{
		Formats: []FormatConfig{{Name: "plain", Plugin: plugintest.Build(t, "../internal/wasm/testdata/hostile")}},
		Transports: []TransportConfig{{Name: "void", Plugin: plugintest.Build(t, "testdata/neverack"), Format: "plain",
			AckTimeout: 300 * time.Millisecond}},
		DeadLetterDir: dead,
	}
	logs := &syncBuffer{}
	p, err := newPipeline(context.Background(), cfg, hclog.New(&hclog.LoggerOptions{Output: logs}), func(int32, string, ...slog.Attr) {}, func() bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	reasons := func() []string {
		files, _ := filepath.Glob(filepath.Join(dead, "*.reason"))
		var out []string
		for _, f := range files {
			b, _ := os.ReadFile(f)
			out = append(out, string(b))
		}
		return out
	}
	if err := p.WriteBatch([][]byte{record.AppendHead(nil, time.Unix(1, 0), record.LevelInfo, "first", "")}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(reasons()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the unacknowledged batch was not dead-lettered within 30s; host log:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond) // poll with a deadline for the dead letter
	}
	if r := reasons()[0]; !strings.Contains(r, "acknowledged none of its 1 batches") || !strings.Contains(r, "records: 1") {
		t.Fatalf("dead-letter reason:\n%s", r)
	}
	if n := strings.Count(logs.String(), "transport instance failed; replacing it"); n != brokenAttempts {
		t.Fatalf("the instance was replaced %d times before the batch was set aside, want %d; host log:\n%s", n, brokenAttempts, logs.String())
	}

	if err := p.WriteBatch([][]byte{record.AppendHead(nil, time.Unix(2, 0), record.LevelInfo, "second", "")}); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatalf("the pipeline did not close within 30s with a transport that acknowledges nothing; host log:\n%s", logs.String())
	}
	if n := len(reasons()); n != 2 {
		t.Fatalf("%d dead letters after the shutdown, want 2 (the second batch given up at shutdown); host log:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "giving up on unacknowledged batches at shutdown") {
		t.Fatalf("the shutdown's give-up was not logged; host log:\n%s", logs.String())
	}
}
