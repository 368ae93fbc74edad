// Package control is the control channel of a running host: a unix
// socket on which logtk-host's client verbs (status, restart, stop,
// start, scale) ask the host to act. docs/control.md specifies it.
//
// A connection carries one request, a JSON object on one line, and one
// answer, a JSON object on one line; then the server closes it. Only the
// host's own user (and root, and the members of a group the
// configuration names) may connect: the socket file is 0600 (0660 with a
// group), and the server checks each peer's credentials (SO_PEERCRED)
// besides.
package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/logtk/logtk/host"
	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/internal/logread"
	"github.com/logtk/logtk/record"
)

// Request is what a client asks.
type Request struct {
	// Verb is status, restart, stop, start or scale.
	Verb string `json:"verb"`
	// Target names the instances of restart, stop and start: "NAME" for
	// every instance of a worker block, "NAME#i" for one.
	Target string `json:"target,omitempty"`
	// Worker and Count are scale's: the worker block and its new count.
	// Worker also filters logs (NAME or NAME#i).
	Worker string `json:"worker,omitempty"`
	Count  *int   `json:"count,omitempty"`
	// Level, Grep and Output are logs': the lowest level shown (trace
	// ... fatal), a regular expression the record's text line must
	// match, and "text" (default) or "json".
	Level  string `json:"level,omitempty"`
	Grep   string `json:"grep,omitempty"`
	Output string `json:"output,omitempty"`
}

// Response is the server's answer.
type Response struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Message says what a reload changed.
	Message string `json:"message,omitempty"`
	// Instances is the status of every worker instance after the verb
	// was carried out, or was refused (every answer to a peer allowed to
	// connect has it, empty when there is no instance).
	Instances []host.InstanceStatus `json:"instances"`
	// Stages is the status of the host's format and transport stages
	// (status only).
	Stages []host.StageStatus `json:"stages,omitempty"`
}

// Limits of the protocol.
const (
	maxRequestBytes = 64 << 10
	requestTimeout  = 10 * time.Second // to send the request line
	// verbTimeout bounds a verb's work; a restart or stop waits for the
	// workers' StopTimeout at most, which this must exceed.
	verbTimeout = 10 * time.Minute
)

// ErrInUse is Listen's error when a running host listens on the socket.
var ErrInUse = errors.New("another host is listening on it")

// Controlled is what the server drives: a *host.Host.
type Controlled interface {
	Status() []host.InstanceStatus
	Stages() []host.StageStatus
	Restart(host.WorkerID) error
	StopInstance(host.WorkerID) error
	StartInstance(host.WorkerID) error
	Scale(name string, n int) error
	Tap(buffer int) (<-chan host.TapBatch, func())
}

var _ Controlled = (*host.Host)(nil)

// Server serves a host's control socket.
type Server struct {
	h      Controlled
	ln     *net.UnixListener
	log    hclog.Logger
	gid    int // a group whose members may connect too; -1 for none
	reload func() (string, error)
	uid    int // the server's effective uid
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[*net.UnixConn]bool // open, closed by Close
}

// Options configure Listen.
type Options struct {
	// Group, when not nil, is a group whose members may use the socket.
	Group *uint32
	// Logger receives refused connections and failed requests.
	Logger hclog.Logger
	// Reload carries out the reload verb: it returns what changed, or
	// why nothing did. Without it reload is refused.
	Reload func() (string, error)
}

