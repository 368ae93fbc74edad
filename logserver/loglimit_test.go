package logserver

import (
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/logtk/logtk/internal/testlog"
)

// TestPeerWarningsBounded: a peer that sends 10,000 bad requests at once
// gets one line in the server's log, not 10,000; the next line says how
// many were not logged.
func TestPeerWarningsBounded(t *testing.T) {
	buf := &testlog.Buffer{}
	l := hclog.New(&hclog.LoggerOptions{Output: buf})
	var w peerWarnings
	for range 10000 {
		w.warn(l, "otlp: request refused", "reason", "garbage")
	}
	if n := strings.Count(buf.String(), "request refused"); n != 1 {
		t.Fatalf("%d lines logged for 10,000 refusals in a burst, want 1", n)
	}
	w.last = w.last.Add(-2e9) // a second later
	w.warn(l, "otlp: request refused", "reason", "garbage")
	if !strings.Contains(buf.String(), "not_logged_since=9999") {
		t.Fatalf("the next line does not count the refusals not logged:\n%s", buf.String())
	}
}
