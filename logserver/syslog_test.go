package logserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/logread"
	"github.com/logtk/logtk/record"
	"github.com/prometheus/client_golang/prometheus"
)

// syslogServer runs a log server whose syslog block listens on TCP and
// UDP (loopback, port 0).
func syslogServer(t *testing.T, byAppName bool, edit ...func(*config.ServerConfig)) (*Server, string, string, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := &config.Config{Server: &config.ServerConfig{Listen: "127.0.0.1:0", Dir: dir, Tokens: [][]byte{[]byte("tok")}, Fsync: "batch", MaxBytes: 1 << 30,
		Syslog: &config.SyslogConfig{TCP: "127.0.0.1:0", UDP: "127.0.0.1:0", Application: "system", ByAppName: byAppName, MaxMessageBytes: 2048}}}
	for _, e := range edit {
		e(cfg.Server)
	}
	srv, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.ServeSyslog(tcp, udp); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return srv, dir, tcp.Addr().String(), udp.LocalAddr().String()
}

// stored reads an application's records from the store.
func storedRecords(t *testing.T, dir, app string) []map[string]string {
	t.Helper()
	files, err := logread.Files(filepath.Join(dir, app))
	if err != nil {
		t.Fatalf("%s: %v", app, err)
	}
	var out []map[string]string
	logread.Read(context.Background(), files, logread.Options{}, func(b []byte) error {
		var r record.Record
		r.Parse(b)
		m := map[string]string{"msg": string(r.Message), "level": fmt.Sprint(r.Level), "logger": string(r.Logger), "application": string(r.Application), "sender": string(r.Sender)}
		var a record.Attr
		for it := r.Attrs(); it.Next(&a); {
			switch a.Kind {
			case record.KindString:
				m[string(a.Key)] = string(a.Data)
			case record.KindInt:
				m[string(a.Key)] = fmt.Sprint(a.Int())
			case record.KindGroup:
				var p record.Attr
				for g := a.Group(); g.Next(&p); {
					m[string(a.Key)+"."+string(p.Key)] = string(p.Data)
				}
			}
		}
		out = append(out, m)
		return nil
	})
	return out
}

// waitStored waits until n messages are stored.
func waitStored(t *testing.T, srv *Server, n int64) {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for srv.SyslogStats().Messages.Load() < n {
		select {
		case <-srv.syslog.stored:
		case <-deadline.C:
			t.Fatalf("%d of %d syslog messages stored within 30s", srv.SyslogStats().Messages.Load(), n)
		}
	}
}

// TestLoggerClient: util-linux logger, over TCP with octet counting
// (RFC 5424), TCP a message a line (RFC 3164) and UDP, each message
// stored once with its fields mapped.
func TestLoggerClient(t *testing.T) {
	logger, err := exec.LookPath("logger")
	if err != nil {
		t.Fatal("util-linux logger is needed (apt-get install bsdutils)")
	}
	srv, dir, tcp, udp := syslogServer(t, true)
	th, tp, _ := net.SplitHostPort(tcp)
	uh, up, _ := net.SplitHostPort(udp)
	for _, args := range [][]string{
		{"--tcp", "--octet-count", "--rfc5424", "-n", th, "-P", tp, "-t", "shop", "-p", "local4.warning", "--msgid", "ID47", "--sd-id", "order@32473", "--sd-param", `total="12.50"`, "order placed"},
		{"--tcp", "--rfc3164", "-n", th, "-P", tp, "-t", "cron", "-p", "cron.err", "job failed"},
		{"--udp", "--rfc5424", "-n", uh, "-P", up, "-t", "shop", "-p", "user.info", "over udp"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, logger, args...).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("logger %q: %v\n%s", args, err, out)
		}
	}
	waitStored(t, srv, 3)
	shop := storedRecords(t, dir, "shop")
	cron := storedRecords(t, dir, "cron")
	if len(shop) != 2 || len(cron) != 1 {
		t.Fatalf("stored shop %v, cron %v", shop, cron)
	}
	byMsg := map[string]map[string]string{}
	for _, r := range append(shop, cron...) {
		byMsg[r["msg"]] = r
	}
	o := byMsg["order placed"]
	want := map[string]string{"level": fmt.Sprint(record.LevelWarn), "logger": "shop", "facility": "20", "severity": "4", "msgid": "ID47",
		"order@32473.total": "12.50", "syslog": "rfc5424", "application": "shop", "sender": "syslog-127.0.0.1"}
	for k, v := range want {
		if o[k] != v {
			t.Errorf("order placed: %s = %q, want %q (record %v)", k, o[k], v, o)
		}
	}
	if c := byMsg["job failed"]; c["level"] != fmt.Sprint(record.LevelError) || c["syslog"] != "rfc3164" || c["app_name"] != "cron" {
		t.Errorf("job failed: %v", c)
	}
	if u := byMsg["over udp"]; u["level"] != fmt.Sprint(record.LevelInfo) || u["app_name"] != "shop" {
		t.Errorf("over udp: %v", u)
	}
}

