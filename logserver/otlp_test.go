package logserver

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/record"
)

func otlpServer(t *testing.T) (*Server, string, string) {
	return serveOTLPTest(t, config.OTLPConfig{HTTP: "127.0.0.1:0", Application: "otlp", ByServiceName: true, MaxRequestBytes: 64 << 10}, (*Server).ServeOTLP)
}

// serveOTLPTest starts a server with the otlp block o (fsync "batch"),
// its receiver served by serve on a port of its own; it returns the
// server, its directory and the receiver's address.
func serveOTLPTest(t *testing.T, o config.OTLPConfig, serve func(*Server, net.Listener) error, edit ...func(*config.ServerConfig)) (*Server, string, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := &config.Config{Server: &config.ServerConfig{Listen: "127.0.0.1:0", Dir: dir, Tokens: [][]byte{[]byte("tok")}, Fsync: "batch", MaxBytes: 1 << 30, OTLP: &o}}
	for _, e := range edit {
		e(cfg.Server)
	}
	srv, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := serve(srv, ln); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return srv, dir, ln.Addr().String()
}

// TestOTLPExporter: the OpenTelemetry Go SDK's OTLP/HTTP log exporter
// into the server: every record stored once, with severity, body,
// attributes, trace ids, scope and resource mapped.
func TestOTLPExporter(t *testing.T) {
	srv, dir, addr := otlpServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exp, err := otlploghttp.New(ctx, otlploghttp.WithEndpoint(addr), otlploghttp.WithInsecure(), otlploghttp.WithCompression(otlploghttp.GzipCompression))
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "checkout"), attribute.String("host.name", "web-1"))
	lp := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(sdklog.NewSimpleProcessor(exp)))
	logger := lp.Logger("shop.orders", otellog.WithInstrumentationVersion("1.2.3"))
	for i := range 3 {
		var r otellog.Record
		r.SetTimestamp(time.Unix(1700000000+int64(i), 0))
		r.SetSeverity(otellog.SeverityWarn)
		r.SetSeverityText("WARN")
		r.SetBody(attribute.StringValue(fmt.Sprintf("order %d slow", i)))
		r.AddAttributes(attribute.Int("order", i), attribute.String("region", "eu"), attribute.Map("http", attribute.Int("status", 504)))
		logger.Emit(ctx, r)
	}
	if err := lp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n := srv.OTLPStats().Records.Load(); n != 3 {
		t.Fatalf("%d records stored, want 3", n)
	}
	recs := storedRecords(t, dir, "checkout")
	if len(recs) != 3 {
		t.Fatalf("stored %v", recs)
	}
	r := recs[1]
	want := map[string]string{"msg": "order 1 slow", "level": fmt.Sprint(record.LevelWarn), "logger": "shop.orders", "order": "1",
		"region": "eu", "severity_text": "WARN", "resource.service.name": "checkout", "resource.host.name": "web-1",
		"application": "checkout", "sender": "otlp-127.0.0.1"}
	for k, v := range want {
		if r[k] != v {
			t.Errorf("%s = %q, want %q (record %v)", k, r[k], v, r)
		}
	}
}

