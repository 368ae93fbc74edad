package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	kafkatransport "github.com/logtk/logtk/plugins/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/record"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/host"
	"github.com/logtk/logtk/internal/control"
	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/internal/wire"
	"github.com/logtk/logtk/logserver"
	"github.com/logtk/logtk/sdk"
	"github.com/logtk/logtk/sdk/plugintest"
)

// The test binary plays the host (LOGTK_TEST_ROLE=host) and the workers
// (LOGTK_TEST_ROLE=worker).
func init() {
	switch os.Getenv("LOGTK_TEST_ROLE") {
	case "host":
		os.Exit(run([]string{"run", "-config", os.Getenv("LOGTK_TEST_CONFIG")}, os.Stdout, os.Stderr))
	case "serve":
		os.Exit(run([]string{"serve", "-config", os.Getenv("LOGTK_TEST_CONFIG")}, os.Stdout, os.Stderr))
	case "say-n": // logs LOGTK_TEST_N records unless the marker file is there, makes it, waits for SIGTERM
		log := sdk.New(sdk.Options{Name: "w"})
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		marker := os.Getenv("LOGTK_TEST_MARKER") + "-" + os.Getenv("LOGTK_WORKER_INDEX")
		if _, err := os.Stat(marker); err != nil {
			n, _ := strconv.Atoi(os.Getenv("LOGTK_TEST_N"))
			for i := range n {
				log.Info("rec", sdk.Int("i", i))
			}
			os.WriteFile(marker, nil, 0o644)
		}
		<-sigs
		os.Exit(0)
	case "say": // logs LOGTK_TEST_SAY once and exits
		sdk.New(sdk.Options{Name: "w"}).Info(os.Getenv("LOGTK_TEST_SAY"))
		os.Exit(0)
	case "worker":
		log := sdk.New(sdk.Options{Name: "w"})
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		log.Info("ready")
		<-sigs
		log.Info("got SIGTERM, last words")
		os.Exit(0)
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"version"}, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "logtk-host ") {
		t.Fatalf("exit %d, output %q", code, out.String())
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.hcl")
	os.WriteFile(good, []byte("worker \"a\" {\n  command = \"/bin/true\"\n  count = 3\n}\n"), 0o644)
	bad := filepath.Join(dir, "bad.hcl")
	os.WriteFile(bad, []byte("worker \"a\" {\n  command = \"/bin/true\"\n  restart = \"maybe\"\n}\n"), 0o644)
	stages := filepath.Join(dir, "stages.hcl")
	os.WriteFile(stages, []byte("worker \"a\" {\n  command = \"/bin/true\"\n}\nformat \"j\" {\n  plugin = \"json\"\n}\ntransport \"t\" {\n  plugin = \"console\"\n  format = \"j\"\n}\n"), 0o644)
	srv := filepath.Join(dir, "server.hcl")
	os.WriteFile(srv, []byte("server {\n  listen = \"127.0.0.1:0\"\n  dir = \"stored\"\n  tokens = [\"a-token-of-20-chars!\"]\n}\n"), 0o644)
	tests := []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"validate", "-config", good}, 0, "configuration is valid: 1 worker blocks, 3 instances, 0 formats, 0 transports"},
		{[]string{"validate", "-config", stages}, 0, "1 formats, 1 transports\nSTAGE        FORMAT  PLUGIN\nformat j     -       builtin:json\ntransport t  j       builtin:console\n"},
		{[]string{"validate", "-config", bad}, 1, bad + ":3:13: error: Invalid restart policy"},
		{[]string{"validate", "-config", srv}, 0, "configuration is valid: a server block (listen 127.0.0.1:0, dir " + filepath.Join(dir, "stored") + ", fsync batch, 1 tokens)"},
		{[]string{"validate", "-config", filepath.Join(dir, "missing.hcl")}, 1, "no such file"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{nil, 2, "usage: logtk-host"},
	}
	for _, tc := range tests {
		var out bytes.Buffer
		code := run(tc.args, &out, &out)
		if code != tc.code || !strings.Contains(out.String(), tc.contains) {
			t.Errorf("%v: exit %d, output %q; want exit %d containing %q", tc.args, code, out.String(), tc.code, tc.contains)
		}
	}
}

// lineBuffer collects a process's output and signals each new line.
type lineBuffer struct {
	mu    sync.Mutex
	lines []string
	more  chan struct{}
}

func (b *lineBuffer) read(r *os.File) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		b.mu.Lock()
		b.lines = append(b.lines, sc.Text())
		b.mu.Unlock()
		select {
		case b.more <- struct{}{}:
		default:
		}
	}
}

func (b *lineBuffer) matching(re *regexp.Regexp) [][]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out [][]string
	for _, l := range b.lines {
		if m := re.FindStringSubmatch(l); m != nil {
			out = append(out, m)
		}
	}
	return out
}

