package otlp

import (
	"compress/gzip"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	"google.golang.org/protobuf/proto"

	"github.com/logtk/logtk/internal/entries"
	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/record"
	"github.com/logtk/logtk/sdk/plugin"
)

// tcpConn is a plugin connection over TCP, as the host's net_dial gives.
type tcpConn struct{ c net.Conn }

func (t tcpConn) Write(b []byte) error { _, err := t.c.Write(b); return err }
func (t tcpConn) Close() error         { return t.c.Close() }
func (t tcpConn) Read(b []byte, timeout time.Duration) (int, error) {
	t.c.SetReadDeadline(time.Now().Add(timeout))
	n, err := t.c.Read(b)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return 0, plugin.ErrTimeout
	}
	return n, err
}

// receiver is an OTLP/HTTP receiver built on the official types, whose
// answers a test scripts.
type receiver struct {
	mu       sync.Mutex
	requests []*collogs.ExportLogsServiceRequest
	headers  []http.Header
	answer   func(n int) (status int, header map[string]string, body []byte)
}

func (rv *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = zr
	}
	b, _ := io.ReadAll(body)
	var req collogs.ExportLogsServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil || r.URL.Path != "/v1/logs" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "bad request", 400)
		return
	}
	rv.mu.Lock()
	rv.requests = append(rv.requests, &req)
	rv.headers = append(rv.headers, r.Header)
	n := len(rv.requests)
	rv.mu.Unlock()
	status, header, resp := 200, map[string]string(nil), []byte(nil)
	if rv.answer != nil {
		status, header, resp = rv.answer(n)
	}
	for k, v := range header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(status)
	w.Write(resp)
}

func newTransport(t *testing.T, rv *receiver, config string) (*Transport, *time.Time) {
	t.Helper()
	srv := httptest.NewServer(rv)
	t.Cleanup(srv.Close)
	tr := New()
	now := time.Unix(1_800_000_000, 0)
	tr.now = func() time.Time { return now }
	tr.clock = func() bool { return true }
	tr.dial = func(string) (conn, error) {
		c, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), 5*time.Second)
		return tcpConn{c}, err
	}
	if err := tr.Configure([]byte(config)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, &now
}

func batchOf(t *testing.T, recs ...[]byte) *plugin.Batch {
	var b []byte
	for _, r := range recs {
		b = entries.Append(b, r)
	}
	pb, err := plugin.NewBatch(1, b)
	if err != nil {
		t.Fatal(err)
	}
	return pb
}

func sample(seq uint64, msg string) []byte {
	b := irecord.AppendHead(nil, time.Unix(1_700_000_000, 5), record.LevelWarn, msg, "shop.orders")
	b = irecord.AppendAttr(b, slog.Int("order", 42))
	b = irecord.AppendAttr(b, slog.Float64("ratio", 0.5))
	b = irecord.AppendAttr(b, slog.Bool("paid", true))
	b = irecord.AppendAttr(b, slog.Group("http", slog.Int("status", 504), slog.String("path", "/pay")))
	b = irecord.AppendAttr(b, slog.String("trace_id", "0102030405060708090a0b0c0d0e0f10"))
	b = irecord.AppendAttr(b, slog.String("span_id", "0102030405060708"))
	return irecord.AppendStamp(b, &irecord.Stamp{Worker: "api", WorkerIndex: 2, PID: 4242, Incarnation: 1, Seq: seq, Source: record.SourceSDK, Received: time.Unix(1_700_000_001, 0)})
}