// TestOTLPRequests: JSON and gzip are taken; a wrong type, an oversized
// body and a malformed one are refused with the status the spec says,
// and nothing of them is stored.
func TestOTLPRequests(t *testing.T) {
	srv, dir, addr := otlpServer(t)
	post := func(ct, enc string, body []byte) (int, string) {
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/logs", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		if enc != "" {
			req.Header.Set("Content-Encoding", enc)
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	js := `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1700000000000000000","severityNumber":17,"body":{"stringValue":"from json"},"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}]}]}`
	if code, body := post("application/json", "", []byte(js)); code != 200 || !strings.HasPrefix(body, "{") {
		t.Fatalf("json: %d %s", code, body)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(strings.Replace(js, "from json", "from gzip", 1)))
	zw.Close()
	if code, body := post("application/json", "gzip", gz.Bytes()); code != 200 {
		t.Fatalf("gzip: %d %s", code, body)
	}
	for _, tc := range []struct {
		ct, enc string
		body    []byte
		code    int
	}{
		{"text/plain", "", []byte(js), http.StatusUnsupportedMediaType},
		{"application/json", "br", []byte(js), http.StatusUnsupportedMediaType},
		{"application/json", "", []byte(`{"resourceLogs":[{`), http.StatusBadRequest},
		{"application/x-protobuf", "", []byte{0xff, 0xff, 0xff}, http.StatusBadRequest},
		{"application/json", "", append([]byte(`{"resourceLogs":[],"x":"`), append(bytes.Repeat([]byte("a"), 70<<10), '"', '}')...), http.StatusRequestEntityTooLarge},
	} {
		if code, body := post(tc.ct, tc.enc, tc.body); code != tc.code {
			t.Errorf("%s %s %.30q: %d %s, want %d", tc.ct, tc.enc, tc.body, code, body, tc.code)
		}
	}
	recs := storedRecords(t, dir, "otlp")
	if len(recs) != 2 || recs[0]["msg"] != "from json" || recs[0]["trace_id"] != "5b8efff798038103d269b633813fc60c" || recs[0]["level"] != fmt.Sprint(record.LevelError) {
		t.Fatalf("stored %v", recs)
	}
	if srv.OTLPStats().Refused.Load() != 5 {
		t.Errorf("refused %d, want 5", srv.OTLPStats().Refused.Load())
	}
}

// TestOTLPMaxConnections: the OTLP/HTTP receiver holds at most
// max_connections connections; one more waits until another ends, and is
// then served.
func TestOTLPMaxConnections(t *testing.T) {
	srv, _, addr := serveOTLPTest(t, config.OTLPConfig{HTTP: "127.0.0.1:0", Application: "otlp", MaxRequestBytes: 64 << 10}, (*Server).ServeOTLP,
		func(sc *config.ServerConfig) { sc.MaxConns = 1 })
	idle, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	js := `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"x"}}]}]}]}`
	post := func(timeout time.Duration) (*http.Response, error) {
		c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
		return c.Post("http://"+addr+"/v1/logs", "application/json", strings.NewReader(js))
	}
	if resp, err := post(500 * time.Millisecond); err == nil {
		resp.Body.Close()
		t.Fatalf("a second connection with max_connections = 1 was answered %s", resp.Status)
	}
	idle.Close()
	resp, err := post(10 * time.Second)
	if err != nil {
		t.Fatalf("after the first connection ended: %v", err)
	}
	resp.Body.Close()
	// The request that gave up waiting was still in the kernel's queue,
	// whole: it may be stored too.
	if n := srv.OTLPStats().Records.Load(); resp.StatusCode != 200 || n < 1 || n > 2 {
		t.Fatalf("%s, %d records stored", resp.Status, n)
	}
}

// TestOTLPConcurrentRequests: requests from one peer at once (one sender
// to the store) are all stored: every one answered 200 is there. (Their
// batches reached the store out of id order, and it dropped the late
// ones as duplicates.)
func TestOTLPConcurrentRequests(t *testing.T) {
	srv, dir, addr := otlpServer(t)
	const workers, each = 4, 100
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			c := &http.Client{Timeout: 10 * time.Second}
			for i := range each {
				js := fmt.Sprintf(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"r%d-%d"}}]}]}]}`, w, i)
				resp, err := c.Post("http://"+addr+"/v1/logs", "application/json", strings.NewReader(js))
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	recs := storedRecords(t, dir, "otlp")
	seen := map[string]bool{}
	for _, r := range recs {
		seen[r["msg"]] = true
	}
	if len(seen) != workers*each || len(recs) != workers*each {
		t.Fatalf("%d records stored (%d distinct) of %d answered 200", len(recs), len(seen), workers*each)
	}
	if n := srv.OTLPStats().Records.Load(); n != workers*each {
		t.Errorf("counted %d", n)
	}
}