// waitFor waits up to a minute for n lines matching re.
func (b *lineBuffer) waitFor(t *testing.T, re *regexp.Regexp, n int) {
	t.Helper()
	deadline := time.After(time.Minute)
	for len(b.matching(re)) < n {
		select {
		case <-b.more:
		case <-deadline:
			t.Fatalf("no %d lines matching %q within a minute:\n%s", n, re, b)
		}
	}
}

// startSelf starts the test binary in a role (host, serve) with a config,
// collecting its output; the process is killed when the test ends.
func startSelf(t *testing.T, role, config string) (*exec.Cmd, *lineBuffer, chan struct{}) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "LOGTK_TEST_ROLE="+role, "LOGTK_TEST_CONFIG="+config)
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	t.Cleanup(func() { cmd.Process.Kill() })
	out := &lineBuffer{more: make(chan struct{}, 1)}
	readDone := make(chan struct{})
	go func() { out.read(pr); close(readDone) }()
	return cmd, out, readDone
}

func (b *lineBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}

// startHostProcess starts the test binary as logtk-host with two workers
// and returns it once both workers logged "ready", with their pids.
func startHostProcess(t *testing.T) (*exec.Cmd, *lineBuffer, chan struct{}, []int) {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "plugins.hcl")
	os.WriteFile(cfgPath, fmt.Appendf(nil, `
worker "w" {
  command = %q
  count   = 2
  restart = "always"
  env     = { LOGTK_TEST_ROLE = "worker" }
}
`, os.Args[0]), 0o644)

	cmd, out, readDone := startSelf(t, "host", cfgPath)
	ready := regexp.MustCompile(`w#\d \[(\d+)\] w: ready`)
	out.waitFor(t, ready, 2)
	var pids []int
	for _, m := range out.matching(ready) {
		pid, _ := strconv.Atoi(m[1])
		pids = append(pids, pid)
	}
	return cmd, out, readDone, pids
}

// waitExit waits up to a minute for the process to exit and for its
// output to be read, and returns its exit status.
func waitExit(t *testing.T, cmd *exec.Cmd, out *lineBuffer, readDone chan struct{}) int {
	t.Helper()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		<-readDone
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(time.Minute):
		t.Fatalf("the process did not exit within a minute:\n%s", out)
		return -1
	}
}

// TestSIGTERM: SIGTERM to logtk-host stops the workers, delivers what they
// wrote on the way out and leaves no process behind.
func TestSIGTERM(t *testing.T) {
	cmd, out, readDone, pids := startHostProcess(t)
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, cmd, out, readDone); code != 0 {
		t.Fatalf("host exited with status %d:\n%s", code, out)
	}
	if n := len(out.matching(regexp.MustCompile(`w: got SIGTERM, last words`))); n != 2 {
		t.Errorf("%d of 2 last words delivered:\n%s", n, out)
	}
	if n := len(out.matching(regexp.MustCompile(`worker stopped: exited with status 0`))); n != 2 {
		t.Errorf("%d of 2 stop records:\n%s", n, out)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("worker %d outlived the host", pid)
		}
	}
}

// TestHostKilled: workers do not outlive a host that is itself killed
// (SIGKILL leaves it no chance to stop them: the parent-death signal does).
func TestHostKilled(t *testing.T) {
	cmd, _, _, pids := startHostProcess(t)
	cmd.Process.Kill()
	cmd.Wait()
	for _, pid := range pids {
		deadline := time.Now().Add(30 * time.Second)
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("worker %d outlived the killed host", pid)
			}
			time.Sleep(5 * time.Millisecond) // polling with a deadline
		}
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(st, ')')
	return i < 0 || i+2 >= len(st) || st[i+2] != 'Z'
}

// TestValidateTouchesNothing: validate loads and checks the plugins and
// their configuration, but creates no directory and opens no file.
func TestValidateTouchesNothing(t *testing.T) {
	plugins := t.TempDir()
	for _, name := range []string{"text", "file"} {
		b, err := os.ReadFile(plugintest.Build(t, "../../plugins/"+name+"/plugin"))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(plugins, name+".wasm"), b, 0o644)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "plugins.hcl")
	os.WriteFile(cfg, []byte(`
plugin_dir = "`+plugins+`"
format "text" {
  plugin = "text"
}
transport "out" {
  plugin = "file"
  format = "text"
  config {
    path = "logs/app.log"
  }
  allow {
    directories = ["logs"]
  }
}
`), 0o644)
	var out bytes.Buffer
	if code := run([]string{"validate", "-config", cfg}, &out, &out); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "1 formats, 1 transports") {
		t.Errorf("output %q", out.String())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("validate created files: %v", entries)
	}
}