// TestHostileSyslogClients: a billion-byte octet count, a line that never
// ends and garbage are bounded and stored raw or skipped, never taking
// down the listener; a neighbouring connection loses nothing.
func TestHostileSyslogClients(t *testing.T) {
	srv, dir, tcp, _ := syslogServer(t, false)
	dial := func() net.Conn {
		c, err := net.DialTimeout("tcp", tcp, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		return c
	}
	good := dial()
	defer good.Close()
	bad1, bad2 := dial(), dial()
	bad1.Write([]byte("1000000000 <13>1 - - - - - - then nothing"))
	bad2.Write([]byte("not syslog at all\n" + strings.Repeat("x", 5000) + "\n"))
	for i := range 100 {
		fmt.Fprintf(good, "<14>1 2026-12-06T10:00:00Z h app - - - message %d\n", i)
	}
	good.Close()
	bad2.Close()
	waitStored(t, srv, 100+2) // the garbage line, and the long line cut
	bad1.Close()
	recs := storedRecords(t, dir, "system")
	n, cut, plain := 0, 0, 0
	for _, r := range recs {
		switch {
		case strings.HasPrefix(r["msg"], "message "):
			n++
		case strings.Contains(r["syslog_error"], "longer than max_message_bytes") && len(r["msg"]) == 2048:
			cut++
		case r["msg"] == "not syslog at all": // BSD syslog: anything is a message
			plain++
		}
	}
	if n != 100 || cut != 1 || plain != 1 {
		t.Fatalf("%d of 100 good messages, %d cut, %d plain, of %d: %v", n, cut, plain, len(recs), recs)
	}
	if srv.SyslogStats().Cut.Load() != 1 {
		t.Errorf("%d messages counted as cut, want 1", srv.SyslogStats().Cut.Load())
	}
	// The same counts in the metrics.
	m := newServerMetrics()
	m.srv = srv
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, mm := range f.Metric {
			if f.GetName() == "logtk_server_syslog_messages_total" {
				got[mm.Label[0].GetValue()] = mm.Counter.GetValue()
			}
		}
	}
	if got["parsed"] != 101 || got["unparsed"] != 0 || got["cut"] != 1 || got["skipped"] != 0 {
		t.Errorf("syslog metrics %v, want parsed 101, unparsed 0, cut 1, skipped 0", got)
	}
}

// TestSyslogMaxConnections: past max_connections a syslog TCP
// connection is closed as soon as it is accepted, and counted; the open
// ones lose nothing, and one more is taken once another has ended.
func TestSyslogMaxConnections(t *testing.T) {
	srv, dir, tcp, _ := syslogServer(t, false, func(sc *config.ServerConfig) { sc.MaxConns = 2 })
	dial := func() net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", tcp, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		return c
	}
	a, b := dial(), dial()
	// Each of the two has been accepted once a message of it is stored.
	fmt.Fprintf(a, "<14>1 - h app - - - from a\n")
	fmt.Fprintf(b, "<14>1 - h app - - - from b\n")
	waitStored(t, srv, 2)
	extra := dial()
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := extra.Read(make([]byte, 1)); err == nil {
		t.Fatalf("a third connection with max_connections = 2 read %d bytes, want it closed", n)
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("a third connection with max_connections = 2 was left open")
	}
	extra.Close()
	if got := srv.SyslogStats().Refused.Load(); got != 1 {
		t.Fatalf("refused %d connections, want 1", got)
	}
	fmt.Fprintf(a, "<14>1 - h app - - - again from a\n")
	b.Close()
	// b's end is seen by the server in its own time: the next one is
	// taken once it has, and until then refused (and dialled again).
	var c net.Conn
	for deadline := time.Now().Add(30 * time.Second); ; {
		c = dial()
		fmt.Fprintf(c, "<14>1 - h app - - - from c\n")
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
			break // still open: taken
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("no connection taken within 30s after one of two ended")
		}
	}
	c.Close()
	a.Close()
	waitStored(t, srv, 4)
	var msgs []string
	for _, r := range storedRecords(t, dir, "system") {
		msgs = append(msgs, r["msg"])
	}
	slices.Sort(msgs)
	if want := []string{"again from a", "from a", "from b", "from c"}; !slices.Equal(msgs, want) {
		t.Fatalf("stored %q, want %q", msgs, want)
	}
}

// TestSyslogStopKeepsWhatArrived: a syslog client has no acknowledgement
// to wait for, so a message it wrote before the server stops is stored:
// on connections open at the stop and on those still in the accept
// queue (before, the stop closed both at once, and such messages were
// lost now and then).
func TestSyslogStopKeepsWhatArrived(t *testing.T) {
	for round := range 4 {
		srv, dir, tcp, _ := syslogServer(t, false)
		var conns []net.Conn
		for i := range 3 {
			c, err := net.DialTimeout("tcp", tcp, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(c, "<13>1 2026-12-06T10:00:00Z h app - - - round %d message %d\n", round, i)
			conns = append(conns, c)
		}
		conns[0].Close() // one closed by the client, two left open
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		for _, c := range conns[1:] {
			c.Close()
		}
		if got := len(storedRecords(t, dir, "system")); got != 3 {
			t.Fatalf("round %d: %d of the 3 messages written before the stop stored", round, got)
		}
	}
}