// Listen creates the socket at path (its directory too, 0700, or 0750
// with a group) and serves h on it until Close. A stale socket left by a
// host that died is replaced; one a running host listens on is not.
func Listen(path string, h Controlled, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	dirMode, sockMode := os.FileMode(0o700), os.FileMode(0o600)
	if opts.Group != nil {
		dirMode, sockMode = 0o750, 0o660
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// A directory made by someone else (another user got to /tmp first)
	// or open to others would let them replace the socket.
	if err := checkDir(dir); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, ErrInUse)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control socket %s: a file that is not a socket is in the way", path)
		}
		os.Remove(path) // stale: its host is gone
	}
	// Made with the process's umask, then given its mode. Not by setting
	// the umask around the listen: the umask is the process's, and a
	// transport creating a log file at that moment got mode 0600. Until
	// the chmod, the peer check of every connection keeps other users
	// out (and a directory of ours, 0700 when we made it, most of them).
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, sockMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	s := &Server{h: h, ln: ln, log: opts.Logger, gid: -1, uid: os.Geteuid(), reload: opts.Reload}
	if opts.Group != nil {
		s.gid = int(*opts.Group)
		if err := os.Chown(path, -1, s.gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("control socket: %w", err)
		}
		os.Chown(dir, -1, s.gid)
	}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// checkDir refuses a socket directory that is not the host's own or that
// others may write to.
func checkDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	switch {
	case !ok:
		return nil
	case int(sys.Uid) != os.Geteuid():
		return fmt.Errorf("%s belongs to uid %d, not to this host's user (uid %d): another user could replace the socket; remove it, or set control { socket } elsewhere", dir, sys.Uid, os.Geteuid())
	case st.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s has mode %v: others may write to it, and so replace the socket; chmod go-w it, or set control { socket } elsewhere", dir, st.Mode().Perm())
	}
	return nil
}

// Addr returns the socket's path.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops serving and removes the socket. It closes the connections
// still open (a client still sending its request, a logs stream) and
// waits for the requests being carried out.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.CloseRead() // a handler reading its request, or watching for the end of a stream, wakes
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("control socket: accept failed", "error", err)
			}
			return
		}
		s.mu.Lock()
		if s.conns == nil {
			s.conns = map[*net.UnixConn]bool{}
		}
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.handle(c)
		}()
	}
}

// allowed checks the peer's credentials.
func (s *Server) allowed(c *net.UnixConn) (ucred *unix.Ucred, ok bool) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, false
	}
	var cerr error
	raw.Control(func(fd uintptr) { ucred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if cerr != nil {
		return nil, false
	}
	if int(ucred.Uid) == s.uid || ucred.Uid == 0 {
		return ucred, true
	}
	if s.gid >= 0 && (int(ucred.Gid) == s.gid || inGroup(int(ucred.Pid), s.gid)) {
		return ucred, true
	}
	return ucred, false
}

// inGroup reports whether process pid has gid among its groups.
func inGroup(pid, gid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Groups:"); ok {
			for _, f := range strings.Fields(rest) {
				if f == strconv.Itoa(gid) {
					return true
				}
			}
		}
	}
	return false
}

func (s *Server) handle(c *net.UnixConn) {
	reply := func(r Response) {
		c.SetWriteDeadline(time.Now().Add(requestTimeout))
		b, _ := json.Marshal(r)
		c.Write(append(b, '\n'))
	}
	cred, ok := s.allowed(c)
	if !ok {
		uid := -1
		if cred != nil {
			uid = int(cred.Uid)
		}
		s.log.Warn("control socket: refused a connection from another user", "uid", uid)
		reply(Response{Error: fmt.Sprintf("permission denied: uid %d may not control this host (uid %d)", uid, s.uid)})
		return
	}
	c.SetReadDeadline(time.Now().Add(requestTimeout))
	line, err := bufio.NewReader(io.LimitReader(c, maxRequestBytes)).ReadBytes('\n')
	if err != nil {
		reply(Response{Error: fmt.Sprintf("no request line (a JSON object ending in a newline, at most %d bytes): %v", maxRequestBytes, err), Instances: s.status()})
		return
	}
	req, err := parseRequest(line)
	if err != nil {
		reply(Response{Error: "malformed request: " + err.Error(), Instances: s.status()})
		return
	}
	switch req.Verb {
	case "logs":
		s.stream(c, req, reply)
		return
	case "reload":
		if s.reload == nil {
			reply(Response{Error: "this host cannot reload", Instances: s.status()})
			return
		}
		msg, err := s.reload()
		r := Response{OK: err == nil, Message: msg, Instances: s.status()}
		if err != nil {
			r.Error = err.Error()
		}
		reply(r)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), verbTimeout)
	defer cancel()
	if err := s.do(ctx, req); err != nil {
		s.log.Warn("control request failed", "verb", req.Verb, "target", req.Target, "error", err)
		reply(Response{Error: err.Error(), Instances: s.status()})
		return
	}
	r := Response{OK: true, Instances: s.status()}
	if req.Verb == "status" {
		r.Stages = s.h.Stages()
	}
	reply(r)
}

