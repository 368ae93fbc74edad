package host

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logtk/logtk/internal/pipeline"
)

// hostCollector reads the host's metrics when scraped (docs/metrics.md):
// per worker instance whether it runs, its restarts and records; the
// records routed and those not delivered, by reason; each spool's
// batches and bytes. The pipeline observes its own (plugin calls,
// deliveries) as they happen.
type hostCollector struct{ h *Host }

var (
	descUp        = prometheus.NewDesc("logtk_worker_up", "1 if the worker instance's process runs, else 0.", []string{"worker", "index"}, nil)
	descRestarts  = prometheus.NewDesc("logtk_worker_restarts_total", "Restarts of the worker instance, whatever their cause.", []string{"worker", "index"}, nil)
	descRecords   = prometheus.NewDesc("logtk_worker_records_total", "Records of the worker instance (its own, its output lines, the host's about it).", []string{"worker", "index"}, nil)
	descRouted    = prometheus.NewDesc("logtk_host_records_total", "Records the host handed to its output (the pipeline, or the console).", nil, nil)
	descOwn       = prometheus.NewDesc("logtk_host_own_records_total", "Records the host wrote about itself (a transport in trouble, a reload), not about a worker; those it could not queue are in its log only.", nil, nil)
	descLost      = prometheus.NewDesc("logtk_undelivered_records_total", "Records not delivered to the transports, by reason: dead_lettered (in the dead-letter directory), logged (only in the host's log).", []string{"reason"}, nil)
	descDropped   = prometheus.NewDesc("logtk_spool_dropped_batches_total", "Batches spools dropped under when_full = \"drop_oldest\".", nil, nil)
	descSetAside  = prometheus.NewDesc("logtk_spool_set_aside_batches_total", "Spooled batches that could not be read back, set aside on disk.", nil, nil)
	descAbandoned = prometheus.NewDesc("logtk_rings_abandoned_total", "Shared-memory rings the host abandoned because their worker broke them.", nil, nil)
	descSpoolB    = prometheus.NewDesc("logtk_spool_bytes", "Bytes in a transport's spool.", []string{"transport"}, nil)
	descSpoolN    = prometheus.NewDesc("logtk_spool_batches", "Batches in a transport's spool.", []string{"transport"}, nil)
)

func (c hostCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descRestarts, descRecords, descRouted, descOwn, descLost, descDropped, descSetAside, descAbandoned, descSpoolB, descSpoolN} {
		ch <- d
	}
}

func (c hostCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.h.Status() {
		idx := strconv.Itoa(st.ID.Index)
		up := 0.0
		if st.State == StateRunning && st.PID != 0 {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, st.ID.Name, idx)
		ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(st.Restarts), st.ID.Name, idx)
		ch <- prometheus.MustNewConstMetric(descRecords, prometheus.CounterValue, float64(st.Records), st.ID.Name, idx)
	}
	u := c.h.Undelivered()
	ch <- prometheus.MustNewConstMetric(descRouted, prometheus.CounterValue, float64(c.h.routed.Load()))
	c.h.selfMu.Lock()
	own := c.h.selfSeq - uint64(c.h.selfDropped)
	c.h.selfMu.Unlock()
	ch <- prometheus.MustNewConstMetric(descOwn, prometheus.CounterValue, float64(own))
	ch <- prometheus.MustNewConstMetric(descLost, prometheus.CounterValue, float64(u.DeadLettered), "dead_lettered")
	ch <- prometheus.MustNewConstMetric(descLost, prometheus.CounterValue, float64(u.Logged), "logged")
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(u.DroppedBatches))
	ch <- prometheus.MustNewConstMetric(descSetAside, prometheus.CounterValue, float64(u.SetAsideBatches))
	ch <- prometheus.MustNewConstMetric(descAbandoned, prometheus.CounterValue, float64(u.AbandonedRings))
	if p, ok := c.h.currentOutput().(*pipeline.Pipeline); ok {
		for _, s := range p.Spools() {
			ch <- prometheus.MustNewConstMetric(descSpoolB, prometheus.GaugeValue, float64(s.Bytes), s.Transport)
			ch <- prometheus.MustNewConstMetric(descSpoolN, prometheus.GaugeValue, float64(s.Batches), s.Transport)
		}
	}
}
