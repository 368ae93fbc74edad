package pipeline

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/logtk/logtk/internal/spool"
	"github.com/logtk/logtk/record"
)

// spoolTrouble reports a spool whose disk refuses batches: once when it
// starts (and every minute while it lasts, in the host log), once when it
// ends. Meanwhile the transport's intake waits, and with it the workers.
func spoolTrouble(name, dir string, log hclog.Logger, report func(int32, string, ...slog.Attr)) func(int, error) {
	var since time.Time
	return func(attempt int, err error) {
		switch {
		case err == nil:
			log.Info("the spool takes batches again", "transport", name, "dir", dir, "attempts", attempt, "after", time.Since(since).Round(time.Millisecond))
			report(record.LevelWarn, fmt.Sprintf("transport %s: the spool in %s takes batches again after %s; records were held, none lost", name, dir, time.Since(since).Round(time.Millisecond)),
				slog.String("transport", name), slog.String("dir", dir))
		case attempt == 1:
			since = time.Now()
			log.Error("the spool cannot write a batch; holding records until it can", "transport", name, "dir", dir, "error", err)
			report(record.LevelError, fmt.Sprintf("transport %s: the spool in %s cannot write a batch (%v); records are held, and the workers slowed, until it can", name, dir, err),
				slog.String("transport", name), slog.String("dir", dir), slog.String("error", err.Error()))
		case attempt%60 == 0:
			log.Error("the spool still cannot write a batch", "transport", name, "dir", dir, "attempts", attempt, "for", time.Since(since).Round(time.Second), "error", err)
		}
	}
}

// dropReport gathers a spool's drops into at most one report per
// dropReportEvery.
type dropReport struct {
	mu          sync.Mutex
	n, bytes    int64
	first, last uint64
	total       int64
	pending     bool
	send        func(n, bytes int64, first, last uint64, total int64)
}

const dropReportEvery = time.Second

func (d *dropReport) add(x spool.Dropped) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == 0 {
		d.first = x.ID
	}
	d.n++
	d.total++
	d.bytes += x.Bytes
	d.last = x.ID
	if !d.pending {
		d.pending = true
		time.AfterFunc(dropReportEvery, d.flush)
	}
}

func (d *dropReport) flush() {
	d.mu.Lock()
	n, bytes, first, last, total := d.n, d.bytes, d.first, d.last, d.total
	d.n, d.bytes, d.pending = 0, 0, false
	d.mu.Unlock()
	if n > 0 {
		d.send(n, bytes, first, last, total)
	}
}
