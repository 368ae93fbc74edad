package plugintest

import (
	"math"

	"log/slog"
	"strings"
	"time"

	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/record"
)

// SampleRecords returns encoded, host-stamped records that exercise every
// part of the schema: all attribute kinds, nested groups, a caller, text
// that needs escaping, a multi-line crash report, a record with almost
// nothing in it, and values at their edges (NaN and infinities, control
// bytes, empty groups and keys, the extreme integers). They are the same on every call, for golden files.
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

	// Values at their edges: floats that are not numbers, control bytes
	// and a line separator in text, empty groups, a group with an empty
	// key, the extreme integers, an empty byte string, a negative
	// duration.
	b = irecord.AppendHead(nil, t0.Add(4*time.Second), record.LevelWarn, "bell\a escape\x1b[31m nul\x00 sep\u2028 end", "")
	for _, a := range []slog.Attr{
		slog.Float64("nan", math.NaN()), slog.Float64("inf", math.Inf(1)), slog.Float64("-inf", math.Inf(-1)),
		slog.Float64("-zero", math.Copysign(0, -1)), slog.Float64("tiny", 5e-324), slog.Float64("big", 1e21),
		slog.Int64("min", math.MinInt64), slog.Uint64("max", math.MaxUint64),
		slog.Any("nothing", []byte{}), slog.Duration("back", -1500*time.Millisecond),
		slog.String("", "an empty key"), slog.String("tab\tkey", "line one\nline two"),
	} {
		b = irecord.AppendAttr(b, a)
	}
	// Written by hand: slog drops an empty group and inlines an unnamed
	// one, but another writer may send either.
	b = append(b, 0x22, 0x09, 0x0a, 0x05, 'e', 'm', 'p', 't', 'y', 0x52, 0x00)          // empty {}
	b = append(b, 0x22, 0x0a, 0x52, 0x08, 0x0a, 0x06, 0x0a, 0x02, 'i', 'n', 0x12, 0x00) // {} with {in: ""} inside, no key
	recs = append(recs, stamp(b, 5, record.SourceStdout))
	return recs
}
