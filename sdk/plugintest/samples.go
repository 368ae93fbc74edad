package plugintest

import (
	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/record"
	"log/slog"
	"strings"
	"time"
)

// SampleRecords returns encoded, host-stamped records that exercise every
// part of the schema: all attribute kinds, nested groups, a caller, text
// that needs escaping, a multi-line crash report, and a record with almost
// nothing in it. They are the same on every call, for golden files.
func SampleRecords() [][]byte {
	t0 := time.Date(2026, 11, 27, 8, 0, 0, 123456789, time.UTC)
	stamp := func(b []byte, seq uint64, source int32) []byte {
		return irecord.AppendStamp(b, &irecord.Stamp{Worker: "web", WorkerIndex: 1, PID: 4242, Incarnation: 2, Seq: seq, Source: source, Received: t0.Add(time.Millisecond)})
	}
	var recs [][]byte

	b := irecord.AppendHead(nil, t0, record.LevelInfo, "request served", "http")
	b = irecord.AppendCaller(b, "server.go", 42, "main.serve")
	for _, a := range []slog.Attr{
		slog.String("path", "/api/v1/users"), slog.Int("status", 200), slog.Uint64("bytes", 1<<40),
		slog.Float64("ratio", 0.25), slog.Bool("cached", false), slog.Any("token", []byte{0xde, 0xad, 0xbe, 0xef}),
		slog.Time("started", t0.Add(-time.Second)), slog.Duration("elapsed", 1500*time.Microsecond),
		slog.Group("client", slog.String("ip", "10.1.2.3"), slog.Group("geo", slog.String("country", "NZ"))),
	} {
		b = irecord.AppendAttr(b, a)
	}
	recs = append(recs, stamp(b, 1, record.SourceSDK))

	b = irecord.AppendHead(nil, t0.Add(time.Second), record.LevelWarn, `quote " backslash \ tab	 and ünïcode ✓`, "")
	b = irecord.AppendAttr(b, slog.String("key with space", "value=with=equals"))
	b = irecord.AppendAttr(b, slog.String("empty", ""))
	recs = append(recs, stamp(b, 2, record.SourceStderr))

	b = irecord.AppendHead(nil, t0.Add(2*time.Second), record.LevelError, "worker exited with status 2: panic: boom", "logtk.host")
	b = irecord.AppendAttr(b, slog.Int("exit_code", 2))
	b = irecord.AppendAttr(b, slog.String("panic", strings.Join([]string{
		"panic: boom", "", "goroutine 1 [running]:", "main.main()", "\t/src/main.go:12 +0x1d"}, "\n")))
	recs = append(recs, stamp(b, 3, record.SourceHost))

	b = irecord.AppendHead(nil, time.Time{}, record.LevelDebug, "", "")
	recs = append(recs, b)

	// As the log server stores it: where it came from stamped last.
	b = irecord.AppendHead(nil, t0.Add(3*time.Second), record.LevelInfo, "order placed", "shop.orders")
	b = irecord.AppendAttr(b, slog.Int("order", 1001))
	b = stamp(b, 4, record.SourceSDK)
	recs = append(recs, irecord.AppendServerStamp(b, "web-01", "web-01.example.com", "shop"))
	return recs
}
