package sdk

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/slogtest"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/logtk/logtk/internal/ipc"
	"github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/shmring"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
)

// frameSink collects the frames a client writes, as the host would read
// them.
type frameSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *frameSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *frameSink) records(t testing.TB) []*logtkv1.Record {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := ipc.NewReader(bytes.NewReader(s.buf.Bytes()), 0)
	var out []*logtkv1.Record
	for {
		ty, p, err := r.Next()
		if err != nil {
			return out
		}
		if ty != ipc.TypeRecord {
			continue
		}
		if err := record.Validate(p); err != nil {
			t.Fatalf("SDK wrote an invalid record: %v", err)
		}
		var rec logtkv1.Record
		if err := proto.Unmarshal(p, &rec); err != nil {
			t.Fatal(err)
		}
		out = append(out, &rec)
	}
}

func testLogger(opts Options) (*Logger, *frameSink) {
	sink := &frameSink{}
	c := newClient(sink, &bytes.Buffer{})
	l := &Logger{c: c, name: opts.Name, level: opts.Level, addCaller: opts.AddCaller}
	if l.level == nil {
		l.level = LevelInfo
	}
	return l, sink
}

func attrMap(attrs []*logtkv1.Attr) map[string]any {
	m := map[string]any{}
	for _, a := range attrs {
		switch v := a.Value.(type) {
		case *logtkv1.Attr_Group:
			m[a.Key] = attrMap(v.Group.GetAttrs())
		case *logtkv1.Attr_Str:
			m[a.Key] = v.Str
		case *logtkv1.Attr_Int:
			m[a.Key] = v.Int
		case *logtkv1.Attr_Uint:
			m[a.Key] = v.Uint
		case *logtkv1.Attr_Float:
			m[a.Key] = v.Float
		case *logtkv1.Attr_Bool:
			m[a.Key] = v.Bool
		case *logtkv1.Attr_TimeUnixNano:
			m[a.Key] = time.Unix(0, v.TimeUnixNano)
		case *logtkv1.Attr_DurationNanos:
			m[a.Key] = time.Duration(v.DurationNanos)
		case *logtkv1.Attr_Bytes:
			m[a.Key] = v.Bytes
		default:
			m[a.Key] = nil
		}
	}
	return m
}

func TestSlogtest(t *testing.T) {
	l, sink := testLogger(Options{Level: LevelDebug})
	results := func() []map[string]any {
		var out []map[string]any
		for _, r := range sink.records(t) {
			m := attrMap(r.Attrs)
			if r.TimeUnixNano != 0 {
				m[slog.TimeKey] = time.Unix(0, r.TimeUnixNano)
			}
			m[slog.LevelKey] = r.Level
			m[slog.MessageKey] = r.Message
			out = append(out, m)
		}
		return out
	}
	if err := slogtest.TestHandler(l.Handler(), results); err != nil {
		t.Fatal(err)
	}
}

func TestLoggerRecords(t *testing.T) {
	l, sink := testLogger(Options{Name: "svc", Level: LevelTrace, AddCaller: true})
	l.Trace("t")
	l.Named("db").With(String("conn", "a")).WithGroup("q").With(Int("n", 1)).Notice("query", Duration("took", time.Second))
	l.Error("failed", Err(errors.New("boom")))
	l.Log(LevelWarn-1, "between levels rounds down")
	recs := sink.records(t)
	if len(recs) != 4 {
		t.Fatalf("got %d records", len(recs))
	}
	if recs[0].Level != logtkv1.Level_LEVEL_TRACE || recs[0].Logger != "svc" {
		t.Errorf("record 0: %v", recs[0])
	}
	if c := recs[0].Caller; c == nil || !strings.HasSuffix(c.File, "sdk_test.go") || !strings.Contains(c.Function, "TestLoggerRecords") {
		t.Errorf("caller = %v, want this test", c)
	}
	r := recs[1]
	if r.Logger != "svc.db" || r.Level != logtkv1.Level_LEVEL_NOTICE {
		t.Errorf("record 1: %v", r)
	}
	got := attrMap(r.Attrs)
	want := map[string]any{"conn": "a", "q": map[string]any{"n": int64(1), "took": time.Second}}
	if !equalMaps(got, want) {
		t.Errorf("attrs = %v, want %v", got, want)
	}
	if attrMap(recs[2].Attrs)["error"] != "boom" {
		t.Errorf("record 2 attrs: %v", recs[2].Attrs)
	}
	if recs[3].Level != logtkv1.Level_LEVEL_NOTICE {
		t.Errorf("level between notice and warn = %v", recs[3].Level)
	}
}

