package config

import "github.com/hashicorp/hcl/v2"

// MetricsConfig is the metrics block: where a host or a log server serves
// its metrics in the Prometheus text format (/metrics), and /healthz and
// /readyz (docs/metrics.md). Without the block nothing is served.
type MetricsConfig struct {
	// Listen is host:port. Required. Give a loopback address
	// ("127.0.0.1:9464") unless the metrics are for other machines: the
	// endpoint has no authentication.
	Listen string
}

func decodeMetrics(blk *hcl.Block) (*MetricsConfig, hcl.Diagnostics) {
	m := &MetricsConfig{}
	content, diags := attrs{{"listen", true, into(&m.Listen, listenAddress)}}.content(blk.Body)
	if content == nil {
		return nil, diags
	}
	return m, diags
}
