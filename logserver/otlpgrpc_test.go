package logserver

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/record"
)

func otlpGRPCServer(t *testing.T, maxBytes int) (*Server, string, string) {
	return serveOTLPTest(t, config.OTLPConfig{GRPC: "127.0.0.1:0", Application: "otlp", ByServiceName: true, MaxRequestBytes: maxBytes}, (*Server).ServeOTLPGRPC)
}

// TestOTLPGRPCExporter: the OpenTelemetry Go SDK's OTLP/gRPC log exporter
// (gzip) into the server: every record stored once, mapped as over HTTP.
func TestOTLPGRPCExporter(t *testing.T) {
	srv, dir, addr := otlpGRPCServer(t, 4<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exp, err := otlploggrpc.New(ctx, otlploggrpc.WithEndpoint(addr), otlploggrpc.WithInsecure(), otlploggrpc.WithCompressor("gzip"))
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "checkout"), attribute.String("host.name", "web-1"))
	lp := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(sdklog.NewBatchProcessor(exp)))
	logger := lp.Logger("shop.orders", otellog.WithInstrumentationVersion("1.2.3"))
	const n = 1000
	for i := range n {
		var r otellog.Record
		r.SetTimestamp(time.Unix(1700000000+int64(i), 0))
		r.SetSeverity(otellog.SeverityError)
		r.SetBody(attribute.StringValue(fmt.Sprintf("order %d failed", i)))
		r.AddAttributes(attribute.Int("order", i), attribute.String("region", "eu"))
		logger.Emit(ctx, r)
	}
	if err := lp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := srv.OTLPStats().Records.Load(); got != n {
		t.Fatalf("%d records stored, want %d", got, n)
	}
	recs := storedRecords(t, dir, "checkout")
	if len(recs) != n {
		t.Fatalf("%d records read back, want %d", len(recs), n)
	}
	for i, r := range recs {
		want := map[string]string{"msg": fmt.Sprintf("order %d failed", i), "level": fmt.Sprint(record.LevelError), "logger": "shop.orders",
			"order": fmt.Sprint(i), "region": "eu", "resource.service.name": "checkout", "application": "checkout", "sender": "otlp-127.0.0.1"}
		for k, v := range want {
			if r[k] != v {
				t.Fatalf("record %d: %s = %q, want %q (%v)", i, k, r[k], v, r)
			}
		}
	}
}

// TestOTLPGRPCRefusals: a message over max_request_bytes is refused with
// RESOURCE_EXHAUSTED; nothing of it is stored, and the receiver goes on.
func TestOTLPGRPCRefusals(t *testing.T) {
	srv, _, addr := otlpGRPCServer(t, 8<<10)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := collogs.NewLogsServiceClient(conn)
	req := func(body string) *collogs.ExportLogsServiceRequest {
		return &collogs.ExportLogsServiceRequest{ResourceLogs: []*logs.ResourceLogs{{ScopeLogs: []*logs.ScopeLogs{{LogRecords: []*logs.LogRecord{
			{TimeUnixNano: 1, SeverityNumber: logs.SeverityNumber_SEVERITY_NUMBER_INFO, Body: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: body}}},
		}}}}}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.Export(ctx, req(strings.Repeat("x", 16<<10))); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("an oversized message: %v, want ResourceExhausted", err)
	}
	if _, err := client.Export(ctx, req("fine")); err != nil {
		t.Fatalf("after it: %v", err)
	}
	if got := srv.OTLPStats().Records.Load(); got != 1 {
		t.Fatalf("%d records stored, want 1", got)
	}
}

