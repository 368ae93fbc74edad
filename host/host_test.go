package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/testlog"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
)

// collector is an Output that keeps every record, decoded.
type collector struct {
	mu      sync.Mutex
	recs    []*logtkv1.Record
	changed chan struct{}
	closed  bool
}

func newCollector() *collector { return &collector{changed: make(chan struct{}, 1)} }

func (c *collector) WriteBatch(records [][]byte) error {
	c.mu.Lock()
	for _, b := range records {
		var r logtkv1.Record
		if err := proto.Unmarshal(b, &r); err != nil {
			c.mu.Unlock()
			return fmt.Errorf("undecodable record: %w", err)
		}
		c.recs = append(c.recs, &r)
	}
	c.mu.Unlock()
	c.notify()
	return nil
}

func (c *collector) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.notify()
	return nil
}

func (c *collector) notify() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *collector) snapshot() []*logtkv1.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.recs)
}

// waitFor waits until cond holds for the records so far, or fails the test
// after timeout.
func (c *collector) waitFor(t *testing.T, timeout time.Duration, what string, cond func([]*logtkv1.Record) bool) []*logtkv1.Record {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		recs := c.snapshot()
		if cond(recs) {
			return recs
		}
		select {
		case <-c.changed:
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s; %d records so far:\n%s", timeout, what, len(recs), dump(recs, 40))
		}
	}
}

func dump(recs []*logtkv1.Record, max int) string {
	var b strings.Builder
	if len(recs) > max {
		fmt.Fprintf(&b, "(... %d earlier records)\n", len(recs)-max)
		recs = recs[len(recs)-max:]
	}
	for _, r := range recs {
		fmt.Fprintf(&b, "%s#%d seq=%d src=%v %v %q %v\n", r.Worker, r.WorkerIndex, r.Seq, r.Source, r.Level, r.Message, r.Attrs)
	}
	return b.String()
}

func find(recs []*logtkv1.Record, pred func(*logtkv1.Record) bool) *logtkv1.Record {
	for _, r := range recs {
		if pred(r) {
			return r
		}
	}
	return nil
}

func count(recs []*logtkv1.Record, pred func(*logtkv1.Record) bool) int {
	n := 0
	for _, r := range recs {
		if pred(r) {
			n++
		}
	}
	return n
}

func msgIs(m string) func(*logtkv1.Record) bool {
	return func(r *logtkv1.Record) bool { return r.Message == m }
}

func msgHas(m string) func(*logtkv1.Record) bool {
	return func(r *logtkv1.Record) bool { return strings.Contains(r.Message, m) }
}

func attr(r *logtkv1.Record, key string) *logtkv1.Attr {
	for _, a := range r.Attrs {
		if a.Key == key {
			return a
		}
	}
	return nil
}

// testWorker returns a worker config running this test binary in mode.
func testWorker(name, mode string, env map[string]string) config.WorkerConfig {
	e := map[string]string{workerEnv: mode}
	for k, v := range env {
		e[k] = v
	}
	return config.WorkerConfig{
		Name:           name,
		Command:        os.Args[0],
		Env:            e,
		Restart:        config.RestartNever,
		BackoffInitial: 10 * time.Millisecond,
		BackoffMax:     time.Second,
		StopTimeout:    5 * time.Second,
		DrainTimeout:   5 * time.Second,
	}
}

// startHost starts a host and stops it when the test ends.
func startHost(t *testing.T, opts Options, workers ...config.WorkerConfig) (*Host, *collector) {
	t.Helper()
	c := newCollector()
	if opts.Output == nil {
		opts.Output = c
	}
	if opts.Logger == nil {
		opts.Logger = hclog.New(&hclog.LoggerOptions{Output: testlog.Writer{T: t}, Level: hclog.Warn})
	}
	h, err := New(&config.Config{Workers: workers}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		h.Stop(ctx)
	})
	return h, c
}

