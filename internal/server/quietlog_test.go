package server

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/logtk/logtk/internal/testlog"
)

// TestQuietLogBounded: 10,000 warnings about peers in a burst make one
// warning in the log (the rest at debug level); the next warning, a
// window later, counts them.
func TestQuietLogBounded(t *testing.T) {
	buf := &testlog.Buffer{}
	l := hclog.New(&hclog.LoggerOptions{Output: buf, Level: hclog.Warn})
	var q QuietLog
	for range 10000 {
		q.Warn(l, "otlp: request refused", "reason", "garbage")
	}
	if n := strings.Count(buf.String(), "request refused"); n != 1 {
		t.Fatalf("%d warnings logged for 10,000 in a burst, want 1", n)
	}
	q.last = q.last.Add(-quietWindow - time.Second) // a window later
	q.Warn(l, "otlp: request refused", "reason", "garbage")
	if !strings.Contains(buf.String(), "similar_since_last_warning=9999") {
		t.Fatalf("the next warning does not count those not logged:\n%s", buf.String())
	}
}
