package host

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/logread"
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