// status is the instances' status, never nil.
func (s *Server) status() []host.InstanceStatus {
	if st := s.h.Status(); st != nil {
		return st
	}
	return []host.InstanceStatus{}
}

// requestFields are a request's field names, exactly as written.
var requestFields = map[string]bool{"verb": true, "target": true, "worker": true, "count": true, "level": true, "grep": true, "output": true}

// parseRequest reads a request line strictly: one JSON object, each field
// one of requestFields, exactly so spelled and given once (the standard
// decoder would take "VERB" for "verb", and the last of two "verb"s).
func parseRequest(line []byte) (Request, error) {
	var req Request
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(line, &fields); err != nil {
		return req, err
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.Token() // {
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return req, err
		}
		key, _ := t.(string)
		if !requestFields[key] {
			return req, fmt.Errorf("unknown field %q (fields are lower case: verb, target, worker, count, level, grep, output)", key)
		}
		if seen[key] {
			return req, fmt.Errorf("field %q given twice", key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return req, err
		}
	}
	d := json.NewDecoder(bytes.NewReader(line))
	d.DisallowUnknownFields()
	err := d.Decode(&req)
	return req, err
}

// do carries out a verb. A verb over every instance of a block does them
// one at a time, so that the worker keeps running while it is restarted
// (a rolling restart).
func (s *Server) do(ctx context.Context, req Request) error {
	switch req.Verb {
	case "status":
		return nil
	case "scale":
		if req.Worker == "" || req.Count == nil {
			return errors.New("scale needs a worker and a count")
		}
		return s.h.Scale(req.Worker, *req.Count)
	case "restart", "stop", "start":
	default:
		return fmt.Errorf("unknown verb %q (want status, restart, stop, start, scale, reload or logs)", req.Verb)
	}
	ids, err := s.targets(req.Target)
	if err != nil {
		return err
	}
	act := map[string]func(host.WorkerID) error{"restart": s.h.Restart, "stop": s.h.StopInstance, "start": s.h.StartInstance}[req.Verb]
	var errs []error
	for _, id := range ids {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := act(id); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// tapBuffer is how many batches a logs stream may fall behind before it
// misses records.
const tapBuffer = 256

// stream answers logs: after the answer line, one line per record the
// host routes from now on that the request's filter selects, in its
// output, until the client closes the connection or the host is done. A
// client too slow to keep up misses records, and is told how many in a
// line of its own: {"missed": N} in JSON, "logtk-host: N records missed
// (this reader fell behind)" in text.
func (s *Server) stream(c *net.UnixConn, req Request, reply func(Response)) {
	var f logread.Filter
	if req.Worker != "" {
		if _, _, _, err := logread.ParseWorker(req.Worker); err != nil {
			reply(Response{Error: "worker " + err.Error(), Instances: s.status()})
			return
		}
		f.Worker = req.Worker
	}
	if req.Level != "" {
		l, ok := logread.Levels[strings.ToLower(req.Level)]
		if !ok {
			reply(Response{Error: fmt.Sprintf("level %q: want trace, debug, info, notice, warn, error or fatal", req.Level), Instances: s.status()})
			return
		}
		f.MinLevel = l
	}
	if req.Grep != "" {
		re, err := regexp.Compile(req.Grep)
		if err != nil {
			reply(Response{Error: "grep: " + err.Error(), Instances: s.status()})
			return
		}
		f.Grep = re
	}
	if req.Output != "" && req.Output != "text" && req.Output != "json" {
		reply(Response{Error: fmt.Sprintf("output %q: want text or json", req.Output), Instances: s.status()})
		return
	}
	batches, stop := s.h.Tap(tapBuffer)
	defer stop()
	reply(Response{OK: true, Instances: s.status()})
	gone := make(chan struct{})
	go func() { // the client closing its end is the end of the stream
		c.SetReadDeadline(time.Time{})
		io.Copy(io.Discard, c)
		close(gone)
	}()
	p, tp := &logread.Printer{JSON: req.Output == "json"}, &logread.Printer{}
	var out, text []byte
	var rec record.Record
	for {
		select {
		case <-gone:
			return
		case b, ok := <-batches:
			if !ok {
				return
			}
			out = out[:0]
			if b.Missed > 0 {
				if p.JSON {
					out = fmt.Appendf(out, "{\"missed\":%d}\n", b.Missed)
				} else {
					out = fmt.Appendf(out, "logtk-host: %d records missed (this reader fell behind)\n", b.Missed)
				}
			}
			entries.Each(b.Entries, func(e []byte) {
				rec.Parse(e)
				rendered := false
				if !f.Match(&rec, func() []byte {
					text, _ = tp.Append(text[:0], &rec)
					rendered = true
					return text
				}) {
					return
				}
				if rendered && !p.JSON {
					out = append(out, text...)
					return
				}
				out, _ = p.Append(out, &rec)
			})
			if len(out) == 0 {
				continue
			}
			c.SetWriteDeadline(time.Now().Add(requestTimeout))
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	}
}

// targets resolves "NAME" or "NAME#i" to instances.
func (s *Server) targets(target string) ([]host.WorkerID, error) {
	if target == "" {
		return nil, errors.New("no target: name a worker (NAME) or an instance (NAME#i)")
	}
	name, idx, one := strings.Cut(target, "#")
	var ids []host.WorkerID
	for _, st := range s.status() {
		if st.ID.Name != name {
			continue
		}
		if one && strconv.Itoa(st.ID.Index) != idx {
			continue
		}
		ids = append(ids, st.ID)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("no worker instance %s", target)
	}
	return ids, nil
}

// Do sends req to the host listening on path and returns its answer; a
// refused request is an error carrying the host's reason.
func Do(ctx context.Context, path string, req Request) (Response, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return Response{}, fmt.Errorf("no host is running with control socket %s (is logtk-host run started with this configuration?)", path)
		}
		return Response{}, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	b, _ := json.Marshal(req)
	_, werr := c.Write(append(b, '\n'))
	// A host that refuses the peer answers without reading the request:
	// its answer is read even when the write failed.
	line, err := bufio.NewReader(io.LimitReader(c, 64<<20)).ReadBytes('\n')
	if err != nil {
		return Response{}, fmt.Errorf("control socket %s: no answer: %w", path, errors.Join(werr, err))
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return Response{}, fmt.Errorf("control socket %s: malformed answer: %w", path, err)
	}
	if !resp.OK {
		return resp, errors.New(resp.Error)
	}
	return resp, nil
}

// Stream sends a logs request to the host listening on path and copies
// the records it streams to w, line by line, until ctx ends or the host
// is done.
func Stream(ctx context.Context, path string, req Request, w io.Writer) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("no host is running with control socket %s (is logtk-host run started with this configuration?)", path)
		}
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	b, _ := json.Marshal(req)
	_, werr := c.Write(append(b, '\n'))
	r := bufio.NewReaderSize(c, 1<<20)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("control socket %s: no answer: %w", path, errors.Join(werr, err))
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return fmt.Errorf("control socket %s: malformed answer: %w", path, err)
	}
	if !resp.OK {
		return errors.New(resp.Error)
	}
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			if _, werr := w.Write(line); werr != nil {
				return werr
			}
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}
