package host

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/logread"
	"github.com/logtk/logtk/logserver"
	"github.com/logtk/logtk/record"
	"github.com/logtk/logtk/record/textfmt"
	"github.com/logtk/logtk/sdk/plugintest"
)

// otlpReceiver is a log server with only an OTLP/HTTP receiver.
func otlpReceiver(t *testing.T) (*logserver.Server, string, string) {
	dir := t.TempDir()
	srv, err := logserver.New(&config.Config{Server: &config.ServerConfig{Listen: "127.0.0.1:0", Dir: dir, Tokens: [][]byte{[]byte("tok")}, Fsync: "none", MaxBytes: 1 << 30,
		OTLP: &config.OTLPConfig{HTTP: "127.0.0.1:0", Application: "otlp", MaxRequestBytes: 16 << 20}}}, logserver.Options{Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.ServeOTLP(ln); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return srv, dir, ln.Addr().String()
}

func otlpConfig(t *testing.T, addr string, w config.WorkerConfig, reference string) *config.Config {
	return &config.Config{
		Workers: []config.WorkerConfig{w},
		Formats: []config.FormatConfig{{Name: "pb", Plugin: plugintest.Build(t, "../plugins/protobuf/plugin")}},
		Transports: []config.TransportConfig{{
			Name: "otlp", Plugin: plugintest.Build(t, "../plugins/otlp/plugin"), Format: "pb",
			Config: []byte(`{"endpoint":"collector","timeout":"2s"}`),
			Allow:  config.Allow{Endpoints: map[string]config.EndpointConfig{"collector": {Address: addr, DialTimeout: time.Second, IOTimeout: 2 * time.Second}}},
		}, {
			Name: "reference", Plugin: plugintest.Build(t, "../plugins/file/plugin"), Format: "pb",
			Config: []byte(fmt.Sprintf(`{"path":%q,"framing":"length-prefixed","fsync":"never"}`, reference)),
			Allow:  config.Allow{Directories: []string{filepath.Dir(reference)}},
		}},
		DeadLetterDir: filepath.Join(t.TempDir(), "dead"),
	}
}

// readOTLPStore reads what a log server stored under an application.
func readOTLPStore(t *testing.T, dir, app string) []record.Record {
	files, err := logread.Files(filepath.Join(dir, app))
	if err != nil {
		t.Fatal(err)
	}
	var out []record.Record
	logread.Read(context.Background(), files, logread.Options{}, func(b []byte) error {
		var r record.Record
		r.Parse(append([]byte(nil), b...))
		out = append(out, r)
		return nil
	})
	return out
}

// sameRecord compares what a round trip through OTLP keeps: time, level,
// message, logger, attributes (as text), worker, index, pid, incarnation,
// seq and source.
func sameRecord(a, b *record.Record) string {
	attrs := func(r *record.Record) string {
		var s []byte
		var x record.Attr
		for it := r.Attrs(); it.Next(&x); {
			if string(x.Key) == "resource" {
				continue // the OTLP resource the transport made
			}
			s = append(s, x.Key...)
			s = append(s, '=')
			switch x.Kind {
			case record.KindTime, record.KindDuration, record.KindUint:
				s = fmt.Append(s, x.Int()) // OTLP has integers of these (docs/otlp.md)
			default:
				s = textfmt.AppendValue(s, &x)
			}
			s = append(s, ' ')
		}
		return string(s)
	}
	switch {
	case a.TimeUnixNano != b.TimeUnixNano, a.Level != b.Level, string(a.Message) != string(b.Message), string(a.Logger) != string(b.Logger):
		return fmt.Sprintf("time/level/message/logger: %d %d %q %q vs %d %d %q %q", a.TimeUnixNano, a.Level, a.Message, a.Logger, b.TimeUnixNano, b.Level, b.Message, b.Logger)
	case string(a.Worker) != string(b.Worker), a.WorkerIndex != b.WorkerIndex, a.PID != b.PID, a.Incarnation != b.Incarnation, a.Seq != b.Seq, a.Source != b.Source:
		return fmt.Sprintf("identity: %s#%d pid %d inc %d seq %d src %d vs %s#%d pid %d inc %d seq %d src %d", a.Worker, a.WorkerIndex, a.PID, a.Incarnation, a.Seq, a.Source,
			b.Worker, b.WorkerIndex, b.PID, b.Incarnation, b.Seq, b.Source)
	case attrs(a) != attrs(b):
		return fmt.Sprintf("attributes: %s vs %s", attrs(a), attrs(b))
	}
	return ""
}

// TestOTLPTransportRoundTrip: records from a worker go out through the
// Wasm otlp transport into the log server's OTLP/HTTP receiver and come
// back, each as the file transport beside it wrote it: time, level,
// message, logger, attributes, worker identity and seq.
func TestOTLPTransportRoundTrip(t *testing.T) {
	_, dir, addr := otlpReceiver(t)
	reference := filepath.Join(t.TempDir(), "out", "records.pb")
	w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": "5000"})
	h, err := New(otlpConfig(t, addr, w, reference), Options{Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	waitDone(t, h, time.Minute)
	want := readLengthPrefixed(t, []string{reference})
	got := readOTLPStore(t, dir, "otlp")
	if len(want) < 5000 || len(got) != len(want) {
		t.Fatalf("%d records came back, %d were sent", len(got), len(want))
	}
	for i := range want {
		if d := sameRecord(&want[i], &got[i]); d != "" {
			t.Fatalf("record %d differs: %s", i, d)
		}
	}
}

// TestOTLPTransportOutages: the connection to the receiver is cut at
// random moments while records flow, through a spool: every record
// arrives, by the end of the run or from the spool by the next one, in
// order of seq (a batch sent again may arrive twice: OTLP has no batch
// ids).
func TestOTLPTransportOutages(t *testing.T) {
	_, dir, addr := otlpReceiver(t)
	proxy := newCutter(t, addr)
	reference := filepath.Join(t.TempDir(), "out", "records.pb")
	n := 100_000
	if raceEnabled {
		n = 20_000
	}
	w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": itoa(n)})
	cfg := otlpConfig(t, proxy.ln.Addr().String(), w, reference)
	cfg.Transports[0].Spool = &config.SpoolConfig{Dir: filepath.Join(t.TempDir(), "spool"), MaxBytes: 1 << 30, WhenFull: "block"}
	h, err := New(cfg, Options{Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	for done := false; !done; {
		select {
		case <-h.Done():
			done = true
		case <-time.After(time.Duration(20+rng.IntN(80)) * time.Millisecond):
			proxy.cut()
		}
	}
	if u := h.Undelivered(); u.DeadLettered > 0 || u.DroppedBatches > 0 || u.SetAsideBatches > 0 {
		t.Fatalf("undelivered: %+v", u)
	}
	// A host that stops while the receiver fails leaves batches in the
	// spool; the next run (here one without workers) sends them.
	left := spooled(cfg.Transports[0].Spool.Dir)
	cfg.Workers = nil
	h2, err := New(cfg, Options{Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	h2.Start()
	waitDone(t, h2, time.Minute)
	if n := spooled(cfg.Transports[0].Spool.Dir); n != 0 {
		t.Fatalf("%d batches still spooled after the second run (%d after the first)", n, left)
	}
	seen := map[uint64]bool{}
	var last uint64
	for _, r := range readOTLPStore(t, dir, "otlp") {
		if r.Seq < last && !seen[r.Seq] {
			t.Fatalf("seq %d after %d, and not a resend", r.Seq, last)
		}
		seen[r.Seq], last = true, max(last, r.Seq)
	}
	for _, r := range readLengthPrefixed(t, []string{reference}) {
		if !seen[r.Seq] {
			t.Fatalf("seq %d (%s) did not arrive; %d cuts; %d batches left in the spool", r.Seq, r.Message, proxy.cuts, spooled(cfg.Transports[0].Spool.Dir))
		}
	}
	t.Logf("%d connection cuts; %d batches sent by the second run", proxy.cuts, left)
}
