package host

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/internal/pipeline"
	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/server"
	"github.com/logtk/logtk/internal/spool"
	"github.com/logtk/logtk/internal/testcert"
	"github.com/logtk/logtk/internal/testlog"
	"github.com/logtk/logtk/logserver"
	"github.com/logtk/logtk/plugins/builtin"
	"github.com/logtk/logtk/record"
	"github.com/logtk/logtk/sdk/plugintest"
)

// logServer runs the log server engine on a fixed address, restartably.
type logServer struct {
	t    *testing.T
	addr string
	dir  string
	mu   sync.Mutex
	srv  *server.Server
	st   *server.Store
	// process: run the server as a child process, and stop it with
	// SIGKILL: no chance to finish a write, sync or say goodbye.
	process     bool
	maxInFlight int           // announced by the server; 0: its default
	heartbeat   time.Duration // 0: the server's default
	log         io.Writer     // the server's log (Info and up); nil: none
	cmd         *exec.Cmd
}

func (ls *logServer) start() {
	ls.t.Helper()
	if ls.process {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "LOGTK_TEST_SERVE_DIR="+ls.dir, "LOGTK_TEST_SERVE_ADDR="+ls.addr)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			ls.t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", ls.addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				ls.t.Fatalf("server process not listening: %v", err)
			}
			time.Sleep(5 * time.Millisecond) // polling for the listener
		}
		ls.mu.Lock()
		ls.cmd = cmd
		ls.mu.Unlock()
		return
	}
	st, err := server.OpenStore(server.StoreOptions{Dir: ls.dir, Fsync: true})
	if err != nil {
		ls.t.Fatal(err)
	}
	var ln net.Listener
	deadline := time.Now().Add(10 * time.Second)
	for {
		ln, err = net.Listen("tcp", ls.addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // the port may linger briefly after a stop
	}
	if err != nil {
		ls.t.Fatal(err)
	}
	logger := hclog.NewNullLogger()
	if ls.log != nil {
		logger = hclog.New(&hclog.LoggerOptions{Output: ls.log, Level: hclog.Info})
	}
	srv := server.New(server.Options{Tokens: [][]byte{[]byte("tok")}, Store: st, Logger: logger, MaxInFlight: ls.maxInFlight, Heartbeat: ls.heartbeat})
	go srv.Serve(ln)
	ls.mu.Lock()
	ls.srv, ls.st = srv, st
	ls.mu.Unlock()
}

func (ls *logServer) stop() {
	ls.mu.Lock()
	if cmd := ls.cmd; cmd != nil {
		ls.cmd = nil
		ls.mu.Unlock()
		cmd.Process.Kill()
		cmd.Wait()
		return
	}
	srv, st := ls.srv, ls.st
	ls.srv, ls.st = nil, nil
	ls.mu.Unlock()
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Close(ctx)
	st.Close()
}

func newLogServer(t *testing.T, running bool) *logServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ls := &logServer{t: t, addr: ln.Addr().String(), dir: t.TempDir()}
	ln.Close()
	if running {
		ls.start()
	}
	t.Cleanup(ls.stop)
	return ls
}

// stored reads every record the server stored for app, in file order.
func (ls *logServer) stored(t *testing.T, app string) []record.Record {
	files, _ := filepath.Glob(filepath.Join(ls.dir, app, "records*.pb"))
	return readLengthPrefixed(t, files)
}

// readLengthPrefixed reads the records of files holding uvarint-length-
// prefixed logtk.v1.Records, in order.
func readLengthPrefixed(t *testing.T, files []string) []record.Record {
	var out []record.Record
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for len(b) > 0 {
			l, n := protowire.ConsumeVarint(b)
			if n < 0 || uint64(len(b)-n) < l {
				break // a batch being written while we read
			}
			var v record.Record
			v.Parse(b[n : n+int(l)])
			out = append(out, v)
			b = b[n+int(l):]
		}
	}
	return out
}

