package host

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/logread"
	sl "github.com/logtk/logtk/internal/syslog"
	"github.com/logtk/logtk/logserver"
	"github.com/logtk/logtk/record"
	"github.com/logtk/logtk/sdk/plugintest"
)

// TestSyslogTransport: workers -> protobuf format -> the syslog transport
// -> a log server's syslog listener: every record stored once, in order
// per worker instance, carrying its identity (worker, index, seq) in its
// structured data.
func TestSyslogTransport(t *testing.T) {
	dir := t.TempDir()
	srv, err := logserver.New(&config.Config{Server: &config.ServerConfig{Listen: "127.0.0.1:0", Dir: dir, Tokens: [][]byte{[]byte("tok")}, Fsync: "none", MaxBytes: 1 << 30,
		Syslog: &config.SyslogConfig{TCP: "127.0.0.1:0", Application: "syslog", MaxMessageBytes: 64 << 10}}}, logserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.ServeSyslog(ln, nil); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())

	w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": "2000"})
	w.Count = 2
	cfg := &config.Config{
		Workers: []config.WorkerConfig{w},
		Formats: []config.FormatConfig{{Name: "pb", Plugin: plugintest.Build(t, "../plugins/protobuf/plugin")}},
		Transports: []config.TransportConfig{{
			Name: "syslog", Plugin: plugintest.Build(t, "../plugins/syslog/plugin"), Format: "pb",
			Config: []byte(`{"endpoint":"syslog","facility":"local3"}`),
			Allow:  config.Allow{Endpoints: map[string]config.EndpointConfig{"syslog": {Address: ln.Addr().String(), DialTimeout: time.Second, IOTimeout: 5 * time.Second}}},
		}},
		DeadLetterDir: filepath.Join(dir, "dead"),
	}
	h, err := New(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	waitDone(t, h, 2*time.Minute)
	if u := h.Undelivered(); u.Any() {
		t.Fatalf("undelivered: %+v", u)
	}
	routed := h.routed.Load()
	deadline := time.Now().Add(30 * time.Second)
	for srv.SyslogStats().Messages.Load() < routed {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages stored within 30s", srv.SyslogStats().Messages.Load(), routed)
		}
		time.Sleep(10 * time.Millisecond) // polling the server's count, with a deadline
	}
	files, err := logread.Files(filepath.Join(dir, "syslog"))
	if err != nil {
		t.Fatal(err)
	}
	next := map[string]uint64{}
	recs := map[string]int{}
	logread.Read(context.Background(), files, logread.Options{}, func(b []byte) error {
		var r record.Record
		r.Parse(b)
		var a, p record.Attr
		id := map[string]string{}
		for it := r.Attrs(); it.Next(&a); {
			if string(a.Key) == "logtk@32473" {
				for g := a.Group(); g.Next(&p); {
					id[string(p.Key)] = string(p.Data)
				}
			}
		}
		key := id["worker"] + "#" + id["index"]
		seq, _ := strconv.ParseUint(id["seq"], 10, 64)
		if seq != next[key]+1 {
			t.Fatalf("%s: seq %d after %d", key, seq, next[key])
		}
		next[key] = seq
		if string(r.Message) == "rec" {
			recs[key]++
		}
		return nil
	})
	if recs["flood#0"] != 2000 || recs["flood#1"] != 2000 {
		t.Fatalf("records stored per instance: %v", recs)
	}
	if got := fmt.Sprint(len(next)); got != "2" {
		t.Fatalf("instances %v", next)
	}
}

