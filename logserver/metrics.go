package logserver

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// serverMetrics is the log server's collector (docs/metrics.md): what the
// engine counts anyway is read when scraped; bytes stored and fsync
// latency are observed per batch and per sync. A nil *serverMetrics
// observes nothing.
type serverMetrics struct {
	srv      *Server
	syncSecs prometheus.Histogram
	mu       sync.Mutex
	bytes    map[string]float64 // by application
}

var (
	descConns         = prometheus.NewDesc("logtk_server_connections", "Connections open now, authenticated or not.", nil, nil)
	descBatches       = prometheus.NewDesc("logtk_server_batches_total", "Batches stored.", nil, nil)
	descRecords       = prometheus.NewDesc("logtk_server_records_total", "Records stored.", nil, nil)
	descDups          = prometheus.NewDesc("logtk_server_duplicate_batches_total", "Batches received again and dropped (already stored).", nil, nil)
	descRejected      = prometheus.NewDesc("logtk_server_rejected_connections_total", "Connections refused at authentication or closed for exceeding a limit.", nil, nil)
	descGaps          = prometheus.NewDesc("logtk_server_sequence_gaps_total", "Gaps seen in a worker instance's record sequence (records lost before the server).", nil, nil)
	descBytes         = prometheus.NewDesc("logtk_server_stored_bytes_total", "Bytes of batches stored, by application.", []string{"application"}, nil)
	descSyslogRefused = prometheus.NewDesc("logtk_server_syslog_connections_refused_total", "syslog TCP connections closed at once because max_connections were open.", nil, nil)
	descSyslog        = prometheus.NewDesc("logtk_server_syslog_messages_total", "syslog messages received, by result: parsed, unparsed (stored raw with syslog_error), cut (longer than max_message_bytes, stored cut), skipped (octet-counted and too long: not stored).", []string{"result"}, nil)
	descOTLP          = prometheus.NewDesc("logtk_server_otlp_requests_total", "OTLP/HTTP requests, by result: stored (answered 200), refused (4xx or 5xx).", []string{"result"}, nil)
	descKafka         = prometheus.NewDesc("logtk_server_kafka_records_total", "Kafka records read, by result: stored (logtk's), duplicate (logtk's, stored already: dropped), foreign (not logtk's: stored with kafka_error), incomplete (logtk's, stored without the rest of their batch).", []string{"result"}, nil)
	descKafkaCycles   = prometheus.NewDesc("logtk_server_kafka_cycles_total", "Kafka polls stored and committed.", nil, nil)
	descOTLPRecs      = prometheus.NewDesc("logtk_server_otlp_records_total", "OTLP log records stored.", nil, nil)
)

func newServerMetrics() *serverMetrics {
	return &serverMetrics{
		syncSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "logtk_server_fsync_duration_seconds",
			Help:    "Time of a sync of an application's data file and index (one covers every batch appended before it).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		bytes: map[string]float64{},
	}
}

func (m *serverMetrics) observeSync(d time.Duration) {
	if m != nil {
		m.syncSecs.Observe(d.Seconds())
	}
}

func (m *serverMetrics) stored(app string, n int) {
	if m != nil {
		m.mu.Lock()
		m.bytes[app] += float64(n)
		m.mu.Unlock()
	}
}

func (m *serverMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConns, descBatches, descRecords, descDups, descRejected, descGaps, descBytes, descSyslog, descSyslogRefused, descOTLP, descOTLPRecs, descKafka, descKafkaCycles} {
		ch <- d
	}
	m.syncSecs.Describe(ch)
}

func (m *serverMetrics) Collect(ch chan<- prometheus.Metric) {
	if s := m.srv; s != nil {
		st := &s.srv.Stats
		ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(s.srv.Conns()))
		ch <- prometheus.MustNewConstMetric(descBatches, prometheus.CounterValue, float64(st.Batches.Load()))
		ch <- prometheus.MustNewConstMetric(descRecords, prometheus.CounterValue, float64(st.Records.Load()))
		ch <- prometheus.MustNewConstMetric(descDups, prometheus.CounterValue, float64(st.Duplicates.Load()))
		ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(st.Rejected.Load()))
		ch <- prometheus.MustNewConstMetric(descGaps, prometheus.CounterValue, float64(st.Gaps.Load()))
		if s.cfg.Syslog != nil {
			sl := &s.syslog.Stats
			unparsed, cut := sl.Unparsed.Load(), sl.Cut.Load()
			ch <- prometheus.MustNewConstMetric(descSyslog, prometheus.CounterValue, float64(sl.Messages.Load()-unparsed-cut), "parsed")
			ch <- prometheus.MustNewConstMetric(descSyslog, prometheus.CounterValue, float64(unparsed), "unparsed")
			ch <- prometheus.MustNewConstMetric(descSyslog, prometheus.CounterValue, float64(cut), "cut")
			ch <- prometheus.MustNewConstMetric(descSyslog, prometheus.CounterValue, float64(sl.Skipped.Load()), "skipped")
			ch <- prometheus.MustNewConstMetric(descSyslogRefused, prometheus.CounterValue, float64(sl.Refused.Load()))
		}
		if s.cfg.OTLP != nil {
			o := &s.otlp.Stats
			ch <- prometheus.MustNewConstMetric(descOTLP, prometheus.CounterValue, float64(o.Requests.Load()), "stored")
			ch <- prometheus.MustNewConstMetric(descOTLP, prometheus.CounterValue, float64(o.Refused.Load()), "refused")
			ch <- prometheus.MustNewConstMetric(descOTLPRecs, prometheus.CounterValue, float64(o.Records.Load()))
		}
		if s.cfg.Kafka != nil {
			k := &s.kafka.Stats
			ch <- prometheus.MustNewConstMetric(descKafka, prometheus.CounterValue, float64(k.Stored.Load()), "stored")
			ch <- prometheus.MustNewConstMetric(descKafka, prometheus.CounterValue, float64(k.Duplicates.Load()), "duplicate")
			ch <- prometheus.MustNewConstMetric(descKafka, prometheus.CounterValue, float64(k.Foreign.Load()), "foreign")
			ch <- prometheus.MustNewConstMetric(descKafka, prometheus.CounterValue, float64(k.Incomplete.Load()), "incomplete")
			ch <- prometheus.MustNewConstMetric(descKafkaCycles, prometheus.CounterValue, float64(k.Cycles.Load()))
		}
	}
	m.mu.Lock()
	for app, n := range m.bytes {
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, n, app)
	}
	m.mu.Unlock()
	m.syncSecs.Collect(ch)
}