func networkConfig(t *testing.T, ls *logServer, workers ...config.WorkerConfig) *config.Config {
	return &config.Config{
		Workers: workers,
		Formats: []config.FormatConfig{{Name: "pb", Plugin: plugintest.Build(t, "../plugins/protobuf/plugin")}},
		Transports: []config.TransportConfig{{
			Name: "net", Plugin: builtin.Path("network"), Format: "pb",
			Config: []byte(`{"endpoint":"logserver","token":"tok","sender":"test-host","application":"app","ack_timeout":"2s"}`),
			Allow:  config.Allow{Endpoints: map[string]config.EndpointConfig{"logserver": {Address: ls.addr, DialTimeout: time.Second, IOTimeout: 2 * time.Second}}},
		}},
		DeadLetterDir: filepath.Join(t.TempDir(), "dead"),
	}
}

// checkExactlyOnce checks that each worker instance's SDK records are all
// there, once, in order.
func checkExactlyOnce(t *testing.T, recs []record.Record, workers, perWorker int) {
	t.Helper()
	next := map[uint32]int{}
	lastSeq := map[uint32]uint64{}
	for _, v := range recs {
		if string(v.Worker) != "flood" {
			continue
		}
		if v.Seq <= lastSeq[v.WorkerIndex] {
			t.Fatalf("worker %d: seq %d after %d: duplicate or out of order", v.WorkerIndex, v.Seq, lastSeq[v.WorkerIndex])
		}
		lastSeq[v.WorkerIndex] = v.Seq
		if v.Source != record.SourceSDK {
			continue
		}
		var a record.Attr
		for it := v.Attrs(); it.Next(&a); {
			if string(a.Key) == "i" {
				if int(a.Int()) != next[v.WorkerIndex] {
					t.Fatalf("worker %d: record i=%d, want %d", v.WorkerIndex, a.Int(), next[v.WorkerIndex])
				}
				next[v.WorkerIndex]++
			}
		}
	}
	for w := range workers {
		if next[uint32(w)] != perWorker {
			t.Fatalf("worker %d: %d of %d records stored", w, next[uint32(w)], perWorker)
		}
	}
}

func TestNetworkEndToEnd(t *testing.T) {
	// 0: the server's default (32 in flight); 1 and 3: the transport
	// waits for acks before it sends more (the server closes a connection
	// that exceeds its limit, which the check on Rejected catches).
	for _, maxInFlight := range []int{0, 1, 3} {
		t.Run(fmt.Sprintf("max_in_flight=%d", maxInFlight), func(t *testing.T) {
			ls := newLogServer(t, false)
			ls.maxInFlight = maxInFlight
			ls.start()
			w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": "5000"})
			w.Count = 2
			h, err := New(networkConfig(t, ls, w), Options{Logger: testLogger(t), BatchSize: 64})
			if err != nil {
				t.Fatal(err)
			}
			h.Start()
			waitDone(t, h, 2*time.Minute)
			checkExactlyOnce(t, ls.stored(t, "app"), 2, 5000)
			ls.mu.Lock()
			rejected := ls.srv.Stats.Rejected.Load()
			ls.mu.Unlock()
			if rejected != 0 {
				t.Fatalf("the server closed %d connections (max_in_flight exceeded?)", rejected)
			}
		})
	}
}

// TestNetworkServerOutages: the server is down at the start and restarted
// three times while workers log; every record is stored exactly once, in
// order.
func TestNetworkServerOutages(t *testing.T) {
	ls := newLogServer(t, false)
	w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": "40000"})
	w.Count = 2
	cfg := networkConfig(t, ls, w)
	h, err := New(cfg, Options{Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	ls.start() // the first batches were refused: the server was not there
	for range 3 {
		deadline := time.Now().Add(30 * time.Second)
		before := len(ls.stored(t, "app"))
		for len(ls.stored(t, "app")) == before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond) // poll with a deadline for progress
		}
		ls.stop()
		ls.start()
	}
	waitDone(t, h, 3*time.Minute)
	checkExactlyOnce(t, ls.stored(t, "app"), 2, 40000)
	if reasons, _ := filepath.Glob(filepath.Join(cfg.DeadLetterDir, "*.reason")); len(reasons) > 0 {
		var why []string
		for _, r := range reasons {
			b, _ := os.ReadFile(r)
			why = append(why, string(b))
		}
		t.Fatalf("dead-lettered during outages:\n%s", strings.Join(why, "\n"))
	}
}