// TestMapping: a batch goes out as one ExportLogsServiceRequest that the
// official types read back with every field where docs/otlp.md says.
func TestMapping(t *testing.T) {
	rv := &receiver{}
	tr, _ := newTransport(t, rv, `{"endpoint":"collector","headers":{"authorization":"Bearer s3cret"},"resource":{"deployment.environment":"prod"}}`)
	if err := tr.Write(batchOf(t, sample(7, "order slow"), sample(8, "order failed"))); err != nil {
		t.Fatal(err)
	}
	if len(rv.requests) != 1 || rv.headers[0].Get("Authorization") != "Bearer s3cret" || rv.headers[0].Get("Content-Encoding") != "gzip" {
		t.Fatalf("%d requests, headers %v", len(rv.requests), rv.headers)
	}
	rl := rv.requests[0].ResourceLogs
	if len(rl) != 1 || len(rl[0].ScopeLogs) != 1 || len(rl[0].ScopeLogs[0].LogRecords) != 2 {
		t.Fatalf("request: %v", rv.requests[0])
	}
	res := map[string]string{}
	for _, kv := range rl[0].Resource.Attributes {
		res[kv.Key] = kv.Value.GetStringValue()
	}
	if res["service.name"] != "api" || res["deployment.environment"] != "prod" {
		t.Errorf("resource %v", res)
	}
	if n := rl[0].ScopeLogs[0].Scope.GetName(); n != "shop.orders" {
		t.Errorf("scope %q", n)
	}
	lr := rl[0].ScopeLogs[0].LogRecords[1]
	if lr.TimeUnixNano != 1_700_000_000_000_000_005 || lr.ObservedTimeUnixNano != 1_700_000_001_000_000_000 || lr.SeverityNumber != 13 || lr.SeverityText != "WARN" ||
		lr.Body.GetStringValue() != "order failed" || len(lr.TraceId) != 16 || lr.TraceId[15] != 0x10 || len(lr.SpanId) != 8 {
		t.Errorf("log record %v", lr)
	}
	attrs := map[string]string{}
	for _, kv := range lr.Attributes {
		attrs[kv.Key] = kv.Value.String()
	}
	for k, want := range map[string]string{"order": "int_value:42", "ratio": "double_value:0.5", "paid": "bool_value:true", "logtk.worker": `string_value:"api"`,
		"logtk.worker_index": "int_value:2", "logtk.pid": "int_value:4242", "logtk.incarnation": "int_value:1", "logtk.seq": "int_value:8", "logtk.source": `string_value:"sdk"`} {
		if got := strings.ReplaceAll(attrs[k], "  ", " "); got != want {
			t.Errorf("attribute %s = %s, want %s", k, got, want)
		}
	}
	if !strings.Contains(attrs["http"], `"status"`) || !strings.Contains(attrs["http"], "504") {
		t.Errorf("group http = %s", attrs["http"])
	}
	if _, ok := attrs["trace_id"]; ok {
		t.Errorf("trace_id also sent as an attribute")
	}
}

// TestAnswers: 2xx delivers (a partial success is counted); 503 with
// Retry-After in seconds, and 429 with it as a date, ask for the batch
// again and nothing is sent before it; a
// 400 refuses the batch with the receiver's words; a receiver that closes
// the connection gets the batch again on a new one.
func TestAnswers(t *testing.T) {
	rv := &receiver{}
	tr, now := newTransport(t, rv, `{"endpoint":"collector","compression":"none"}`)
	b := batchOf(t, sample(1, "a"), sample(2, "b"), sample(3, "c"))

	rv.answer = func(int) (int, map[string]string, []byte) {
		return 503, map[string]string{"Retry-After": "120"}, []byte("overloaded")
	}
	if err := tr.Write(b); !plugin.IsRetry(err) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("503: %v", err)
	}
	*now = now.Add(119 * time.Second)
	if err := tr.Write(b); !plugin.IsRetry(err) || len(rv.requests) != 1 {
		t.Fatalf("before Retry-After: %v, %d requests (want no new one)", err, len(rv.requests))
	}
	*now = now.Add(2 * time.Second)
	resp, _ := proto.Marshal(&collogs.ExportLogsServiceResponse{PartialSuccess: &collogs.ExportLogsPartialSuccess{RejectedLogRecords: 2, ErrorMessage: "too old"}})
	rv.answer = func(int) (int, map[string]string, []byte) { return 200, nil, resp }
	if err := tr.Write(b); err != nil || len(rv.requests) != 2 {
		t.Fatalf("after Retry-After: %v, %d requests", err, len(rv.requests))
	}
	if tr.Rejected() != 2 {
		t.Fatalf("rejected %d, want 2", tr.Rejected())
	}
	// 429 with an HTTP date: the same, until that date.
	*now = now.Add(time.Hour)
	rv.answer = func(int) (int, map[string]string, []byte) {
		return 429, map[string]string{"Retry-After": now.Add(30 * time.Second).UTC().Format(http.TimeFormat)}, []byte("slow down")
	}
	if err := tr.Write(b); !plugin.IsRetry(err) || !strings.Contains(err.Error(), "429") {
		t.Fatalf("429: %v", err)
	}
	sent := len(rv.requests)
	*now = now.Add(29 * time.Second)
	if err := tr.Write(b); !plugin.IsRetry(err) || len(rv.requests) != sent {
		t.Fatalf("before the 429's Retry-After date: %v, %d requests (want %d)", err, len(rv.requests), sent)
	}
	*now = now.Add(2 * time.Second)
	rv.answer = nil
	if err := tr.Write(b); err != nil || len(rv.requests) != sent+1 {
		t.Fatalf("after the 429's Retry-After date: %v", err)
	}
	rv.answer = func(int) (int, map[string]string, []byte) { return 400, nil, []byte("field 6 is wrong") }
	if err := tr.Write(b); err == nil || plugin.IsRetry(err) || !strings.Contains(err.Error(), "400: field 6 is wrong") {
		t.Fatalf("400: %v", err)
	}
	rv.answer = func(int) (int, map[string]string, []byte) { return 200, map[string]string{"Connection": "close"}, nil }
	for range 3 {
		if err := tr.Write(b); err != nil {
			t.Fatalf("with the connection closed after each answer: %v", err)
		}
	}
}