// TestSyslogTransportRsyslog: the syslog transport into a real rsyslog
// (imtcp, octet counting -> omfile, as RFC 5424): every record written
// once, in order per worker instance, with its identity in its
// structured data. rsyslog is a Debian package: .ci/run installs it and
// sets LOGTK_REQUIRE_RSYSLOG, so that in CI its absence fails the test
// rather than skipping it.
func TestSyslogTransportRsyslog(t *testing.T) {
	rsyslogd, err := exec.LookPath("rsyslogd")
	if err != nil {
		if os.Getenv("LOGTK_REQUIRE_RSYSLOG") != "" {
			t.Fatalf("rsyslogd is required here (LOGTK_REQUIRE_RSYSLOG) and not installed: %v", err)
		}
		t.Skip("rsyslogd is not installed (apt-get install rsyslog; .ci/run does)")
	}
	dir := t.TempDir()
	// A free port for rsyslog's listener.
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pl.Addr().String()
	pl.Close()
	_, port, _ := net.SplitHostPort(addr)
	out := filepath.Join(dir, "out.log")
	conf := filepath.Join(dir, "rsyslog.conf")
	os.WriteFile(conf, fmt.Appendf(nil, `global(workDirectory=%q maxMessageSize="64k")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port=%q ruleset="in")
ruleset(name="in") {
  action(type="omfile" file=%q template="RSYSLOG_SyslogProtocol23Format")
}
`, dir, port, out), 0o644)
	cmd := exec.Command(rsyslogd, "-n", "-f", conf, "-i", filepath.Join(dir, "rsyslogd.pid"))
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd does not listen on %s: %v\n%s", addr, err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling for a listener another process opens
	}

	const n = 3000
	w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": itoa(n)})
	w.Count = 2
	cfg := &config.Config{
		Workers: []config.WorkerConfig{w},
		Formats: []config.FormatConfig{{Name: "pb", Plugin: plugintest.Build(t, "../plugins/protobuf/plugin")}},
		Transports: []config.TransportConfig{{
			Name: "syslog", Plugin: plugintest.Build(t, "../plugins/syslog/plugin"), Format: "pb",
			Config: []byte(`{"endpoint":"rsyslog","facility":"local3"}`),
			Allow:  config.Allow{Endpoints: map[string]config.EndpointConfig{"rsyslog": {Address: addr, DialTimeout: time.Second, IOTimeout: 5 * time.Second}}},
		}},
		DeadLetterDir: filepath.Join(dir, "dead"),
	}
	h, err := New(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	waitDone(t, h, 2*time.Minute)
	if u := h.Undelivered(); u.Any() {
		t.Fatalf("undelivered: %+v", u)
	}
	routed := int(h.routed.Load())
	// rsyslog writes on its own time: wait for every line (no syslog
	// acknowledgement says when).
	var lines []string
	for deadline := time.Now().Add(30 * time.Second); ; {
		b, _ := os.ReadFile(out)
		lines = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(b) > 0 && len(lines) >= routed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslog wrote %d of %d messages within 30s\n%s", len(lines), routed, stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a file another process writes
	}
	next := map[string]uint64{}
	recs := map[string]int{}
	for _, l := range lines {
		m, err := sl.Parse([]byte(l), time.Now(), time.UTC)
		if err != nil {
			t.Fatalf("rsyslog wrote %q: %v", l, err)
		}
		if m.Facility != 19 || string(m.AppName) != "flood" {
			t.Fatalf("facility %d app %q in %q", m.Facility, m.AppName, l)
		}
		id := map[string]string{}
		for _, el := range m.Data {
			if string(el.ID) == "logtk@32473" {
				for _, p := range el.Params {
					id[string(p.Name)] = string(p.Value)
				}
			}
		}
		key := id["worker"] + "#" + id["index"]
		seq, _ := strconv.ParseUint(id["seq"], 10, 64)
		if seq != next[key]+1 {
			t.Fatalf("%s: seq %d after %d (%q)", key, seq, next[key], l)
		}
		next[key] = seq
		if string(m.Msg) == "rec" {
			recs[key]++
		}
	}
	if recs["flood#0"] != n || recs["flood#1"] != n || len(lines) != routed {
		t.Fatalf("rsyslog wrote %d lines of %d routed; records per instance: %v", len(lines), routed, recs)
	}
}