// TestServe: logtk-host serve listens, stores what a client sends, and
// stops cleanly on SIGTERM.
func TestServe(t *testing.T) {
	if os.Getenv("LOGTK_TEST_ROLE") != "" {
		return
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "server.hcl")
	os.WriteFile(cfg, []byte(`server {
  listen = "127.0.0.1:0"
  dir    = "received"
  tokens = ["0123456789abcdef0123"]

  syslog {
    tcp = "127.0.0.1:0"
  }
}

metrics {
  listen = "127.0.0.1:0"
}
`), 0o644)
	cmd, out, readDone := startSelf(t, "serve", cfg)
	listening := regexp.MustCompile(`log server listening: address=(\S+)`)
	out.waitFor(t, listening, 1)
	addr := out.matching(listening)[0][1]
	if err := wire.SendLoad(wire.Load{Addr: addr, Token: []byte("0123456789abcdef0123"), Sender: "s", Application: "cli",
		Format: "text", Batch: entries.Append(nil, []byte("hello\n")), Batches: 1, InFlight: 1}); err != nil {
		t.Fatalf("sending to the server: %v\n%s", err, out)
	}
	// The metrics block: /readyz and a scrape that counts the batch.
	metricsAt := regexp.MustCompile(`metrics listening: address=(\S+)`)
	out.waitFor(t, metricsAt, 1)
	get := func(path string) (int, string) {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + out.matching(metricsAt)[0][1] + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz: %d", code)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "logtk_server_records_total 1\n") {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	// The syslog block: a message over TCP is stored under "syslog".
	syslogAt := regexp.MustCompile(`syslog listening: tcp=(\S+)`)
	out.waitFor(t, syslogAt, 1)
	sc, err := net.DialTimeout("tcp", out.matching(syslogAt)[0][1], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sc.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(sc, "<11>1 2026-12-06T10:00:00Z h app - - - disk on fire\n")
	sc.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve exited with %v:\n%s", err, out)
	}
	<-readDone
	b, _ := os.ReadFile(filepath.Join(dir, "received", "cli", "records.log"))
	if string(b) != "hello\n" {
		t.Fatalf("stored %q", b)
	}
	if len(out.matching(regexp.MustCompile(`log server stopped: batches=1 records=1`))) != 1 {
		t.Errorf("no stop summary:\n%s", out)
	}
	var logsOut, logsErr bytes.Buffer
	if code := run([]string{"logs", filepath.Join(dir, "received", "syslog")}, &logsOut, &logsErr); code != 0 || !strings.Contains(logsOut.String(), "disk on fire") {
		t.Errorf("the syslog message: exit %d\n%s%s", code, logsOut.String(), logsErr.String())
	}
}

// TestExitUndelivered: run's exit status is not 0 when a record was not
// delivered (here dead-lettered by a format that fails on it), and the
// summary says so (issue 14: the host exited 0 after giving records up).
func TestExitUndelivered(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "plugins.hcl")
	hostile := plugintest.Build(t, "../../internal/wasm/testdata/hostile")
	for _, tc := range []struct {
		say  string
		code int
	}{{"fine", 0}, {"error", exitUndelivered}} {
		os.WriteFile(cfgPath, fmt.Appendf(nil, `
worker "w" {
  command = %q
  restart = "never"
  env     = { LOGTK_TEST_ROLE = "say", LOGTK_TEST_SAY = %q }
}
format "hostile" { plugin = %q }
transport "out" {
  plugin = "console"
  format = "hostile"
  allow { stdout = true }
}
`, os.Args[0], tc.say, hostile), 0o644)
		cmd, out, readDone := startSelf(t, "host", cfgPath)
		if code := waitExit(t, cmd, out, readDone); code != tc.code {
			t.Errorf("saying %q: exit status %d, want %d:\n%s", tc.say, code, tc.code, out)
		}
		if undelivered := len(out.matching(regexp.MustCompile(`NOT DELIVERED: 1 records dead-lettered`))) > 0; undelivered != (tc.code != 0) {
			t.Errorf("saying %q: the summary:\n%s", tc.say, out)
		}
	}
}

// TestExitGaveUp: run's exit status is 4 when a worker was given up after
// a crash loop, so that systemd's Restart=on-failure restarts the host
// (issue 17: it exited 0).
func TestExitGaveUp(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "plugins.hcl")
	os.WriteFile(cfgPath, []byte(`
worker "crashy" {
  command         = "/bin/false"
  restart         = "always"
  max_restarts    = 2
  restart_window  = "1m"
  backoff_initial = "10ms"
  backoff_max     = "10ms"
}
`), 0o644)
	cmd, out, readDone := startSelf(t, "host", cfgPath)
	if code := waitExit(t, cmd, out, readDone); code != exitGaveUp {
		t.Fatalf("exit status %d, want %d:\n%s", code, exitGaveUp, out)
	}
	if len(out.matching(regexp.MustCompile(`GAVE UP on 1 worker instances after a crash loop: \[crashy#0\]`))) != 1 {
		t.Errorf("the summary does not say so:\n%s", out)
	}
}

