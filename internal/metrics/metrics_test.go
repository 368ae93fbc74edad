package metrics

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestEndpoints: /metrics is Prometheus text a parser reads, with the
// pipeline's metrics once observed; /healthz answers while the process
// serves; /readyz follows ready.
func TestEndpoints(t *testing.T) {
	reg := NewRegistry()
	p := NewPipeline(reg)
	p.Call("format text", "format", 3*time.Millisecond)
	p.Delivered("file", 512, 40000)
	p.Failure("transport net", "retryable")
	p.DeadLettered("format text", 2)
	var ready atomic.Bool
	h, err := Listen("127.0.0.1:0", reg, ready.Load)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	get := func(path string) (int, string) {
		t.Helper()
		c := &http.Client{Timeout: 10 * time.Second}
		resp, err := c.Get("http://" + h.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before ready: %d", code)
	}
	ready.Store(true)
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz when ready: %d", code)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	code, body := get("/metrics")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if code != 200 || err != nil {
		t.Fatalf("/metrics: %d, %v", code, err)
	}
	want := map[string]float64{
		"logtk_transport_records_total":     512,
		"logtk_transport_bytes_total":       40000,
		"logtk_plugin_failures_total":       1,
		"logtk_dead_lettered_records_total": 2,
	}
	for name, v := range want {
		f, ok := fams[name]
		if !ok || len(f.Metric) != 1 || f.Metric[0].GetCounter().GetValue() != v {
			t.Errorf("%s: %v, want %v", name, f, v)
		}
	}
	if f := fams["logtk_plugin_call_duration_seconds"]; f == nil || f.Metric[0].GetHistogram().GetSampleCount() != 1 {
		t.Errorf("call histogram: %v", f)
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
}

// A nil *Pipeline observes nothing and does not panic.
func TestNilPipeline(t *testing.T) {
	var p *Pipeline
	p.Call("a", "b", time.Second)
	p.Delivered("a", 1, 1)
	p.Failure("a", "broken")
	p.DeadLettered("a", 1)
}

// TestOpenMetrics: a scraper that asks for OpenMetrics gets it.
func TestOpenMetrics(t *testing.T) {
	reg := NewRegistry()
	NewPipeline(reg).Delivered("file", 1, 10)
	h, err := Listen("127.0.0.1:0", reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	req, _ := http.NewRequest("GET", "http://"+h.Addr().String()+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") || !strings.HasSuffix(string(body), "# EOF\n") {
		t.Fatalf("Content-Type %q, body ends %q", ct, body[max(0, len(body)-20):])
	}
}