func waitDone(t *testing.T, h *Host, timeout time.Duration) {
	t.Helper()
	select {
	case <-h.Done():
	case <-time.After(timeout):
		t.Fatalf("host not done after %s", timeout)
	}
}

// checkSequence checks that one instance's records have seq 1, 2, 3, ...
func checkSequence(t *testing.T, recs []*logtkv1.Record, name string, index uint32) []*logtkv1.Record {
	t.Helper()
	var mine []*logtkv1.Record
	for _, r := range recs {
		if r.Worker == name && r.WorkerIndex == index {
			mine = append(mine, r)
		}
	}
	for i, r := range mine {
		if r.Seq != uint64(i+1) {
			t.Fatalf("%s#%d: record %d has seq %d, want %d", name, index, i, r.Seq, i+1)
		}
	}
	return mine
}

// TestNoRecordLostOnDeath: a worker logs 100,000 records and dies right
// after the last call returns; every record arrives, in order, with
// consecutive sequence numbers, followed by the record of its death.
func TestNoRecordLostOnDeath(t *testing.T) {
	const n = 100_000
	tests := []struct {
		end       string
		wantInMsg string
		check     func(t *testing.T, exit *logtkv1.Record)
	}{
		{"panic", "worker exited with status 2: panic: boom: the worker's last words", func(t *testing.T, r *logtkv1.Record) {
			p := attr(r, "panic").GetStr()
			if !strings.Contains(p, "panic: boom: the worker's last words") || !strings.Contains(p, "goroutine 1 [running]") || !strings.Contains(p, "runWorker") {
				t.Errorf("panic attribute lacks the message or trace:\n%s", p)
			}
			if r.Level != logtkv1.Level_LEVEL_ERROR {
				t.Errorf("level %v", r.Level)
			}
		}},
		{"exit3", "worker exited with status 3", func(t *testing.T, r *logtkv1.Record) {
			if attr(r, "exit_code").GetInt() != 3 {
				t.Errorf("exit_code = %v", attr(r, "exit_code"))
			}
		}},
		{"kill", "worker killed by SIGKILL", func(t *testing.T, r *logtkv1.Record) {
			if attr(r, "signal").GetStr() != "SIGKILL" {
				t.Errorf("signal = %v", attr(r, "signal"))
			}
		}},
	}
	for _, channel := range []string{"ring", "socket"} {
		for _, tc := range tests {
			t.Run(channel+"/"+tc.end, func(t *testing.T) {
				t.Parallel()
				testNoRecordLost(t, n, channel, tc.end, tc.wantInMsg, tc.check)
			})
		}
	}
}

func testNoRecordLost(t *testing.T, n int, channel, end, wantInMsg string, check func(*testing.T, *logtkv1.Record)) {
	w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": fmt.Sprint(n), "LOGTK_TEST_END": end})
	if channel == "socket" {
		w.RingBytes = -1
	}
	h, c := startHost(t, Options{}, w)
	waitDone(t, h, 2*time.Minute)
	mine := checkSequence(t, c.snapshot(), "flood", 0)
	next := 0
	exitAt := -1
	for i, r := range mine {
		if r.Source == logtkv1.Source_SOURCE_SDK {
			if got := attr(r, "i").GetInt(); got != int64(next) {
				t.Fatalf("SDK record %d carries i=%d", next, got)
			}
			if exitAt >= 0 {
				t.Fatalf("SDK record %d after the exit record", next)
			}
			next++
		}
		if r.Source == logtkv1.Source_SOURCE_HOST && strings.HasPrefix(r.Message, "worker exited") || strings.HasPrefix(r.Message, "worker killed") {
			exitAt = i
		}
	}
	if next != n {
		t.Fatalf("%d of %d records arrived", next, n)
	}
	if exitAt < 0 {
		t.Fatalf("no exit record:\n%s", dump(mine, 5))
	}
	exit := mine[exitAt]
	if !strings.Contains(exit.Message, wantInMsg) {
		t.Errorf("exit record %q, want it to contain %q", exit.Message, wantInMsg)
	}
	check(t, exit)
	if stderr := count(mine, func(r *logtkv1.Record) bool { return r.Source == logtkv1.Source_SOURCE_STDERR }); stderr != 0 {
		t.Errorf("%d stderr records: the panic should be only in the exit record:\n%s", stderr, dump(mine, 10))
	}
}