// The test binary doubles as a log server process with an OTLP/gRPC
// receiver (LOGTK_TEST_OTLP_DIR), for a test that SIGKILLs it: it prints
// the receiver's address and serves until killed.
func init() {
	dir := os.Getenv("LOGTK_TEST_OTLP_DIR")
	if dir == "" {
		return
	}
	cfg := &config.Config{Server: &config.ServerConfig{Listen: "127.0.0.1:0", Dir: dir, Tokens: [][]byte{[]byte("tok")}, Fsync: "batch", MaxBytes: 1 << 30,
		OTLP: &config.OTLPConfig{GRPC: "127.0.0.1:0", Application: "otlp", MaxRequestBytes: 4 << 20}}}
	srv, err := New(cfg, Options{})
	if err == nil {
		var ln net.Listener
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err == nil {
			err = srv.ServeOTLPGRPC(ln)
			fmt.Println("ADDR", ln.Addr())
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	select {}
}

// TestOTLPGRPCServerKilled: a client exports one record per call while
// the server process is SIGKILLed and started again on its directory, 5
// times: every record whose call was answered OK is stored.
func TestOTLPGRPCServerKilled(t *testing.T) {
	dir := t.TempDir()
	start := func() (*exec.Cmd, string) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "LOGTK_TEST_OTLP_DIR="+dir)
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "ADDR ") {
			t.Fatalf("the server process said %q (%v)", line, err)
		}
		return cmd, strings.TrimSpace(strings.TrimPrefix(line, "ADDR "))
	}
	answered := map[string]bool{}
	sent := 0
	for round := range 6 {
		cmd, addr := start()
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		client := collogs.NewLogsServiceClient(conn)
		killed := make(chan struct{})
		if round < 5 {
			// Killed after a while, wherever the calls are.
			go func() {
				defer close(killed)
				time.Sleep(time.Duration(20+round*15) * time.Millisecond) // the moment of the kill, not synchronisation
				cmd.Process.Kill()
			}()
		} else {
			close(killed)
		}
		for i := 0; ; i++ {
			body := fmt.Sprintf("r%d", sent)
			sent++
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := client.Export(ctx, &collogs.ExportLogsServiceRequest{ResourceLogs: []*logs.ResourceLogs{{ScopeLogs: []*logs.ScopeLogs{{LogRecords: []*logs.LogRecord{
				{TimeUnixNano: 1, SeverityNumber: logs.SeverityNumber_SEVERITY_NUMBER_INFO, Body: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: body}}},
			}}}}}})
			cancel()
			if err == nil {
				answered[body] = true
			} else if round < 5 {
				break // the server is gone
			} else {
				t.Fatalf("the last server refused: %v", err)
			}
			if round == 5 && i == 100 {
				break
			}
		}
		<-killed
		conn.Close()
		cmd.Process.Kill()
		cmd.Wait()
	}
	stored := map[string]int{}
	for _, r := range storedRecords(t, dir, "otlp") {
		stored[r["msg"]]++
	}
	for body := range answered {
		if stored[body] == 0 {
			t.Fatalf("%s was answered OK and is not stored (%d answered of %d sent, %d stored)", body, len(answered), sent, len(stored))
		}
	}
	t.Logf("%d calls answered OK of %d, all stored", len(answered), sent)
}

// TestOTLPGRPCStreamFlood: a client that opens stream after stream on
// one connection and never ends them holds at most the receiver's
// streams per connection (an outsider's flood of 500,000 reached 6 GB
// before the bound): the goroutines stay few and another client is
// served.
func TestOTLPGRPCStreamFlood(t *testing.T) {
	_, _, addr := otlpGRPCServer(t, 4<<20)
	before := runtime.NumGoroutine()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	c.Write([]byte(http2.ClientPreface))
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	go io.Copy(io.Discard, c) // the server's frames: settings, resets
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for i := range 5000 {
		hb.Reset()
		for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/opentelemetry.proto.collector.logs.v1.LogsService/Export"},
			{":authority", addr}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
			break // the server may close the connection: as good
		}
	}
	// Another client is served meanwhile.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = collogs.NewLogsServiceClient(conn).Export(ctx, &collogs.ExportLogsServiceRequest{ResourceLogs: []*logs.ResourceLogs{{ScopeLogs: []*logs.ScopeLogs{{LogRecords: []*logs.LogRecord{
		{TimeUnixNano: 1, Body: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: "served"}}}}}}}}})
	if err != nil {
		t.Fatalf("another client: %v", err)
	}
	if n := runtime.NumGoroutine(); n > before+200 {
		t.Fatalf("%d goroutines after the flood, %d before", n, before)
	}
}

// TestOTLPInvalidUTF8: strings with invalid UTF-8 (which other
// languages' SDKs and Collectors send) are stored with U+FFFD in their
// place, over gRPC and HTTP alike, not refused.
func TestOTLPInvalidUTF8(t *testing.T) {
	srv, dir, addr := otlpGRPCServer(t, 4<<20)
	// Built by hand: the Go types refuse to encode invalid UTF-8.
	str := func(num protowire.Number, s string) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), []byte(s))
	}
	msg := func(num protowire.Number, parts ...[]byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), bytes.Join(parts, nil))
	}
	body := msg(5, str(1, "bad \xff byte"))                  // LogRecord.body: AnyValue.string_value
	attr := msg(6, str(1, "k\xfe"), msg(2, str(1, "v\xc3"))) // LogRecord.attributes: KeyValue
	req := msg(1, msg(2, msg(2, body, attr)))                // resource_logs { scope_logs { log_records } }
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var resp collogs.ExportLogsServiceResponse
	if err := conn.Invoke(ctx, "/opentelemetry.proto.collector.logs.v1.LogsService/Export", rawMessage(req), &resp, grpc.ForceCodec(rawCodec{})); err != nil {
		t.Fatalf("gRPC: %v", err)
	}
	if n := srv.OTLPStats().Records.Load(); n != 1 {
		t.Fatalf("%d records stored, want 1", n)
	}
	r := storedRecords(t, dir, "otlp")[0]
	if r["msg"] != "bad \uFFFD byte" || r["k\uFFFD"] != "v\uFFFD" {
		t.Fatalf("stored %v", r)
	}
}

// rawMessage is a request already encoded; rawCodec sends it as it is.
type rawMessage []byte

type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(v any) ([]byte, error) {
	if r, ok := v.(rawMessage); ok {
		return r, nil
	}
	return proto.Marshal(v.(proto.Message))
}
func (rawCodec) Unmarshal(data []byte, v any) error { return proto.Unmarshal(data, v.(proto.Message)) }
