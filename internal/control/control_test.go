package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	irecord "github.com/logtk/logtk/internal/record"

	"github.com/logtk/logtk/host"
	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/record"
)

// The test binary doubles as a client run as another user.
func init() {
	if sock := os.Getenv("LOGTK_TEST_CONTROL_CLIENT"); sock != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := Do(ctx, sock, Request{Verb: "status"})
		fmt.Println("answer:", err)
		os.Exit(0)
	}
}

// fakeHost is a host of two instances that records what it was asked.
type fakeHost struct {
	mu      sync.Mutex
	calls   []string
	records chan host.TapBatch
}

func (f *fakeHost) Status() []host.InstanceStatus {
	return []host.InstanceStatus{{ID: host.WorkerID{Name: "web", Index: 0}, State: host.StateRunning, PID: 10}, {ID: host.WorkerID{Name: "web", Index: 1}, State: host.StateRunning, PID: 11}}
}

func (f *fakeHost) Stages() []host.StageStatus {
	return []host.StageStatus{{Name: "transport file", Plugin: "/p/file.wasm", Instances: 1, Queued: 3, Delivered: 120}}
}

func (f *fakeHost) note(s string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
	if strings.Contains(s, "#1") && strings.HasPrefix(s, "start") {
		return errors.New("already running")
	}
	return nil
}
func (f *fakeHost) Restart(id host.WorkerID) error       { return f.note("restart " + id.String()) }
func (f *fakeHost) StopInstance(id host.WorkerID) error  { return f.note("stop " + id.String()) }
func (f *fakeHost) StartInstance(id host.WorkerID) error { return f.note("start " + id.String()) }
func (f *fakeHost) Scale(name string, n int) error {
	return f.note(fmt.Sprintf("scale %s %d", name, n))
}

// Tap serves the records the test puts in f.records.
func (f *fakeHost) Tap(int) (<-chan host.TapBatch, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.records == nil {
		f.records = make(chan host.TapBatch, 16)
	}
	return f.records, func() {}
}

func listen(t *testing.T) (*Server, *fakeHost, string) {
	t.Helper()
	f := &fakeHost{}
	sock := filepath.Join(t.TempDir(), "run", "host.sock")
	s, err := Listen(sock, f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, f, sock
}

func do(t *testing.T, sock string, req Request) (Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Do(ctx, sock, req)
}

func TestVerbs(t *testing.T) {
	_, f, sock := listen(t)
	st, err := os.Stat(sock)
	if err != nil || st.Mode().Perm() != 0o600 || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v, %v: want a socket of mode 0600", st.Mode(), err)
	}
	if dir, _ := os.Stat(filepath.Dir(sock)); dir.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory mode %v, want 0700", dir.Mode().Perm())
	}
	resp, err := do(t, sock, Request{Verb: "status"})
	if err != nil || !resp.OK || len(resp.Instances) != 2 || resp.Instances[1].PID != 11 || len(resp.Stages) != 1 || resp.Stages[0].Delivered != 120 {
		t.Fatalf("status: %+v, %v", resp, err)
	}
	for _, tc := range []struct {
		req   Request
		calls []string
		err   string
	}{
		{Request{Verb: "restart", Target: "web"}, []string{"restart web#0", "restart web#1"}, ""},
		{Request{Verb: "stop", Target: "web#1"}, []string{"stop web#1"}, ""},
		{Request{Verb: "start", Target: "web"}, []string{"start web#0", "start web#1"}, "web#1: already running"},
		{Request{Verb: "scale", Worker: "web", Count: ptr(4)}, []string{"scale web 4"}, ""},
		{Request{Verb: "scale", Worker: "web"}, nil, "scale needs a worker and a count"},
		{Request{Verb: "restart", Target: "api"}, nil, "no worker instance api"},
		{Request{Verb: "restart", Target: "web#7"}, nil, "no worker instance web#7"},
		{Request{Verb: "restart"}, nil, "no target"},
		{Request{Verb: "reboot"}, nil, `unknown verb "reboot"`},
	} {
		f.mu.Lock()
		f.calls = nil
		f.mu.Unlock()
		resp, err := do(t, sock, tc.req)
		switch {
		case tc.err == "" && err != nil, tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%+v: error %v, want %q", tc.req, err, tc.err)
		case len(resp.Instances) != 2:
			t.Errorf("%+v: no status with the answer: %+v", tc.req, resp)
		}
		f.mu.Lock()
		if fmt.Sprint(f.calls) != fmt.Sprint(tc.calls) {
			t.Errorf("%+v: the host was asked %q, want %q", tc.req, f.calls, tc.calls)
		}
		f.mu.Unlock()
	}
}