// TestSIGHUP: SIGHUP does not end the host (its default action killed it,
// and the workers with it, with status 129: issue 17); the host says it
// has no reload yet and goes on, then stops gracefully on SIGTERM.
func TestSIGHUP(t *testing.T) {
	cmd, out, readDone, _ := startHostProcess(t)
	cmd.Process.Signal(syscall.SIGHUP)
	out.waitFor(t, regexp.MustCompile(`SIGHUP received`), 1)
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, cmd, out, readDone); code != 0 {
		t.Fatalf("host exited with status %d:\n%s", code, out)
	}
	if n := len(out.matching(regexp.MustCompile(`w: got SIGTERM, last words`))); n != 2 {
		t.Errorf("%d of 2 workers stopped by SIGTERM (a SIGHUP must not reach them):\n%s", n, out)
	}
}

// TestCLIConventions: --version, -h on every command exits 0 with the
// help on stdout, a stray argument is refused rather than ignored (it
// used to validate ./plugins.hcl instead), and serve's default file is
// the one its help names.
func TestCLIConventions(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		code        int
		out, errOut string
	}{
		{[]string{"--version"}, 0, "logtk-host ", ""},
		{[]string{"-version"}, 0, "logtk-host ", ""},
		{[]string{"--help"}, 0, "usage: logtk-host <command>", ""},
		{[]string{"run", "-h"}, 0, "usage: logtk-host run [-config plugins.hcl]", ""},
		{[]string{"validate", "--help"}, 0, "usage: logtk-host validate", ""},
		{[]string{"serve", "-h"}, 0, "usage: logtk-host serve [-config server.hcl]", ""},
		{[]string{"validate", "other.hcl"}, 2, "", `logtk-host validate: unexpected argument "other.hcl" (the configuration is given as -config other.hcl)`},
		{[]string{"run", "-config", "x.hcl", "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"validate", "-nope"}, 2, "", "flag provided but not defined: -nope"},
		{[]string{"serve", "-config", filepath.Join(t.TempDir(), "server.hcl")}, 1, "", "server.hcl"},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"version", "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"--version", "-x"}, 2, "", `unexpected argument "-x"`},
		{[]string{"version", "-h"}, 0, "usage: logtk-host version", ""},
	} {
		var out, errOut bytes.Buffer
		code := run(tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errOut.String(), tc.errOut) ||
			(tc.out == "" && out.Len() > 0) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				tc.args, code, out.String(), errOut.String(), tc.code, tc.out, tc.errOut)
		}
	}
	// serve without -config reads ./server.hcl, as its help says.
	dir := t.TempDir()
	t.Chdir(dir)
	var out, errOut bytes.Buffer
	if code := run([]string{"serve"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "server.hcl") {
		t.Errorf("serve without -config: exit %d, stderr %q; want it to name server.hcl", code, errOut.String())
	}
}