func spoolConfig(t *testing.T, ls *logServer, dir string, maxBytes int64, whenFull string, workers ...config.WorkerConfig) *config.Config {
	cfg := networkConfig(t, ls, workers...)
	cfg.Transports[0].Spool = &config.SpoolConfig{Dir: dir, MaxBytes: maxBytes, WhenFull: whenFull}
	return cfg
}

func spooled(dir string) int {
	files, _ := filepath.Glob(filepath.Join(dir, "*.batch"))
	return len(files)
}

// TestSpoolSurvivesOutageAndRestart: with the server unreachable the host
// spools; it stops with the batches on disk; a new host started later
// sends them when the server is back: every record arrives exactly once.
func TestSpoolSurvivesOutageAndRestart(t *testing.T) {
	t.Parallel() // waits on backoffs and timeouts, not the CPU
	ls := newLogServer(t, false)
	dir := filepath.Join(t.TempDir(), "spool")
	w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": "3000"})
	w.Count = 2
	h, err := New(spoolConfig(t, ls, dir, 1<<30, "block", w), Options{Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	waitDone(t, h, 2*time.Minute)
	if spooled(dir) == 0 {
		t.Fatal("nothing spooled while the server was down")
	}

	ls.start()
	h, err = New(spoolConfig(t, ls, dir, 1<<30, "block"), Options{Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	waitDone(t, h, 2*time.Minute)
	checkExactlyOnce(t, ls.stored(t, "app"), 2, 3000)
	if n := spooled(dir); n != 0 {
		t.Fatalf("%d batches still spooled", n)
	}
}

// TestSpoolUnreadableBatchSetAside: a spooled batch that cannot be read
// (here a directory where its file should be) does not stop the batches
// after it: it is tried again, then set aside on disk under a new name and
// reported, and every other record arrives exactly once, in order.
func TestSpoolUnreadableBatchSetAside(t *testing.T) {
	t.Parallel() // waits on backoffs and timeouts, not the CPU
	ls := newLogServer(t, false)
	dir := filepath.Join(t.TempDir(), "spool")
	const n = 3000
	w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": fmt.Sprint(n)})
	h, err := New(spoolConfig(t, ls, dir, 1<<30, "block", w), Options{Logger: hclog.NewNullLogger(), BatchSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	waitDone(t, h, 2*time.Minute)
	files, _ := filepath.Glob(filepath.Join(dir, "*.batch"))
	if len(files) < 3 {
		t.Fatalf("%d batches spooled while the server was down; want 3 or more", len(files))
	}
	// A batch of the worker's after the first (batches of the host's own
	// reports of the failing transport are spooled among them) becomes
	// unreadable; remember which records it held.
	var bad string
	lost := map[int64]bool{}
	for _, f := range files[1 : len(files)-1] {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		entries.Each(data, func(e []byte) {
			var v record.Record
			if !v.Parse(e) || string(v.Worker) != "flood" || v.Source != record.SourceSDK {
				return
			}
			var a record.Attr
			for it := v.Attrs(); it.Next(&a); {
				if string(a.Key) == "i" {
					lost[a.Int()] = true
				}
			}
		})
		if len(lost) > 0 {
			bad = f
			break
		}
	}
	if bad == "" {
		t.Fatalf("no spooled batch between the first and the last holds a record of the worker's: %v", files)
	}
	if err := os.Remove(bad); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(bad, 0o755); err != nil {
		t.Fatal(err)
	}

	ls.start()
	logs := &testlog.Buffer{}
	h, err = New(spoolConfig(t, ls, dir, 1<<30, "block"), Options{Logger: hclog.New(&hclog.LoggerOptions{Output: logs})})
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	waitDone(t, h, 2*time.Minute)
	if !strings.Contains(logs.String(), "a spooled batch cannot be read; set aside, not sent") {
		t.Fatalf("the unreadable batch was not reported; host log:\n%s", logs.String())
	}
	if st, err := os.Stat(bad + spool.SetAsideSuffix); err != nil || !st.IsDir() {
		t.Fatalf("the unreadable batch was not set aside as %s: %v", bad+spool.SetAsideSuffix, err)
	}
	if n := h.Undelivered().SetAsideBatches; n != 1 {
		t.Errorf("Undelivered counts %d set-aside batches, want 1 (run exits 3 for it)", n)
	}
	if left := spooled(dir); left != 0 {
		t.Fatalf("%d batches still spooled", left)
	}
	next := int64(0)
	for _, v := range ls.stored(t, "app") {
		if string(v.Worker) != "flood" || v.Source != record.SourceSDK {
			continue
		}
		var a record.Attr
		for it := v.Attrs(); it.Next(&a); {
			if string(a.Key) != "i" {
				continue
			}
			for lost[next] {
				next++
			}
			if a.Int() != next {
				t.Fatalf("record i=%d stored, want %d (the set-aside batch held %d records)", a.Int(), next, len(lost))
			}
			next++
		}
	}
	for lost[next] {
		next++
	}
	if next != n {
		t.Fatalf("stored up to i=%d of %d", next, n)
	}
}

// TestSpoolBlockWhenFull: a full spool with when_full = "block" holds the
// pipeline (and the workers) until the server is back; nothing is lost.
func TestSpoolBlockWhenFull(t *testing.T) {
	ls := newLogServer(t, false)
	dir := filepath.Join(t.TempDir(), "spool")
	w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": "20000"})
	// Small batches, so the spool fills to its bound before a Put waits.
	h, err := New(spoolConfig(t, ls, dir, 64<<10, "block", w), Options{Logger: hclog.NewNullLogger(), BatchSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	deadline := time.Now().Add(time.Minute)
	for dirBytes(dir) < 32<<10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // poll with a deadline until the spool fills
	}
	select {
	case <-h.Done():
		t.Fatal("the host finished while its spool was full and the server down: something was dropped")
	default:
	}
	ls.start()
	waitDone(t, h, 2*time.Minute)
	checkExactlyOnce(t, ls.stored(t, "app"), 1, 20000)
}

// TestSpoolDropOldest: with when_full = "drop_oldest" a full spool drops
// its oldest batches, each drop logged; what remains arrives in order.
func TestSpoolDropOldest(t *testing.T) {
	t.Parallel() // waits on backoffs and timeouts, not the CPU
	ls := newLogServer(t, false)
	dir := filepath.Join(t.TempDir(), "spool")
	w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": "20000"})
	logs := &testlog.Buffer{}
	// Small batches: the spool keeps many of the newest, not one or two
	// (with 512-record batches the newest could be the exit record alone).
	h, err := New(spoolConfig(t, ls, dir, 64<<10, "drop_oldest", w), Options{Logger: hclog.New(&hclog.LoggerOptions{Output: logs}), BatchSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	waitDone(t, h, 2*time.Minute)
	drops := strings.Count(logs.String(), "spool full: dropped the oldest batch")
	if drops == 0 {
		t.Fatal("no drop logged although the spool overflowed")
	}
	if b := dirBytes(dir); b > 64<<10+64<<10 {
		t.Fatalf("spool holds %d bytes, bound 64 KiB", b)
	}
	ls.start()
	h, err = New(spoolConfig(t, ls, dir, 64<<10, "drop_oldest"), Options{Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	waitDone(t, h, 2*time.Minute)
	// What arrived is the newest records, in order, without duplicates.
	prev, n := -1, 0
	for _, v := range ls.stored(t, "app") {
		var a record.Attr
		for it := v.Attrs(); it.Next(&a); {
			if string(a.Key) == "i" && string(v.Worker) == "flood" {
				if int(a.Int()) <= prev {
					t.Fatalf("record %d after %d", a.Int(), prev)
				}
				prev = int(a.Int())
				n++
			}
		}
	}
	if prev != 19999 || n == 0 || n == 20000 {
		t.Fatalf("stored %d records ending at %d; want the newest, some dropped", n, prev)
	}
	t.Logf("%d batches dropped, %d of 20000 records delivered", drops, n)
}

func dirBytes(dir string) int64 {
	var n int64
	files, _ := filepath.Glob(filepath.Join(dir, "*.batch"))
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			n += st.Size()
		}
	}
	return n
}

// startServer runs a log server for sc, listening on sc.Listen.
func startServer(sc *config.ServerConfig, logger hclog.Logger) (*logserver.Server, error) {
	srv, err := logserver.New(&config.Config{Server: sc}, logserver.Options{Logger: logger})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", sc.Listen)
	if err != nil {
		srv.Shutdown(context.Background())
		return nil, err
	}
	go srv.Serve(ln)
	return srv, nil
}

// TestNetworkTLS: the host dials the log server over TLS (the plugin
// never sees a certificate); with the wrong CA nothing is delivered, the
// failure is logged, and the batches are dead-lettered, not lost.
func TestNetworkTLS(t *testing.T) {
	t.Parallel() // waits on backoffs and timeouts, not the CPU
	dir := t.TempDir()
	ca := testcert.NewCA(t, "logtk test CA")
	certFile, keyFile := testcert.WritePair(t, ca.Server(t, "127.0.0.1"), dir, "server")
	caFile := ca.WriteCA(t, dir, "ca.pem")
	otherCA := testcert.NewCA(t, "another CA").WriteCA(t, dir, "other-ca.pem")

	srv, err := startServer(&config.ServerConfig{Listen: "127.0.0.1:0", Dir: filepath.Join(dir, "received"),
		Tokens: [][]byte{[]byte("tok")}, Fsync: "batch", MaxBytes: 1 << 30,
		TLS: &config.ServerTLS{CertFile: certFile, KeyFile: keyFile}}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	ls := &logServer{t: t, addr: srv.Addr().String(), dir: filepath.Join(dir, "received")}

	run := func(ca string) (*config.Config, *testlog.Buffer) {
		w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": "1000"})
		cfg := networkConfig(t, ls, w)
		cfg.Transports[0].Allow.Endpoints["logserver"] = config.EndpointConfig{Address: ls.addr, TLS: &config.TLSConfig{CAFile: ca}}
		logs := &testlog.Buffer{}
		h, err := New(cfg, Options{Logger: hclog.New(&hclog.LoggerOptions{Output: logs})})
		if err != nil {
			t.Fatal(err)
		}
		h.Start()
		waitDone(t, h, 2*time.Minute)
		return cfg, logs
	}
	cfg, logs := run(otherCA)
	if len(ls.stored(t, "app")) != 0 {
		t.Fatal("records reached a server whose certificate the host does not trust")
	}
	if !strings.Contains(logs.String(), "certificate signed by unknown authority") {
		t.Errorf("the TLS failure is not in the log:\n%.2000s", logs.String())
	}
	if dead, _ := filepath.Glob(filepath.Join(cfg.DeadLetterDir, "*.batch")); len(dead) == 0 {
		t.Error("undeliverable batches were not dead-lettered")
	}
	run(caFile)
	checkExactlyOnce(t, ls.stored(t, "app"), 1, 1000)
}

// TestNetworkIdleConnectionStays: a quiet host keeps its connection to the
// log server: the host polls the idle transport, which answers the
// server's PINGs (issue 14: every 15 s of quiet the server closed it with
// 4006, and both sides logged a WARN pair).
func TestNetworkIdleConnectionStays(t *testing.T) {
	logs := &testlog.Buffer{}
	ls := newLogServer(t, false)
	ls.heartbeat, ls.log = time.Second, logs // closes after 3 s without a frame
	ls.start()
	cfg := networkConfig(t, ls)
	p, err := pipeline.New(context.Background(), pipeline.Options{Formats: cfg.Formats, Transports: cfg.Transports, DeadLetterDir: cfg.DeadLetterDir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	send := func(msg string, n int) {
		t.Helper()
		rec := irecord.AppendHead(nil, time.Now(), record.LevelInfo, msg, "")
		rec = irecord.AppendStamp(rec, &irecord.Stamp{Worker: "idle", PID: 1, Seq: uint64(n), Source: record.SourceSDK, Received: time.Now()})
		if err := p.WriteBatch([][]byte{rec}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for len(ls.stored(t, "app")) < n {
			if time.Now().After(deadline) {
				t.Fatalf("record %d not stored:\n%s", n, logs)
			}
			time.Sleep(10 * time.Millisecond) // polling the server's files
		}
	}
	send("before", 1)
	// The scenario: quiet for longer than the server lets a silent
	// connection live (3 heartbeats), and more than one idle poll.
	<-time.After(2*time.Second + 2*time.Second) // the pipeline polls an idle transport every second
	send("after", 2)
	if n := strings.Count(logs.String(), "client connected"); n != 1 {
		t.Errorf("%d connections for 2 batches, want 1:\n%s", n, logs)
	}
	if strings.Contains(logs.String(), "[WARN]") {
		t.Errorf("the server warned:\n%s", logs)
	}
}

// TestTransportTroubleIsRecorded: a transport failing and delivering
// again is told in the host's record stream, so the log server that
// collects everything else learns it too (issue 14: these went only to
// the host's own log).
func TestTransportTroubleIsRecorded(t *testing.T) {
	ls := newLogServer(t, false) // down at first
	cfg := networkConfig(t, ls, testWorker("echo", "echo", nil))
	logs := &testlog.Buffer{}
	h, err := New(cfg, Options{Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Warn})})
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	defer h.Stop(context.Background())
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within a minute; host log:\n%s", what, logs)
			}
			time.Sleep(10 * time.Millisecond) // polling a log and the server's files
		}
	}
	// The worker's "ready" cannot be delivered: the transport fails.
	waitFor("transport failure", func() bool { return strings.Contains(logs.String(), "transport failed") })
	ls.start()
	has := func(prefix string) func() bool {
		return func() bool {
			for _, v := range ls.stored(t, "app") {
				if string(v.Logger) == pipeline.ReportLogger && strings.HasPrefix(string(v.Message), prefix) {
					return true
				}
			}
			return false
		}
	}
	waitFor("stored record of the failure", has("transport net failed (attempt 1)"))
	waitFor("stored record of the recovery", has("transport net delivers again"))
	h.Send(WorkerID{"echo", 0}, []byte("quit"))
	waitDone(t, h, time.Minute)
}

// TestNaturalEndGivesUpOnAStuckTransport: once every worker has ended
// and its records are in the pipeline, run ends when the output has
// drained; a transport that never acknowledges holds that for about one
// ack_timeout (the pipeline's close counts as stopping), and every
// record is in the dead-letter directory. (While workers' records still
// wait for room, the host is running: such a transport then sets aside
// one batch each three ack_timeouts, as docs/plugin-abi.md says.)
func TestNaturalEndGivesUpOnAStuckTransport(t *testing.T) {
	dir := t.TempDir()
	const n = 2000
	w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": fmt.Sprint(n)})
	cfg := &config.Config{
		Workers: []config.WorkerConfig{w},
		Formats: []config.FormatConfig{{Name: "pb", Plugin: builtin.Path("protobuf")}},
		Transports: []config.TransportConfig{{Name: "void", Plugin: plugintest.Build(t, "../internal/pipeline/testdata/neverack"),
			Format: "pb", AckTimeout: 500 * time.Millisecond}},
		DeadLetterDir: filepath.Join(dir, "dead"),
		RuntimeDir:    filepath.Join(dir, "run"),
	}
	h, err := New(cfg, Options{Logger: testLogger(t), BatchSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	h.Start()
	waitDone(t, h, 30*time.Second)
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("run took %s to end with a transport that never acknowledges", took)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "dead", "*.batch"))
	recs := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c, ok := entries.Count(b)
		if !ok {
			t.Fatalf("%s is not a batch", f)
		}
		recs += c
	}
	if recs < n {
		t.Fatalf("%d records dead-lettered, want the %d the worker logged (and the host's own)", recs, n)
	}
}