// TestBadClients: a malformed request, an unknown field, an oversized or
// a missing request line each get an answer saying what was wrong, and
// the server goes on serving.
func TestBadClients(t *testing.T) {
	_, _, sock := listen(t)
	for _, tc := range []struct{ send, want string }{
		{"not json\n", "malformed request"},
		{`{"verb":"status","colour":"red"}` + "\n", `unknown field`},
		{strings.Repeat("x", 70<<10), "no request line"},
		{"", "no request line"},
	} {
		c, err := net.DialTimeout("unix", sock, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(15 * time.Second))
		c.Write([]byte(tc.send))
		c.(*net.UnixConn).CloseWrite()
		b, _ := io.ReadAll(c)
		c.Close()
		if !strings.Contains(string(b), tc.want) || !strings.Contains(string(b), `"ok":false`) {
			t.Errorf("sent %.40q: answer %q, want %q", tc.send, b, tc.want)
		}
	}
	if _, err := do(t, sock, Request{Verb: "status"}); err != nil {
		t.Fatalf("the server stopped serving: %v", err)
	}
}

// TestSecondHostAndStaleSocket: a host cannot take the socket of one that
// runs; a socket left by one that died is replaced; a file that is not a
// socket is left alone.
func TestSecondHostAndStaleSocket(t *testing.T) {
	s, _, sock := listen(t)
	if _, err := Listen(sock, &fakeHost{}, Options{}); err == nil || !strings.Contains(err.Error(), "another host is listening") {
		t.Fatalf("a second Listen on a live socket: %v", err)
	}
	// A stale socket: a listener whose file stays behind it.
	s.Close()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	s2, err := Listen(sock, &fakeHost{}, Options{})
	if err != nil {
		t.Fatalf("a stale socket was not replaced: %v", err)
	}
	s2.Close()
	plain := filepath.Join(t.TempDir(), "file")
	os.WriteFile(plain, []byte("keep me"), 0o644)
	if _, err := Listen(plain, &fakeHost{}, Options{}); err == nil {
		t.Fatal("Listen replaced a regular file")
	}
	if b, _ := os.ReadFile(plain); string(b) != "keep me" {
		t.Fatal("the regular file was changed")
	}
}

