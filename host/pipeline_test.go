package host

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/sdk/plugintest"
)

// TestPipelineEndToEnd: workers -> host -> Wasm json formatter -> Wasm
// file transport. Every record is in the file, in order per worker.
func TestPipelineEndToEnd(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "logs", "app.log")
	cfg := &config.Config{
		Workers: []config.WorkerConfig{func() config.WorkerConfig {
			w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": "5000"})
			w.Count = 2
			return w
		}()},
		Formats: []config.FormatConfig{{Name: "json", Plugin: plugintest.Build(t, "../plugins/json/plugin")}},
		Transports: []config.TransportConfig{{
			Name: "file", Plugin: plugintest.Build(t, "../plugins/file/plugin"), Format: "json",
			Config: []byte(fmt.Sprintf(`{"path":%q,"max_bytes":1000000}`, out)),
			Allow:  config.Allow{Directories: []string{filepath.Dir(out)}},
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
