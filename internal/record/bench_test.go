package record

import (
	"log/slog"
	"testing"
	"time"

	pubrecord "github.com/logtk/logtk/record"
)

// typical is the record the SDK benchmarks log: a message and 4 attributes.
func typical() []byte {
	b := AppendHead(nil, time.Now(), pubrecord.LevelInfo, "request served", "")
	for _, a := range []slog.Attr{slog.String("method", "GET"), slog.String("path", "/api/v1/users"),
		slog.String("remote", "10.1.2.3:4567"), slog.Int("status", 200)} {
		b = AppendAttr(b, a)
	}
	return b
}

// BenchmarkIngestRecord is the host's work per SDK record: check it and
// stamp it into a slab.
func BenchmarkIngestRecord(b *testing.B) {
	rec := typical()
	b.Run("validate", func(b *testing.B) {
		b.SetBytes(int64(len(rec)))
		for b.Loop() {
			if err := Validate(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stamp", func(b *testing.B) {
		slab := make([]byte, 0, 1<<20)
		now := time.Now()
		s := Stamp{Worker: "web", WorkerIndex: 3, PID: 12345, Incarnation: 1, Source: pubrecord.SourceSDK, Received: now}
		for b.Loop() {
			if cap(slab)-len(slab) < 512 {
				slab = slab[:0]
			}
			slab = append(slab, rec...)
			s.Seq++
			slab = AppendStamp(slab, &s)
		}
	})
}

// BenchmarkParse is the log server's read of every stamped record it
// stores (the gap check) and a formatter's read of a record.
func BenchmarkParse(b *testing.B) {
	s := Stamp{Worker: "web", WorkerIndex: 3, PID: 12345, Incarnation: 1, Seq: 1 << 20, Source: pubrecord.SourceSDK, Received: time.Now()}
	rec := AppendStamp(typical(), &s)
	b.SetBytes(int64(len(rec)))
	var v pubrecord.Record
	for b.Loop() {
		if !v.Parse(rec) || v.Seq != s.Seq {
			b.Fatal("parse")
		}
	}
}

// BenchmarkWholeFields is the log server's check, per stored record,
// before it stamps it.
func BenchmarkWholeFields(b *testing.B) {
	s := Stamp{Worker: "web", WorkerIndex: 3, PID: 12345, Incarnation: 1, Seq: 1 << 20, Source: pubrecord.SourceSDK, Received: time.Now()}
	rec := AppendStamp(typical(), &s)
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		if !WholeFields(rec) {
			b.Fatal("not whole")
		}
	}
}