// TestNotRecords: entries that are not records are refused, not sent.
func TestNotRecords(t *testing.T) {
	rv := &receiver{}
	tr, _ := newTransport(t, rv, `{"endpoint":"collector"}`)
	if err := tr.Write(batchOf(t, []byte("{\"msg\":\"json, not a record\"}\n"))); err == nil || plugin.IsRetry(err) || len(rv.requests) != 0 {
		t.Fatalf("a text batch: %v, %d requests", err, len(rv.requests))
	}
}

func TestConfigure(t *testing.T) {
	for _, c := range []string{`{}`, `{"endpoint":"x","compression":"zstd"}`, `{"endpoint":"x","path":"v1/logs"}`, `{"endpoint":"x","timeout":"-1s"}`,
		`{"endpoint":"x","headers":{"content-length":"3"}}`, `{"endpoint":"x","headers":{"a b":"c"}}`, `{"endpoint":"x","headers":{"a":"b\nc"}}`} {
		if err := New().Configure([]byte(c)); err == nil {
			t.Errorf("%s was accepted", c)
		}
	}
}

// TestExtraBytes: a receiver that sends more than one answer to a request
// has the batch sent again on a new connection, not settled by an answer
// that may be another request's.
func TestExtraBytes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conns := 0
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns++
			go func(c net.Conn, first bool) {
				defer c.Close()
				buf := make([]byte, 1<<20)
				c.Read(buf) // the request (small: one read)
				ok := "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
				if first {
					c.Write([]byte(ok + ok)) // two answers to one request
				} else {
					c.Write([]byte(ok))
				}
				c.Read(buf)
			}(c, conns == 1)
		}
	}()
	tr := New()
	tr.dial = func(string) (conn, error) {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		return tcpConn{c}, err
	}
	if err := tr.Configure([]byte(`{"endpoint":"x","compression":"none"}`)); err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	b := batchOf(t, sample(1, "a"))
	if err := tr.Write(b); !plugin.IsRetry(err) {
		t.Fatalf("with two answers to one request: %v, want a retry", err)
	}
	if err := tr.Write(b); err != nil {
		t.Fatalf("again, on a new connection: %v", err)
	}
}

// TestRetryAfterWithoutClock: without the clock granted, a Retry-After
// is not waited for (the sandbox's time stands still: the wait would
// never end); the host's backoff paces the retries.
func TestRetryAfterWithoutClock(t *testing.T) {
	rv := &receiver{}
	tr, _ := newTransport(t, rv, `{"endpoint":"collector"}`)
	tr.clock = func() bool { return false }
	rv.answer = func(n int) (int, map[string]string, []byte) {
		if n == 1 {
			return 503, map[string]string{"Retry-After": "1"}, nil
		}
		return 200, nil, nil
	}
	b := batchOf(t, sample(1, "a"))
	if err := tr.Write(b); !plugin.IsRetry(err) {
		t.Fatalf("503: %v", err)
	}
	if err := tr.Write(b); err != nil || len(rv.requests) != 2 {
		t.Fatalf("the retry at once: %v, %d requests", err, len(rv.requests))
	}
}