// TestControlVerbs: status, restart, scale, stop and start, each through
// the running host's control socket (found in the runtime directory) and
// checked by status -o json: a restarted instance gets a new process while
// its sibling keeps its own.
func TestControlVerbs(t *testing.T) {
	runtime := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", runtime)
	cmd, out, readDone, pids := startHostProcess(t)
	out.waitFor(t, regexp.MustCompile(`control socket listening`), 1)
	socks, _ := filepath.Glob(filepath.Join(runtime, "logtk", "plugins-*.sock"))
	if len(socks) != 1 {
		t.Fatalf("control sockets in the runtime directory: %v\n%s", socks, out)
	}
	ctl := func(args ...string) (string, int) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := run(append(args, "-socket", socks[0]), &stdout, &stderr)
		return stdout.String() + stderr.String(), code
	}
	status := func() map[string]host.InstanceStatus {
		t.Helper()
		o, code := ctl("status", "-o", "json")
		var resp control.Response
		if err := json.Unmarshal([]byte(o), &resp); err != nil || code != 0 {
			t.Fatalf("status -o json: exit %d, %v:\n%s", code, err, o)
		}
		m := map[string]host.InstanceStatus{}
		for _, st := range resp.Instances {
			m[st.ID.String()] = st
		}
		return m
	}
	st := status()
	if len(st) != 2 || st["w#0"].State != host.StateRunning || !slices.Contains(pids, st["w#0"].PID) || !slices.Contains(pids, st["w#1"].PID) {
		t.Fatalf("status %+v, worker pids %v", st, pids)
	}
	if o, code := ctl("restart", "w#1"); code != 0 {
		t.Fatalf("restart w#1: exit %d\n%s", code, o)
	}
	after := status()
	if after["w#0"].PID != st["w#0"].PID || after["w#1"].PID == st["w#1"].PID || after["w#1"].PID == 0 || after["w#1"].Incarnation != 1 {
		t.Fatalf("after restart w#1: %+v, before %+v", after, st)
	}
	if o, code := ctl("scale", "w", "3"); code != 0 || !strings.Contains(o, "w#2") {
		t.Fatalf("scale w 3: exit %d\n%s", code, o)
	}
	if o, code := ctl("stop", "w#2"); code != 0 {
		t.Fatalf("stop w#2: exit %d\n%s", code, o)
	}
	if s := status()["w#2"]; s.State != host.StateStopped || s.PID != 0 {
		t.Fatalf("after stop: %+v", s)
	}
	if o, code := ctl("start", "w#2"); code != 0 {
		t.Fatalf("start w#2: exit %d\n%s", code, o)
	}
	if s := status()["w#2"]; s.State != host.StateRunning || s.PID == 0 {
		t.Fatalf("after start: %+v", s)
	}
	if o, code := ctl("scale", "w", "1"); code != 0 {
		t.Fatalf("scale w 1: exit %d\n%s", code, o)
	}
	// logs -f attached to the host: the records of a restart, filtered to
	// the instance, arrive as they are routed.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	streamed := &lineBuffer{more: make(chan struct{}, 1)}
	readDone2 := make(chan struct{})
	go func() { streamed.read(pr); close(readDone2) }()
	ctx, cancel := context.WithCancel(context.Background())
	streamDone := make(chan error, 1)
	go func() {
		streamDone <- control.Stream(ctx, socks[0], control.Request{Verb: "logs", Worker: "w#0", Grep: "ready|stopped"}, pw)
		pw.Close()
	}()
	// Restart until the stream shows it (the first restart may come
	// before the stream is attached).
	stoppedLine := regexp.MustCompile(`w#0 .*worker stopped: .*restarting: the operator asked`)
	for i := 0; len(streamed.matching(stoppedLine)) == 0; i++ {
		if i == 10 {
			t.Fatalf("logs -f saw none of 10 restarts:\n%s", streamed)
		}
		if o, code := ctl("restart", "w#0"); code != 0 {
			t.Fatalf("restart w#0: exit %d\n%s", code, o)
		}
		select {
		case <-streamed.more:
		case <-time.After(2 * time.Second):
		}
	}
	streamed.waitFor(t, regexp.MustCompile(`w#0 .*w: ready`), 1) // the last restart's process
	cancel()
	if err := <-streamDone; err != nil {
		t.Fatalf("logs stream: %v", err)
	}
	<-readDone2
	if strings.Contains(streamed.String(), "w#1") || strings.Contains(streamed.String(), "worker started") {
		t.Errorf("the stream's filter let through:\n%s", streamed)
	}
	o, code := ctl("status")
	if code != 0 || !regexp.MustCompile(`(?m)^w#0\s+running\s+\d+`).MatchString(o) || strings.Contains(o, "w#1") {
		t.Fatalf("status after scale 1: exit %d\n%s", code, o)
	}
	for _, bad := range [][]string{{"restart"}, {"scale", "w"}, {"scale", "w", "-1"}, {"restart", "nope"}} {
		if o, code := ctl(bad...); code == 0 {
			t.Errorf("%q succeeded:\n%s", bad, o)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, cmd, out, readDone); code != 0 {
		t.Fatalf("host exited with status %d:\n%s", code, out)
	}
	if _, err := os.Stat(socks[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the control socket is left behind: %v", err)
	}
}

// TestLogs: logs reads what a log server stored (its application
// directory), with the server's stamp, filtered by worker, level and
// pattern, as text or JSON; a torn tail is reported, not fatal.
func TestLogs(t *testing.T) {
	dir := t.TempDir()
	srv, err := logserver.New(&config.Config{Server: &config.ServerConfig{Listen: "127.0.0.1:0", Dir: dir,
		Tokens: [][]byte{[]byte("a-token-of-20-chars!")}, Fsync: "batch", MaxBytes: 1 << 30}}, logserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	var batch []byte
	for i, w := range []struct {
		worker string
		idx    uint32
		level  int32
		msg    string
	}{{"web", 0, record.LevelInfo, "GET /"}, {"web", 1, record.LevelWarn, "slow request"}, {"db", 0, record.LevelError, "disk full"}} {
		r := irecord.AppendHead(nil, time.Now(), w.level, w.msg, "")
		r = irecord.AppendStamp(r, &irecord.Stamp{Worker: w.worker, WorkerIndex: w.idx, Seq: uint64(i + 1)})
		batch = entries.Append(batch, r)
	}
	if err := wire.SendLoad(wire.Load{Addr: ln.Addr().String(), Token: []byte("a-token-of-20-chars!"), Sender: "host-1", Application: "shop",
		Format: "logtk.v1.Record", Batch: batch, Batches: 1, InFlight: 1}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	app := filepath.Join(dir, "shop")
	logs := func(args ...string) (string, string, int) {
		var out, errOut bytes.Buffer
		code := run(append([]string{"logs"}, args...), &out, &errOut)
		return out.String(), errOut.String(), code
	}
	out, errOut, code := logs(app)
	if code != 0 || strings.Count(out, "\n") != 3 || !strings.Contains(out, "host-1/shop web#1") || !strings.Contains(out, "slow request") || errOut != "" {
		t.Fatalf("logs %s: exit %d\n%s\nstderr: %s", app, code, out, errOut)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"-worker", "web"}, []string{"GET /", "slow request"}},
		{[]string{"-worker", "web#1"}, []string{"slow request"}},
		{[]string{"-level", "warn"}, []string{"slow request", "disk full"}},
		{[]string{"-grep", "disk|GET"}, []string{"GET /", "disk full"}},
		{[]string{"-since", "1h", "-level", "error"}, []string{"disk full"}},
	} {
		out, errOut, code := logs(append(tc.args, app)...)
		if code != 0 || strings.Count(out, "\n") != len(tc.want) {
			t.Errorf("logs %q: exit %d\n%s%s", tc.args, code, out, errOut)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("logs %q lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
	out, _, code = logs("-o", "json", "-worker", "db", filepath.Join(app, "records.pb"))
	var obj map[string]any
	if err := json.Unmarshal([]byte(out), &obj); code != 0 || err != nil || obj["msg"] != "disk full" {
		t.Errorf("logs -o json: exit %d, %v:\n%s", code, err, out)
	}
	// A torn tail: reported on stderr, every whole record printed.
	f, _ := os.OpenFile(filepath.Join(app, "records.pb"), os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{0x40, 0x0a, 0x01})
	f.Close()
	out, errOut, code = logs(app)
	if code != 0 || strings.Count(out, "\n") != 3 || !strings.Contains(errOut, "cut short") {
		t.Errorf("logs with a torn tail: exit %d\n%s\nstderr: %s", code, out, errOut)
	}
	for _, bad := range [][]string{{}, {"-level", "loud", app}, {"-grep", "(", app}, {"-o", "xml", app}, {filepath.Join(dir, "nope")}, {"-worker", "web#x", app}} {
		if _, errOut, code := logs(bad...); code == 0 || errOut == "" {
			t.Errorf("logs %q: exit %d, stderr %q", bad, code, errOut)
		}
	}
}

// TestSystemdNotify: under systemd (NOTIFY_SOCKET), run says READY=1 once
// its workers are started and STOPPING=1 when a signal stops it.
func TestSystemdNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	cmd, out, readDone, _ := startHostProcess(t)
	read := func(want string) {
		t.Helper()
		ln.SetReadDeadline(time.Now().Add(time.Minute))
		b := make([]byte, 256)
		n, err := ln.Read(b)
		if err != nil || string(b[:n]) != want {
			t.Fatalf("notification %q, %v; want %q\n%s", b[:n], err, want, out)
		}
	}
	read("READY=1")
	cmd.Process.Signal(syscall.SIGTERM)
	read("STOPPING=1")
	if code := waitExit(t, cmd, out, readDone); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

// TestReloadCLI: reload (and SIGHUP) read the configuration again: a
// broken one changes nothing and answers with validate's diagnostics; a
// valid one adds, removes and changes workers, leaving the unchanged
// ones' processes alone.
func TestReloadCLI(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "plugins.hcl")
	write := func(src string) {
		t.Helper()
		if err := os.WriteFile(cfgPath, fmt.Appendf(nil, src, os.Args[0], os.Args[0]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`
worker "w" {
  command = %q
  count   = 2
  env     = { LOGTK_TEST_ROLE = "worker" }
}
worker "old" {
  command = %q
  env     = { LOGTK_TEST_ROLE = "worker" }
}
`)
	cmd, out, readDone := startSelf(t, "host", cfgPath)
	out.waitFor(t, regexp.MustCompile(`control socket listening`), 1)
	out.waitFor(t, regexp.MustCompile(`w: ready`), 3)
	ctl := func(args ...string) (string, int) {
		var stdout, stderr bytes.Buffer
		code := run(append(args, "-config", cfgPath), &stdout, &stderr)
		return stdout.String() + stderr.String(), code
	}
	pids := func() map[string]int {
		o, _ := ctl("status", "-o", "json")
		var resp control.Response
		json.Unmarshal([]byte(o), &resp)
		m := map[string]int{}
		for _, st := range resp.Instances {
			m[st.ID.String()] = st.PID
		}
		return m
	}
	before := pids()

	// A second host of the same configuration does not start.
	var second bytes.Buffer
	if code := run([]string{"run", "-config", cfgPath}, &second, &second); code != 1 || !strings.Contains(second.String(), "a host of this configuration runs already") {
		t.Fatalf("a second host: exit %d\n%s", code, second.String())
	}
	if after := pids(); !maps.Equal(after, before) {
		t.Fatalf("the second host touched the first's workers: %v, was %v", after, before)
	}

	// A broken configuration: nothing changes, the diagnostics come back.
	os.WriteFile(cfgPath, []byte("worker \"w\" {\n  command = \"/bin/true\"\n  restart = \"maybe\"\n}\n"), 0o644)
	o, code := ctl("reload")
	if code == 0 || !strings.Contains(o, "plugins.hcl:3:13: error: Invalid restart policy") || !strings.Contains(o, "nothing changed") {
		t.Fatalf("reload of a broken configuration: exit %d\n%s", code, o)
	}
	if after := pids(); !maps.Equal(after, before) {
		t.Fatalf("a refused reload changed the workers: %v, was %v", after, before)
	}

	// A valid one: old removed, new added, w scaled to 3 (unchanged
	// otherwise: its instances keep their processes).
	write(`
worker "w" {
  command = %q
  count   = 3
  env     = { LOGTK_TEST_ROLE = "worker" }
}
worker "new" {
  command = %q
  env     = { LOGTK_TEST_ROLE = "worker" }
}
`)
	o, code = ctl("reload")
	if code != 0 || !strings.Contains(o, "workers added new, removed old, changed none, scaled w 2->3, unchanged none") {
		t.Fatalf("reload: exit %d\n%s", code, o)
	}
	after := pids()
	if after["w#0"] != before["w#0"] || after["w#1"] != before["w#1"] || after["w#2"] == 0 || after["new#0"] == 0 {
		t.Fatalf("after the reload: %v, before %v", after, before)
	}
	if _, ok := after["old#0"]; ok {
		t.Fatalf("old#0 is still there: %v", after)
	}

	// SIGHUP does the same: the env of new changes, so new#0 restarts.
	write(`
worker "w" {
  command = %q
  count   = 3
  env     = { LOGTK_TEST_ROLE = "worker" }
}
worker "new" {
  command = %q
  env     = { LOGTK_TEST_ROLE = "worker", GENERATION = "2" }
}
`)
	cmd.Process.Signal(syscall.SIGHUP)
	out.waitFor(t, regexp.MustCompile(`configuration reloaded: .*workers_changed=\["new"\]`), 1)
	if p := pids(); p["new#0"] == after["new#0"] || p["w#0"] != before["w#0"] {
		t.Fatalf("after SIGHUP: %v, before %v", p, after)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, cmd, out, readDone); code != 0 {
		t.Fatalf("host exited with status %d:\n%s", code, out)
	}
}

// switchProxy refuses every connection until forward is set, then
// passes them to it.
type switchProxy struct {
	ln      net.Listener
	forward atomic.Value // string: the address
}

func newSwitchProxy(t *testing.T) *switchProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			to, _ := p.forward.Load().(string)
			if to == "" {
				c.Close()
				continue
			}
			s, err := net.DialTimeout("tcp", to, 5*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
	return p
}

// TestHostCrashRecovers: logtk-host run keeps its workers' rings in its
// runtime directory by default. A host SIGKILLed while all its workers'
// records wait for a log server that refuses them loses none: the next
// host, started on the same configuration, routes them all, once.
func TestHostCrashRecovers(t *testing.T) {
	const n = 1000 // each worker's fit in its ring: nothing is settled before the kill
	dir := t.TempDir()
	proxy := newSwitchProxy(t)
	cfgPath := filepath.Join(dir, "plugins.hcl")
	os.WriteFile(cfgPath, fmt.Appendf(nil, `
worker "w" {
  command = %q
  count   = 2
  restart = "always"
  env     = { LOGTK_TEST_ROLE = "say-n", LOGTK_TEST_N = "%d", LOGTK_TEST_MARKER = "%s/said" }
}

format "pb" {
  plugin = "protobuf"
}

transport "net" {
  plugin = "network"
  format = "pb"
  config {
    endpoint    = "logserver"
    token       = "a-token-of-20-chars!"
    sender      = "crashing-host"
    application = "app"
  }
  allow {
    endpoint "logserver" {
      address      = %q
      dial_timeout = "1s"
    }
  }
}
`, os.Args[0], n, dir, proxy.ln.Addr().String()), 0o644)
	// The markers: each worker's, made once it logged its records.
	markers := func() int {
		m, _ := filepath.Glob(filepath.Join(dir, "said-*"))
		return len(m)
	}
	cmd, out, _ := startSelf(t, "host", cfgPath)
	deadline := time.Now().Add(time.Minute)
	for markers() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the workers did not log their records:\n%s", out)
		}
		time.Sleep(5 * time.Millisecond) // polling for files the workers make
	}
	cmd.Process.Kill()
	cmd.Wait()

	srvDir := t.TempDir()
	srv, err := logserver.New(&config.Config{Server: &config.ServerConfig{Listen: "127.0.0.1:0", Dir: srvDir,
		Tokens: [][]byte{[]byte("a-token-of-20-chars!")}, Fsync: "batch", MaxBytes: 1 << 30}}, logserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	proxy.forward.Store(ln.Addr().String())

	cmd, out, readDone := startSelf(t, "host", cfgPath)
	out.waitFor(t, regexp.MustCompile(`routing again the records a host which did not stop cleanly left: worker="w#\d" records=1001 `), 2) // and "worker started"
	deadline = time.Now().Add(time.Minute)
	for {
		_, records, _ := srv.Stats()
		if records >= 2*n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records stored:\n%s", records, 2*n, out)
		}
		time.Sleep(5 * time.Millisecond) // polling the server's count
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, cmd, out, readDone); code != 0 {
		t.Fatalf("the second host exited %d:\n%s", code, out)
	}
	var logsOut, logsErr bytes.Buffer
	if code := run([]string{"logs", "-o", "json", filepath.Join(srvDir, "app")}, &logsOut, &logsErr); code != 0 {
		t.Fatalf("logs: %d %s", code, logsErr.String())
	}
	seen := map[string]int{}
	for _, line := range strings.Split(logsOut.String(), "\n") {
		var v struct {
			Worker string `json:"worker"`
			Index  int    `json:"worker_index"`
			Msg    string `json:"msg"`
			I      *int   `json:"i"`
		}
		if json.Unmarshal([]byte(line), &v) != nil || v.I == nil {
			continue
		}
		seen[fmt.Sprintf("%d/%d", v.Index, *v.I)]++
	}
	for w := range 2 {
		for i := range n {
			if c := seen[fmt.Sprintf("%d/%d", w, i)]; c != 1 {
				t.Fatalf("w#%d record %d stored %d times", w, i, c)
			}
		}
	}
}

// TestMain keeps what the commands put in the user's runtime directory
// (control sockets, the durable ingest's rings and journals) out of the
// machine's: each test run has its own.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "logtk-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("XDG_RUNTIME_DIR", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestServeKafka: `logtk-host serve` with a kafka block reads the topic
// as a member of its group and stores what it reads; `logs` reads it
// back; the stop summary counts it.
func TestServeKafka(t *testing.T) {
	if os.Getenv("LOGTK_TEST_ROLE") != "" {
		return
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "logs"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var rs []*kgo.Record
	for i := range 3 {
		v := irecord.AppendStamp(irecord.AppendHead(nil, time.Unix(1700000000, 0), record.LevelInfo, fmt.Sprintf("via kafka %d", i), ""), &irecord.Stamp{Worker: "w", Seq: uint64(i + 1)})
		rs = append(rs, &kgo.Record{Topic: "logs", Key: []byte("h/w#0"), Value: v, Headers: []kgo.RecordHeader{
			{Key: kafkatransport.HeaderSender, Value: []byte("h")}, {Key: kafkatransport.HeaderApplication, Value: []byte("shop")},
			{Key: kafkatransport.HeaderBatch, Value: fmt.Appendf(nil, "%d", i+1)}, {Key: kafkatransport.HeaderWorker, Value: []byte("w")},
			{Key: kafkatransport.HeaderIndex, Value: []byte("0")}, {Key: kafkatransport.HeaderPart, Value: []byte("0/1")}}})
	}
	rs = append(rs, &kgo.Record{Topic: "logs", Value: []byte("not ours")})
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "server.hcl")
	os.WriteFile(cfg, fmt.Appendf(nil, `server {
  listen = "127.0.0.1:0"
  dir    = "received"
  tokens = ["0123456789abcdef0123"]

  kafka {
    brokers = [%q]
    topics  = ["logs"]
    group   = "servers"
  }
}
`, c.ListenAddrs()[0]), 0o644)
	cmd, out, readDone := startSelf(t, "serve", cfg)
	out.waitFor(t, regexp.MustCompile(`kafka: reading`), 1)
	adm := kadm.NewClient(cl)
	for deadline := time.Now().Add(time.Minute); ; {
		lag, err := adm.Lag(ctx, "servers")
		if err == nil && lag["servers"].Lag.Total() == 0 && len(lag["servers"].Lag) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not read the topic within a minute:\n%s", out)
		}
		time.Sleep(10 * time.Millisecond) // polling the group's lag: no event to wait on
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve exited with %v:\n%s", err, out)
	}
	<-readDone
	if len(out.matching(regexp.MustCompile(`log server stopped: .*kafka_records=3`))) != 1 {
		t.Errorf("no stop summary counting 3 Kafka records:\n%s", out)
	}
	var logsOut, logsErr bytes.Buffer
	if code := run([]string{"logs", filepath.Join(dir, "received", "shop")}, &logsOut, &logsErr); code != 0 || strings.Count(logsOut.String(), "via kafka") != 3 {
		t.Errorf("the records: exit %d\n%s%s", code, logsOut.String(), logsErr.String())
	}
	logsOut.Reset()
	if code := run([]string{"logs", filepath.Join(dir, "received", "kafka")}, &logsOut, &logsErr); code != 0 || !strings.Contains(logsOut.String(), "not ours") || !strings.Contains(logsOut.String(), "kafka_error") {
		t.Errorf("the foreign record: exit %d\n%s%s", code, logsOut.String(), logsErr.String())
	}
}
