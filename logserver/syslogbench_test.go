package logserver

import (
	"context"
	"net"
	"testing"
	"time"

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