// TestRefusesOtherUsers: a process of another user is refused by its
// credentials even when the file's mode would let it connect.
func TestRefusesOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as nobody")
	}
	_, _, sock := listen(t)
	// Open the way through the file system, to test the credentials check.
	os.Chmod(filepath.Dir(sock), 0o755)
	os.Chmod(filepath.Dir(filepath.Dir(sock)), 0o755)
	os.Chmod(sock, 0o666)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(filepath.Dir(filepath.Dir(sock)), "client")
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(bin); d != "/"; d = filepath.Dir(d) {
		if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o001 == 0 {
			os.Chmod(d, st.Mode().Perm()|0o011) // traversable, for the test's own temp dirs
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run", "^$")
	cmd.Env = append(os.Environ(), "LOGTK_TEST_CONTROL_CLIENT="+sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as nobody: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "permission denied: uid 65534 may not control this host") {
		t.Fatalf("the client as nobody got: %s", out)
	}
}

// TestLogsStream: logs answers, then streams the records the host routes
// that the filter selects, one line each, telling a reader that fell
// behind how many it missed; a bad filter is refused.
func TestLogsStream(t *testing.T) {
	_, f, sock := listen(t)
	f.mu.Lock()
	f.records = make(chan host.TapBatch, 16)
	f.mu.Unlock()
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	c.Write([]byte(`{"verb":"logs","worker":"web","level":"warn","output":"json"}` + "\n"))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, `{"ok":true,"instances":[`) {
		t.Fatalf("answer %q, %v", line, err)
	}
	mk := func(worker string, level int32, msg string) []byte {
		b := irecord.AppendHead(nil, time.Unix(1700000000, 0), level, msg, "")
		return entries.Append(nil, irecord.AppendStamp(b, &irecord.Stamp{Worker: worker, Seq: 1}))
	}
	batch := append(append(mk("web", record.LevelError, "kept"), mk("db", record.LevelError, "other worker")...), mk("web", record.LevelInfo, "too low")...)
	f.records <- host.TapBatch{Entries: batch, Missed: 7}
	for _, want := range []string{`{"missed":7}`, `"msg":"kept"`} {
		line, err := r.ReadString('\n')
		if err != nil || !strings.Contains(line, want) {
			t.Fatalf("line %q, %v; want %q", line, err, want)
		}
	}
	close(f.records)
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Fatalf("after the host is done: %q, %v", rest, err)
	}
	for _, bad := range []string{`{"verb":"logs","level":"loud"}`, `{"verb":"logs","grep":"("}`, `{"verb":"logs","output":"xml"}`, `{"verb":"logs","worker":"a#b"}`} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var req Request
		json.Unmarshal([]byte(bad), &req)
		_, err := Do(ctx, sock, req)
		cancel()
		if err == nil {
			t.Errorf("%s was accepted", bad)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestStrictFields: field names are matched exactly and given once (the
// standard decoder took "VERB" for "verb" and the last of two verbs).
func TestStrictFields(t *testing.T) {
	_, f, sock := listen(t)
	for _, line := range []string{
		`{"VERB":"stop","TARGET":"web#0"}`,
		`{"verb":"status","Verb":"stop","target":"web#0"}`,
		`{"verb":"status","verb":"stop","target":"web#0"}`,
	} {
		c, err := net.DialTimeout("unix", sock, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte(line + "\n"))
		b, _ := io.ReadAll(c)
		c.Close()
		if !strings.Contains(string(b), `"ok":false`) || !strings.Contains(string(b), "malformed request") || !strings.Contains(string(b), `"instances":[`) {
			t.Errorf("%s: answer %s", line, b)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) != 0 {
		t.Fatalf("the host was asked %q", f.calls)
	}
}

// TestForeignDirectory: a socket directory another user made, or one
// others may write to, is refused (they could replace the socket).
func TestForeignDirectory(t *testing.T) {
	open := filepath.Join(t.TempDir(), "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	if _, err := Listen(filepath.Join(open, "h.sock"), &fakeHost{}, Options{}); err == nil || !strings.Contains(err.Error(), "others may write to it") {
		t.Errorf("a world-writable directory: %v", err)
	}
	if os.Geteuid() != 0 {
		return // chown to another user needs root; the mode check above ran
	}
	theirs := filepath.Join(t.TempDir(), "theirs")
	os.Mkdir(theirs, 0o700)
	os.Chown(theirs, 65534, 65534)
	if _, err := Listen(filepath.Join(theirs, "h.sock"), &fakeHost{}, Options{}); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("a directory of another user: %v", err)
	}
}

// TestCloseWithIdleClient: a client that connected and sent nothing does
// not hold up Close until its request times out.
func TestCloseWithIdleClient(t *testing.T) {
	s, _, sock := listen(t)
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Wait until the server has the connection (it answers a status on
	// another one after accepting this one).
	if _, err := do(t, sock, Request{Verb: "status"}); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case <-closed:
	case <-time.After(requestTimeout / 2):
		t.Fatalf("Close waited for an idle client (its request times out after %s)", requestTimeout)
	}
}

// TestListenLeavesTheUmask: files the process creates while a control
// socket is made get the process's usual mode. (Listen set the umask
// around its listen; a file transport creating its log at that moment
// got mode 0600, which a shipper running as another user cannot read.)
func TestListenLeavesTheUmask(t *testing.T) {
	dir := t.TempDir()
	probe := func(name string) os.FileMode {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		st, err := os.Stat(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode().Perm()
	}
	want := probe("before")
	stop := make(chan struct{})
	modes := make(chan os.FileMode, 1)
	go func() {
		seen := want
		for i := 0; ; i++ {
			select {
			case <-stop:
				modes <- seen
				return
			default:
			}
			if m := probe(fmt.Sprint(i % 100)); m != want {
				seen = m
			}
			os.Remove(filepath.Join(dir, fmt.Sprint(i%100)))
		}
	}()
	sock := filepath.Join(t.TempDir(), "run", "h.sock")
	for range 200 {
		s, err := Listen(sock, &fakeHost{}, Options{})
		if err != nil {
			close(stop)
			t.Fatal(err)
		}
		s.Close()
	}
	close(stop)
	if got := <-modes; got != want {
		t.Fatalf("a file made while sockets were made got mode %v, not %v", got, want)
	}
	st, err := os.Stat(sock)
	if err == nil {
		t.Fatalf("socket left after Close: %v", st.Mode())
	}
}
