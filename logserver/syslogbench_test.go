package logserver

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	otlpres "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/logtk/logtk/config"
)

// BenchmarkSyslogTCP: 200-byte RFC 5424 lines over one loopback TCP
// connection into the syslog listener and the store (no sync), as
// bench/peer measures beside rsyslog. Each op is one message.
func BenchmarkSyslogTCP(b *testing.B) {
	dir := b.TempDir()
	srv, err := New(&config.Config{Server: &config.ServerConfig{Listen: "127.0.0.1:0", Dir: dir, Tokens: [][]byte{[]byte("tok")}, Fsync: "none", MaxBytes: 1 << 40,
		Syslog: &config.SyslogConfig{TCP: "127.0.0.1:0", Application: "syslog", MaxMessageBytes: 64 << 10}}}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv.ServeSyslog(ln, nil)
	line := []byte("<134>1 2026-11-27T08:00:00.000000Z web-01 shop 4242 - - ")
	for len(line) < 199 {
		line = append(line, 'x')
	}
	line = append(line, '\n')
	chunk := make([]byte, 0, 512*len(line))
	for range 512 {
		chunk = append(chunk, line...)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += 512 {
		c.Write(chunk[:min(512, b.N-sent)*len(line)])
	}
	c.Close()
	deadline := time.Now().Add(5 * time.Minute)
	for srv.SyslogStats().Messages.Load() < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // polling the count for the end of the run
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// otlpBenchRequest is an export request of n log records of about 200
// bytes, as an SDK's batch processor sends them.
func otlpBenchRequest(n int) *collogs.ExportLogsServiceRequest {
	recs := make([]*logs.LogRecord, n)
	for i := range recs {
		recs[i] = &logs.LogRecord{TimeUnixNano: uint64(1_700_000_000_000_000_000 + i), SeverityNumber: logs.SeverityNumber_SEVERITY_NUMBER_INFO,
			Body: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: strings.Repeat("x", 120)}},
			Attributes: []*common.KeyValue{{Key: "order", Value: &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: int64(i)}}},
				{Key: "region", Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: "eu-west-1"}}}}}
	}
	return &collogs.ExportLogsServiceRequest{ResourceLogs: []*logs.ResourceLogs{{
		Resource:  &otlpres.Resource{Attributes: []*common.KeyValue{{Key: "service.name", Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: "checkout"}}}}},
		ScopeLogs: []*logs.ScopeLogs{{Scope: &common.InstrumentationScope{Name: "shop"}, LogRecords: recs}},
	}}}
}

// BenchmarkOTLPReceive: OTLP export requests of 512 records each, over
// HTTP (protobuf, gzip) and gRPC, one client after the other, into the
// store (no sync): the records/s an OpenTelemetry exporter gets stored.
// Each op is one record.
func BenchmarkOTLPReceive(b *testing.B) {
	const per = 512
	body, _ := proto.Marshal(otlpBenchRequest(per))
	var zbody bytes.Buffer
	zw := gzip.NewWriter(&zbody)
	zw.Write(body)
	zw.Close()
	serve := func(b *testing.B, grpcToo bool) (*Server, string, string) {
		cfg := &config.Config{Server: &config.ServerConfig{Listen: "127.0.0.1:0", Dir: b.TempDir(), Tokens: [][]byte{[]byte("tok")}, Fsync: "none", MaxBytes: 1 << 40,
			OTLP: &config.OTLPConfig{HTTP: "127.0.0.1:0", GRPC: "127.0.0.1:0", Application: "otlp", MaxRequestBytes: 16 << 20}}}
		srv, err := New(cfg, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { srv.Shutdown(context.Background()) })
		hl, _ := net.Listen("tcp", "127.0.0.1:0")
		gl, _ := net.Listen("tcp", "127.0.0.1:0")
		srv.ServeOTLP(hl)
		srv.ServeOTLPGRPC(gl)
		return srv, hl.Addr().String(), gl.Addr().String()
	}
	b.Run("http", func(b *testing.B) {
		srv, addr, _ := serve(b, false)
		client := &http.Client{Timeout: 30 * time.Second}
		b.ResetTimer()
		for sent := 0; sent < b.N; sent += per {
			req, _ := http.NewRequest("POST", "http://"+addr+"/v1/logs", bytes.NewReader(zbody.Bytes()))
			req.Header.Set("Content-Type", "application/x-protobuf")
			req.Header.Set("Content-Encoding", "gzip")
			resp, err := client.Do(req)
			if err != nil || resp.StatusCode != 200 {
				b.Fatalf("%v %v", err, resp)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		b.StopTimer()
		b.ReportMetric(float64(srv.OTLPStats().Records.Load())/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("grpc", func(b *testing.B) {
		srv, _, addr := serve(b, true)
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		client := collogs.NewLogsServiceClient(conn)
		req := otlpBenchRequest(per)
		ctx := context.Background()
		b.ResetTimer()
		for sent := 0; sent < b.N; sent += per {
			if _, err := client.Export(ctx, req, grpc.UseCompressor("gzip")); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(srv.OTLPStats().Records.Load())/b.Elapsed().Seconds(), "records/s")
	})
}