func equalMaps(a, b map[string]any) bool {
	return slog.AnyValue(a).String() == slog.AnyValue(b).String()
}

func TestLevelFilter(t *testing.T) {
	l, sink := testLogger(Options{Level: LevelWarn})
	l.Info("dropped")
	l.Warn("kept")
	if recs := sink.records(t); len(recs) != 1 || recs[0].Message != "kept" {
		t.Fatalf("records = %v", recs)
	}
}

func TestOversizedRecordIsTruncatedNotLost(t *testing.T) {
	l, sink := testLogger(Options{})
	l.c.maxRecord = 1000
	l.Info(strings.Repeat("é", 2000), String("big", strings.Repeat("x", 5000)))
	recs := sink.records(t)
	if len(recs) != 1 {
		t.Fatalf("got %d records", len(recs))
	}
	r := recs[0]
	if len(r.Message) > 500 || !strings.HasPrefix(r.Message, "éé") {
		t.Fatalf("message of %d bytes", len(r.Message))
	}
	if n, _ := attrMap(r.Attrs)["logtk.truncated_from_bytes"].(int64); n < 9000 {
		t.Fatalf("attrs = %v", r.Attrs)
	}
}

func TestFallbackWritesText(t *testing.T) {
	var out bytes.Buffer
	c := newClient(nil, &out)
	l := &Logger{c: c, level: LevelInfo, name: "app"}
	l.Info("no host here", Int("n", 3))
	if got := out.String(); !strings.Contains(got, "INFO  app: no host here n=3") {
		t.Fatalf("fallback output = %q", got)
	}
	if err := c.writeFrame([]byte("x")); err != ErrNoHost {
		t.Fatalf("writeFrame without host = %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestLostChannelFallsBack(t *testing.T) {
	var out bytes.Buffer
	c := newClient(failWriter{}, &out)
	l := &Logger{c: c, level: LevelInfo}
	l.Info("first")
	l.Info("second")
	got := out.String()
	if strings.Count(got, "lost the channel") != 1 || !strings.Contains(got, "first") || !strings.Contains(got, "second") {
		t.Fatalf("output = %q", got)
	}
}

func TestLogDoesNotAllocate(t *testing.T) {
	l, _ := testLogger(Options{})
	l.c.w = discard{}
	n := testing.AllocsPerRun(1000, func() {
		l.Info("request served", String("path", "/api/v1/users"), Int("status", 200),
			Duration("elapsed", time.Millisecond), Bool("cached", false))
	})
	if n != 0 {
		t.Fatalf("a log call with 4 attributes allocated %.1f times", n)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// ringLogger returns a logger whose client writes to a ring of capacity
// bytes that the test reads, as the host would.
func ringLogger(t testing.TB, capacity int) (*Logger, *shmring.Shared, *frameSink) {
	l, sink := testLogger(Options{})
	s, f, err := shmring.Create("logtk-sdk-test", capacity)
	if err != nil {
		t.Skipf("memfd: %v", err)
	}
	f.Close()
	t.Cleanup(func() { s.Close() })
	l.c.useRing(s)
	return l, s, sink
}

// ringMessages reads the ring's record entries, checks them and returns
// their messages; it skips barriers.
func ringMessages(t *testing.T, s *shmring.Shared) []string {
	t.Helper()
	var msgs []string
	if _, err := s.Read(shmring.NoLimit, func(e []byte) bool {
		switch ipc.Type(e[0]) {
		case ipc.TypeBarrier: // after a record sent through the socket
			return true
		case ipc.TypeRecord:
		default:
			t.Fatalf("ring entry of type %v", ipc.Type(e[0]))
		}
		if err := record.Validate(e[1:]); err != nil {
			t.Fatalf("SDK wrote an invalid record: %v", err)
		}
		var rec logtkv1.Record
		if err := proto.Unmarshal(e[1:], &rec); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, rec.Message)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return msgs
}

// TestRingRecords: records built in place in the ring, and those that
// outgrow the room they were given there, arrive whole and in order; one
// too large for the ring goes through the socket.
func TestRingRecords(t *testing.T) {
	l, s, sink := ringLogger(t, 64<<10)
	h := slog.New(&Handler{l: l.WithGroup("g")})
	for i := range 20 {
		switch i % 4 {
		case 0:
			l.Info(fmt.Sprint(i), String("path", "/"), Int("status", 200))
		case 1:
			h.Info(fmt.Sprint(i), "k", "v") // the slog handler's path, in a group
		case 2:
			l.Info(fmt.Sprint(i), String("big", strings.Repeat("x", 6000))) // outgrows 4 KiB
		case 3:
			l.With(Bool("with", true)).Warn(fmt.Sprint(i))
		}
		if i == 10 {
			l.Info("too large", String("big", strings.Repeat("x", 40000)))
		}
	}
	got := strings.Join(ringMessages(t, s), " ")
	if want := "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19"; got != want {
		t.Fatalf("ring messages %q, want %q", got, want)
	}
	// The socket carries it as RECORD_AT, which the sink does not decode.
	if !bytes.Contains(sink.buf.Bytes(), []byte("too large")) {
		t.Fatal("the record too large for the ring did not go through the socket")
	}
}

func TestRingLogDoesNotAllocate(t *testing.T) {
	l, s, _ := ringLogger(t, 1<<20)
	n := testing.AllocsPerRun(1000, func() {
		l.Info("request served", String("path", "/api/v1/users"), Int("status", 200),
			Duration("elapsed", time.Millisecond), Bool("cached", false))
	})
	if n != 0 {
		t.Fatalf("a log call with 4 attributes through the ring allocated %.1f times", n)
	}
	if got := len(ringMessages(t, s)); got != 1001 {
		t.Fatalf("%d records in the ring, want 1001", got)
	}
}

// TestCallerThroughRing: the caller a record names is the log call's,
// whichever path the record takes to the host.
func TestCallerThroughRing(t *testing.T) {
	l, s, _ := ringLogger(t, 64<<10)
	l.addCaller = true
	l.Info("in place")
	l.Info("outgrows its room", String("big", strings.Repeat("x", 6000)))
	if _, err := s.Read(shmring.NoLimit, func(e []byte) bool {
		var rec logtkv1.Record
		if err := proto.Unmarshal(e[1:], &rec); err != nil {
			t.Fatal(err)
		}
		if c := rec.Caller; c == nil || !strings.HasSuffix(c.File, "sdk_test.go") || !strings.Contains(c.Function, "TestCallerThroughRing") {
			t.Errorf("%q: caller = %v, want this test", rec.Message, c)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
}

type panicky struct{}

func (panicky) String() string { panic("String of a value") }

// TestRingPanicInValue: a value whose String method panics while its
// record is encoded in the ring panics the log call, as it would with any
// logger, and leaves the ring usable: the next call neither hangs nor
// loses its record.
func TestRingPanicInValue(t *testing.T) {
	l, s, _ := ringLogger(t, 64<<10)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the String method's panic did not reach the caller")
			}
		}()
		l.Info("panics", Any("v", panicky{}))
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Info("after")
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the log call after a panic hung: the ring's lock was left held")
	}
	if got := strings.Join(ringMessages(t, s), " "); got != "after" {
		t.Fatalf("ring messages %q, want %q", got, "after")
	}
}

// TestRingAbandoned: once the host abandons the ring (it says so in the
// ring's header) every record goes through the socket: none is written
// where nobody reads.
func TestRingAbandoned(t *testing.T) {
	l, s, sink := ringLogger(t, 64<<10)
	l.Info("before")
	s.Abandon()
	for i := range 20 {
		l.Info(fmt.Sprint("after ", i))
	}
	if got := strings.Join(ringMessages(t, s), " "); got != "before" {
		t.Fatalf("ring messages %q, want only the one before", got)
	}
	for i := range 20 {
		if !bytes.Contains(sink.buf.Bytes(), []byte(fmt.Sprint("after ", i))) {
			t.Fatalf("record %d did not go through the socket", i)
		}
	}
}
