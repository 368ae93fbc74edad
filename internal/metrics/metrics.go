// Package metrics exposes a host's and a log server's counters in the
// Prometheus text format (on /metrics), with /healthz and /readyz, for
// the metrics block of plugins.hcl. It uses prometheus/client_golang, the
// reference implementation: its registry checks names and label sets at
// registration, and its text encoder is the one every scraper is tested
// against.
//
// What a record costs: nothing. Counters that move per record are read
// at scrape time from the counts the host, pipeline and server keep
// anyway (Collect), and what is observed as it happens (plugin call
// latency, delivered batches, fsync latency) is observed once per batch
// or per call, never per record.
//
// Names follow the Prometheus conventions: a logtk_ prefix, base units
// (seconds, bytes), _total on counters. docs/metrics.md lists them.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Pipeline is what the pipeline observes as it happens. A nil *Pipeline
// observes nothing.
type Pipeline struct {
	callSeconds  *prometheus.HistogramVec
	failures     *prometheus.CounterVec
	records      *prometheus.CounterVec
	bytes        *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
}

// NewPipeline registers the pipeline's metrics with reg.
func NewPipeline(reg prometheus.Registerer) *Pipeline {
	p := &Pipeline{
		callSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "logtk_plugin_call_duration_seconds",
			Help:    "Time of a call into a plugin instance (a batch formatted, written or polled), by stage and call.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"stage", "call"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logtk_plugin_failures_total",
			Help: "Failed plugin calls by stage and kind: broken (a trap, a timeout, garbage: the instance is replaced), retryable (the plugin asked to be retried), refused (the plugin refused the batch: dead-lettered), ack_timeout (nothing acknowledged within ack_timeout: replaced).",
		}, []string{"stage", "kind"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logtk_transport_records_total",
			Help: "Records a transport delivered (acknowledged, or written by a synchronous transport).",
		}, []string{"transport"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logtk_transport_bytes_total",
			Help: "Bytes of the formatted records a transport delivered.",
		}, []string{"transport"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logtk_dead_lettered_records_total",
			Help: "Records written to the dead-letter directory, by the stage that failed on them.",
		}, []string{"stage"}),
	}
	reg.MustRegister(p.callSeconds, p.failures, p.records, p.bytes, p.deadLettered)
	return p
}

// Call observes a plugin call's duration.
func (p *Pipeline) Call(stage, call string, d time.Duration) {
	if p != nil {
		p.callSeconds.WithLabelValues(stage, call).Observe(d.Seconds())
	}
}

// Failure counts a failed plugin call.
func (p *Pipeline) Failure(stage, kind string) {
	if p != nil {
		p.failures.WithLabelValues(stage, kind).Inc()
	}
}

// Delivered counts a batch a transport delivered.
func (p *Pipeline) Delivered(transport string, records, bytes int) {
	if p != nil {
		p.records.WithLabelValues(transport).Add(float64(records))
		p.bytes.WithLabelValues(transport).Add(float64(bytes))
	}
}

// DeadLettered counts records dead-lettered by a stage.
func (p *Pipeline) DeadLettered(stage string, records int) {
	if p != nil {
		p.deadLettered.WithLabelValues(stage).Add(float64(records))
	}
}

// NewRegistry returns a registry with the Go runtime's and the process's
// collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// HTTP serves /metrics (reg, in the Prometheus text format), /healthz
// (200 while the process serves) and /readyz (200 while ready says so,
// else 503).
type HTTP struct {
	srv *http.Server
	ln  net.Listener
}

// Listen listens on addr and serves until Close.
func Listen(addr string, reg *prometheus.Registry, ready func() bool) (*HTTP, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, EnableOpenMetrics: true}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ready != nil && !ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	h := &HTTP{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}, ln: ln}
	go func() {
		if err := h.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the listener failed; scrapes fail, which the scraper reports
		}
	}()
	return h, nil
}

// Addr is the address served.
func (h *HTTP) Addr() net.Addr { return h.ln.Addr() }

// Close stops serving.
func (h *HTTP) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return h.srv.Shutdown(ctx)
}

// counter and gauge build a constant metric for a Collect.
func counter(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}