func TestRestartPolicies(t *testing.T) {
	starts := func(recs []*logtkv1.Record) int { return count(recs, msgIs("worker started")) }
	tests := []struct {
		name        string
		policy      config.RestartPolicy
		code        int
		maxRestarts int
		wantStarts  int
		wantLast    string
		wantLevel   logtkv1.Level
	}{
		{"never restarts a failure", config.RestartNever, 1, 5, 1, "restart policy is never", logtkv1.Level_LEVEL_ERROR},
		{"on-failure leaves a success alone", config.RestartOnFailure, 0, 5, 1, "exited successfully; restart policy is on-failure", logtkv1.Level_LEVEL_INFO},
		{"on-failure restarts until the crash-loop limit", config.RestartOnFailure, 1, 3, 4, "crash loop: 3 restarts within 1m0s; giving up", logtkv1.Level_LEVEL_FATAL},
		{"always restarts a success too", config.RestartAlways, 0, 2, 3, "crash loop: 2 restarts within 1m0s; giving up", logtkv1.Level_LEVEL_FATAL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := testWorker("w", "exit", map[string]string{"LOGTK_TEST_CODE": fmt.Sprint(tc.code)})
			w.Restart, w.MaxRestarts, w.RestartWindow = tc.policy, tc.maxRestarts, time.Minute
			w.BackoffInitial, w.BackoffMax = 5*time.Millisecond, 20*time.Millisecond
			h, c := startHost(t, Options{}, w)
			waitDone(t, h, time.Minute)
			recs := checkSequence(t, c.snapshot(), "w", 0)
			if got := starts(recs); got != tc.wantStarts {
				t.Fatalf("%d starts, want %d:\n%s", got, tc.wantStarts, dump(recs, 30))
			}
			last := recs[len(recs)-1]
			if !strings.HasSuffix(last.Message, tc.wantLast) || last.Level != tc.wantLevel {
				t.Fatalf("last record %v %q, want %v ...%q", last.Level, last.Message, tc.wantLevel, tc.wantLast)
			}
			// Exponential backoff: 5ms, 10ms, 20ms, then capped at 20ms.
			var delays []string
			for _, r := range recs {
				if d := attr(r, "decision").GetStr(); strings.HasPrefix(d, "restarting in ") {
					delays = append(delays, strings.TrimPrefix(d, "restarting in "))
				}
			}
			want := []string{"5ms", "10ms", "20ms", "20ms"}[:tc.wantStarts-1]
			if !slices.Equal(delays, want) {
				t.Fatalf("backoff delays %v, want %v", delays, want)
			}
			// Incarnations count restarts.
			for i, r := range filter(recs, msgIs("worker started")) {
				if r.Incarnation != uint32(i) {
					t.Fatalf("start %d has incarnation %d", i, r.Incarnation)
				}
			}
		})
	}
}

func filter(recs []*logtkv1.Record, pred func(*logtkv1.Record) bool) []*logtkv1.Record {
	var out []*logtkv1.Record
	for _, r := range recs {
		if pred(r) {
			out = append(out, r)
		}
	}
	return out
}

