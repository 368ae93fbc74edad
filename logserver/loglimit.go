package logserver

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// peerWarnings logs what peers did wrong (a refused OTLP request, a
// syslog message skipped) at most once a second, saying how many like
// it were not logged: a client that sends nothing but garbage must not
// fill the server's log, or its disk. The counters in the metrics count
// every one.
type peerWarnings struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// warn logs msg with args, or counts it if one was logged in the last
// second.
func (w *peerWarnings) warn(l hclog.Logger, msg string, args ...any) {
	w.mu.Lock()
	now := time.Now()
	if now.Sub(w.last) < time.Second {
		w.suppressed++
		w.mu.Unlock()
		return
	}
	w.last = now
	n := w.suppressed
	w.suppressed = 0
	w.mu.Unlock()
	if n > 0 {
		args = append(args, "not_logged_since", n)
	}
	l.Warn(msg, args...)
}
