package host

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/metrics"
	"github.com/logtk/logtk/sdk/plugintest"
)

// TestMetricsMatchRecords: a scrape, read with the Prometheus text
// parser, counts exactly the records that reached the file: per worker
// instance, routed by the host, delivered by the transport.
func TestMetricsMatchRecords(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "logs", "app.log")
	w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": "3000"})
	w.Count = 2
	cfg := &config.Config{
		Workers: []config.WorkerConfig{w},
		Formats: []config.FormatConfig{{Name: "json", Plugin: plugintest.Build(t, "../plugins/json/plugin")}},
		Transports: []config.TransportConfig{{
			Name: "file", Plugin: plugintest.Build(t, "../plugins/file/plugin"), Format: "json",
			Config: []byte(fmt.Sprintf(`{"path":%q}`, out)),
			Allow:  config.Allow{Directories: []string{filepath.Dir(out)}},
		}},
		DeadLetterDir: filepath.Join(dir, "dead"),
	}
	reg := metrics.NewRegistry()
	h, err := New(cfg, Options{Logger: testLogger(t), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := metrics.Listen("127.0.0.1:0", reg, func() bool { return !h.Stopping() })
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	h.Start()
	select {
	case <-h.Done():
	case <-time.After(2 * time.Minute):
		t.Fatal("not done")
	}
	lines := 0
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines++
	}
	f.Close()

	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + srv.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	value := func(name string, labels ...string) float64 {
		t.Helper()
		f := fams[name]
		if f == nil {
			t.Fatalf("no %s in the scrape:\n%s", name, body)
		}
	metric:
		for _, m := range f.Metric {
			for i := 0; i < len(labels); i += 2 {
				if label(m, labels[i]) != labels[i+1] {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
		t.Fatalf("no %s%v in the scrape", name, labels)
		return 0
	}
	perWorker := value("logtk_worker_records_total", "worker", "flood", "index", "0") + value("logtk_worker_records_total", "worker", "flood", "index", "1")
	routed := value("logtk_host_records_total")
	delivered := value("logtk_transport_records_total", "transport", "file")
	if lines < 6000 || perWorker != float64(lines) || routed != float64(lines) || delivered != float64(lines) {
		t.Fatalf("%d lines in the file; the scrape counts %v per worker, %v routed, %v delivered", lines, perWorker, routed, delivered)
	}
	st, _ := os.Stat(out)
	if b := value("logtk_transport_bytes_total", "transport", "file"); b != float64(st.Size()) {
		t.Errorf("logtk_transport_bytes_total %v, the file has %d bytes", b, st.Size())
	}
	if own := value("logtk_host_own_records_total"); perWorker+own != routed {
		t.Errorf("per worker %v + own %v != routed %v", perWorker, own, routed)
	}
	if up := value("logtk_worker_up", "worker", "flood", "index", "0"); up != 0 {
		t.Errorf("logtk_worker_up of an instance that ended: %v", up)
	}
	if n := value("logtk_plugin_call_duration_seconds", "stage", "format json", "call", "format"); n < 1 {
		t.Errorf("no format calls observed")
	}
	if n := value("logtk_plugin_call_duration_seconds", "stage", "transport file", "call", "write"); n < 1 {
		t.Errorf("no transport writes observed")
	}
	if v := value("logtk_undelivered_records_total", "reason", "dead_lettered"); v != 0 {
		t.Errorf("dead-lettered %v", v)
	}
	// What status shows of the stages counts the same.
	stages := h.Stages()
	if len(stages) != 2 || stages[0].Name != "format json" || stages[0].Instances != 2 || stages[1].Name != "transport file" || stages[1].Delivered != int64(lines) || stages[1].Queued != 0 {
		t.Errorf("stages %+v; %d lines in the file", stages, lines)
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
