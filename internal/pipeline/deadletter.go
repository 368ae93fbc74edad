package pipeline

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/internal/fsutil"
	"github.com/logtk/logtk/record"
	"github.com/logtk/logtk/record/textfmt"
)

// deadLetter writes a batch a stage could not process to the dead-letter
// directory, with the reason beside it, and reports it. If even that fails
// the records go to the host log as text.
func (p *Pipeline) deadLetter(stage string, j *job, cause error) {
	p.deadLetterBytes(stage, j.batch, j.count, cause)
}

// deadLetterBytes dead-letters a batch: encoded records (count >= 0) or,
// with count -1, a formatted batch taken from a spool.
func (p *Pipeline) deadLetterBytes(stage string, batch []byte, count int, cause error) error {
	j := &job{batch: batch, count: count}
	what := "uvarint length + logtk.v1.Record, repeated"
	if count < 0 {
		j.count, _ = entries.Count(batch)
		what = "uvarint length + formatted record, repeated (from the transport's spool)"
	}
	n := p.deadSeq.Add(1)
	base := filepath.Join(p.deadDir, fmt.Sprintf("%d-%d", time.Now().UnixNano(), n))
	reason := fmt.Sprintf("stage: %s\nrecords: %d\ntime: %s\nerror: %v\nformat: logtk batch (%s)\n",
		stage, j.count, time.Now().UTC().Format(time.RFC3339Nano), cause, what)
	err := os.MkdirAll(p.deadDir, 0o755)
	if err == nil {
		err = fsutil.WriteSynced(base+".batch", j.batch, os.O_EXCL)
	}
	if err == nil {
		err = fsutil.WriteSynced(base+".reason", []byte(reason), os.O_EXCL)
	}
	if err != nil {
		// What a full disk took part of goes: a .batch with no .reason,
		// or cut short, is no dead letter.
		os.Remove(base + ".batch")
		os.Remove(base + ".reason")
		p.lost.logged.Add(int64(j.count))
		p.log.Error("dead-lettering failed; records follow in this log", "stage", stage, "error", err)
		entries.Each(j.batch, func(e []byte) {
			if count < 0 {
				p.log.Error("undelivered record", "formatted", string(e))
			} else {
				p.log.Error("undelivered record", "record", string(textfmt.AppendEncoded(nil, e)))
			}
		})
		return err
	}
	p.lost.deadLettered.Add(int64(j.count))
	p.deadMu.Lock()
	p.deadByStage[stage] += int64(j.count)
	p.deadMu.Unlock()
	p.metrics.DeadLettered(stage, j.count)
	p.log.Error("plugin failed; batch dead-lettered", "stage", stage, "records", j.count, "file", base+".batch", "error", cause)
	if count >= 0 && onlyReports(j.batch) {
		return nil // a report about a report would loop while the plugin stays broken
	}
	p.report(record.LevelError, fmt.Sprintf("%s failed; %d records dead-lettered to %s: %v", stage, j.count, base+".batch", cause),
		slog.String("stage", stage), slog.Int("records", j.count), slog.String("file", base+".batch"))
	return nil
}

// ReportLogger is the logger name of the records Options.Report writes:
// a batch of nothing but those that fails is not reported again (a report
// about a report would loop while the plugin stays broken).
const ReportLogger = "logtk.pipeline"

func onlyReports(batch []byte) bool {
	all := true
	entries.Each(batch, func(e []byte) {
		var v record.Record
		v.Parse(e)
		all = all && string(v.Logger) == ReportLogger
	})
	return all
}