func TestStartFailureIsReported(t *testing.T) {
	w := testWorker("missing", "exit", nil)
	w.Command = filepath.Join(t.TempDir(), "does-not-exist")
	w.Restart, w.MaxRestarts = config.RestartOnFailure, 1
	h, c := startHost(t, Options{}, w)
	waitDone(t, h, time.Minute)
	recs := c.snapshot()
	if n := count(recs, msgHas("worker failed to start")); n != 2 {
		t.Fatalf("%d start failures reported, want 2 (start + one restart):\n%s", n, dump(recs, 10))
	}
}

// TestRunsAsUser: a worker configured with user = "nobody" really runs with
// nobody's uid and gid.
func TestRunsAsUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("switching user needs root")
	}
	// nobody must be able to execute the binary and enter its directory.
	dir, err := os.MkdirTemp("", "logtk-user-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "worker")
	copyFile(t, os.Args[0], bin)
	cfg, err := config.Parse(fmt.Appendf(nil, `
worker "who" {
  command = %q
  cwd     = %q
  user    = "nobody"
  restart = "never"
  env     = { %s = "whoami" }
}
`, bin, dir, workerEnv), filepath.Join(dir, "plugins.hcl"))
	if err != nil {
		t.Fatal(config.FormatDiagnostics(err))
	}
	w := cfg.Workers[0]
	h, c := startHost(t, Options{}, w)
	waitDone(t, h, time.Minute)
	r := find(c.snapshot(), msgIs("whoami"))
	if r == nil {
		t.Fatalf("no whoami record:\n%s", dump(c.snapshot(), 10))
	}
	if uid, gid := attr(r, "uid").GetInt(), attr(r, "gid").GetInt(); uid != int64(*w.UID) || gid != int64(*w.GID) || uid == 0 {
		t.Fatalf("worker ran as uid=%d gid=%d, want nobody's %d/%d", uid, gid, *w.UID, *w.GID)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// alive reports whether pid exists (a zombie counts as gone).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(st), ')')
	return i < 0 || i+2 >= len(st) || st[i+2] != 'Z'
}

func waitGone(t *testing.T, pid int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive %s after stop", pid, timeout)
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
}

// TestStop: Stop signals the workers, kills the ones that ignore it, takes
// their children along, delivers everything and leaves no process behind.
func TestStop(t *testing.T) {
	stubborn := testWorker("stubborn", "ignore-term", nil)
	stubborn.StopTimeout = 300 * time.Millisecond
	sleeper := testWorker("sleeper", "sleep", nil)
	sleeper.Count = 2
	sleeper.Restart = config.RestartAlways
	parent := testWorker("parent", "spawn-child", nil)
	h, c := startHost(t, Options{}, stubborn, sleeper, parent)
	recs := c.waitFor(t, time.Minute, "4 ready records", func(r []*logtkv1.Record) bool { return count(r, msgIs("ready")) == 4 })
	var pids []int
	for _, r := range filter(recs, msgIs("ready")) {
		pids = append(pids, int(r.Pid))
	}
	child := int(attr(find(recs, func(r *logtkv1.Record) bool { return r.Worker == "parent" && r.Message == "ready" }), "child").GetInt())
	pids = append(pids, child)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs { // Stop is idempotent and safe to call concurrently
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = h.Stop(ctx) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		waitGone(t, pid, 10*time.Second)
	}
	recs = c.snapshot()
	if n := count(recs, msgHas("worker stopped: killed by SIGTERM")); n != 3 {
		t.Errorf("%d workers stopped by SIGTERM, want 3:\n%s", n, dump(recs, 30))
	}
	if find(recs, msgHas("did not stop within 300ms of SIGTERM; killing it")) == nil ||
		find(recs, msgHas("worker stopped: killed by SIGKILL")) == nil {
		t.Errorf("stubborn worker not reported as killed:\n%s", dump(recs, 30))
	}
	if n := count(recs, msgIs("worker started")); n != 4 {
		t.Errorf("%d starts: a stopping host must not restart", n)
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if !closed {
		t.Error("output not closed")
	}
	for _, w := range []string{"stubborn", "sleeper", "parent"} {
		checkSequence(t, recs, w, 0)
	}
}

// TestBadFrames: a worker that sends garbage gets clear error records and
// its good records still arrive; another worker is unaffected.
func TestBadFrames(t *testing.T) {
	bad := testWorker("bad", "garbage", map[string]string{"LOGTK_TEST_N": "4096"})
	bad.MaxFrameBytes = 4096
	good := testWorker("good", "flood", map[string]string{"LOGTK_TEST_N": "500"})
	h, c := startHost(t, Options{}, bad, good)
	waitDone(t, h, time.Minute)
	recs := c.snapshot()
	mine := checkSequence(t, recs, "bad", 0)
	for _, want := range []string{
		"worker sent a bad IPC frame: payload of 4097 bytes exceeds the limit of 4096; frame skipped",
		"worker sent a malformed record: malformed record at byte 1: field 3: unexpected EOF",
		"worker sent an unknown IPC frame type unknown(0x42)",
	} {
		r := find(mine, msgIs(want))
		if r == nil {
			t.Errorf("no record %q:\n%s", want, dump(mine, 20))
		} else if r.Level != logtkv1.Level_LEVEL_ERROR || r.Worker != "bad" {
			t.Errorf("record %q: level %v worker %q", want, r.Level, r.Worker)
		}
	}
	if r := find(mine, msgIs("worker sent a malformed record: malformed record at byte 1: field 3: unexpected EOF")); r != nil {
		if p := attr(r, "payload").GetBytes(); string(p) != "\x1a\x40x" {
			t.Errorf("malformed payload not kept: %q", p)
		}
	}
	if find(mine, msgIs("after garbage")) == nil {
		t.Errorf("the good record after the garbage was lost:\n%s", dump(mine, 20))
	}
	if n := count(checkSequence(t, recs, "good", 0), msgIs("rec")); n != 500 {
		t.Errorf("the other worker delivered %d of 500 records", n)
	}
}

// TestMessages: custom messages both ways (the seed's c.on("message") and
// worker.send()).
func TestMessages(t *testing.T) {
	got := make(chan string, 10)
	h, c := startHost(t, Options{OnMessage: func(from WorkerID, p []byte) {
		got <- from.String() + " " + string(p)
	}}, testWorker("echo", "echo", nil))
	c.waitFor(t, time.Minute, "ready", func(r []*logtkv1.Record) bool { return find(r, msgIs("ready")) != nil })
	id := WorkerID{"echo", 0}
	for _, m := range []string{"ping", "pong"} {
		if err := h.Send(id, []byte(m)); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-got:
			if s != "echo#0 echo:"+m {
				t.Fatalf("got %q", s)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no echo")
		}
	}
	if err := h.Send(WorkerID{"nope", 0}, nil); err == nil {
		t.Fatal("Send to an unknown worker succeeded")
	}
	if err := h.Send(id, []byte("quit")); err != nil {
		t.Fatal(err)
	}
	waitDone(t, h, time.Minute)
	if err := h.Send(id, []byte("late")); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("Send after exit: %v", err)
	}
}

// TestMessagesWithoutHandler: with no OnMessage (logtk-host run), a
// worker's custom message is kept as a debug record of that worker, not
// dropped (issue 14).
func TestMessagesWithoutHandler(t *testing.T) {
	h, c := startHost(t, Options{}, testWorker("echo", "echo", nil))
	c.waitFor(t, time.Minute, "ready", func(r []*logtkv1.Record) bool { return find(r, msgIs("ready")) != nil })
	id := WorkerID{"echo", 0}
	if err := h.Send(id, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	isEcho := func(r *logtkv1.Record) bool {
		return r.Logger == "logtk.message" && attr(r, "payload").GetStr() == "echo:hello"
	}
	c.waitFor(t, time.Minute, "the echo as a record", func(r []*logtkv1.Record) bool { return find(r, isEcho) != nil })
	rec := find(checkSequence(t, c.snapshot(), "echo", 0), isEcho)
	if rec.Level != logtkv1.Level_LEVEL_DEBUG || rec.Worker != "echo" {
		t.Errorf("the message's record: level %v, worker %q", rec.Level, rec.Worker)
	}
	h.Send(id, []byte("quit"))
	waitDone(t, h, time.Minute)
}

// TestOutputCapture: a program that does not use the SDK is captured
// through its stdout and stderr; long lines stay whole; JSON lines become
// structured records.
func TestOutputCapture(t *testing.T) {
	w := testWorker("plain", "lines", map[string]string{"LOGTK_TEST_N": "300000"})
	w.MaxLineBytes = 200_000
	h, c := startHost(t, Options{}, w)
	waitDone(t, h, time.Minute)
	recs := checkSequence(t, c.snapshot(), "plain", 0)
	var parts []*logtkv1.Record
	for _, r := range recs {
		if attr(r, "logtk.line_part") != nil {
			parts = append(parts, r)
		}
	}
	if len(parts) != 2 || len(parts[0].Message) != 200_000 || len(parts[1].Message) != 100_000 ||
		!attr(parts[0], "logtk.line_continues").GetBool() || attr(parts[1], "logtk.line_continues").GetBool() {
		t.Fatalf("300,000-byte line over a 200,000 limit: %d parts", len(parts))
	}
	j := find(recs, msgIs("json line"))
	if j == nil || j.Level != logtkv1.Level_LEVEL_WARN || attr(j, "port").GetInt() != 8080 || j.Source != logtkv1.Source_SOURCE_STDOUT {
		t.Fatalf("JSON line: %v", j)
	}
	if r := find(recs, msgIs("plain stderr")); r == nil || r.Level != logtkv1.Level_LEVEL_ERROR || r.Source != logtkv1.Source_SOURCE_STDERR {
		t.Fatalf("stderr line: %v", r)
	}
	if r := find(recs, msgIs("latin-1 caf\uFFFD")); r == nil || string(attr(r, "logtk.raw_line").GetBytes()) != "latin-1 caf\xe9" {
		t.Fatalf("invalid UTF-8 line: %v", r)
	}
	if r := find(recs, msgIs("no newline at the end")); r == nil {
		t.Fatal("final line without newline lost")
	}
	// Under the default limit the long line is one record.
	w.MaxLineBytes = 0
	h, c = startHost(t, Options{}, w)
	waitDone(t, h, time.Minute)
	if r := find(c.snapshot(), func(r *logtkv1.Record) bool { return len(r.Message) == 300_000 }); r == nil || attr(r, "logtk.line_part") != nil {
		t.Fatal("a 300,000-byte line was not kept whole")
	}
}

// TestBackoffResetsAfterStableRun: an incarnation that ran for at least
// BackoffReset restarts after BackoffInitial again instead of doubling.
func TestBackoffResetsAfterStableRun(t *testing.T) {
	w := testWorker("w", "exit", map[string]string{"LOGTK_TEST_CODE": "1"})
	w.Restart, w.MaxRestarts = config.RestartOnFailure, 3
	w.BackoffInitial, w.BackoffMax, w.BackoffReset = 5*time.Millisecond, time.Second, time.Nanosecond
	h, c := startHost(t, Options{}, w)
	waitDone(t, h, time.Minute)
	var delays []string
	for _, r := range c.snapshot() {
		if d := attr(r, "decision").GetStr(); strings.HasPrefix(d, "restarting in ") {
			delays = append(delays, strings.TrimPrefix(d, "restarting in "))
		}
	}
	if want := []string{"5ms", "5ms", "5ms"}; !slices.Equal(delays, want) {
		t.Fatalf("delays %v, want %v", delays, want)
	}
}

func testLogger(t *testing.T) hclog.Logger { return testlog.Logger(t, hclog.Warn) }
