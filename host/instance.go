package host

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/capture"
	"github.com/logtk/logtk/internal/ipc"
	"github.com/logtk/logtk/internal/proc"
	"github.com/logtk/logtk/internal/shmring"
	"github.com/logtk/logtk/record"
)

// instance supervises one worker instance across its incarnations.
type instance struct {
	h   *Host
	cfg *config.WorkerConfig
	id  WorkerID

	// emitMu makes sequence assignment and queueing one step, so records
	// reach the output in sequence order.
	emitMu sync.Mutex
	seq    uint64
	// records counts the instance's records this host process handed
	// to the queue (a dead host's, routed again, too), published at each
	// batch: status reads it without emitMu, which an emit blocked on a
	// full queue holds. Not seq: that goes on from the host before.
	records atomic.Uint64
	// slab holds stamped records back to back: one allocation per 64 KiB
	// of records instead of one per record. A record handed to the queue
	// is a capacity-limited slice of it and is never written again.
	slab []byte
	// pending holds stamped records not yet queued (at most BatchSize).
	pending [][]byte
	// stream is the instance's journal and rings with the durable
	// ingest (durable.go), nil without.
	stream *stream

	// ctl carries the operator's requests to the instance's goroutine
	// (control.go); gone is closed when that goroutine returns.
	ctl  chan ctlRequest
	gone chan struct{}
	// waiting are the requests answered once the next incarnation has
	// started (a restart returns then, so that restarting a block's
	// instances one after the other keeps it running), or it is known
	// that it will not. Only the instance's goroutine touches it, and
	// whoever launches the goroutine before it runs.
	waiting []chan error
	// alive and removed are guarded by the host's instMu: the goroutine
	// runs; Scale took the instance away (it ends at its next stop).
	alive, removed bool

	mu           sync.Mutex // guards the fields below
	proc         *proc.Process
	conn         *net.UnixConn
	incarnation  uint32
	restarts     []time.Time // within the restart window, for the crash-loop limit
	gaveUp       bool        // the crash-loop limit ended it
	state        InstanceState
	started      time.Time
	restartsMade int
	lastExit     string
	rate         float64 // records per second, sampled
}

// exitInfo is what one incarnation left behind.
type exitInfo struct {
	startErr error
	state    *os.ProcessState
	uptime   time.Duration
	stopped  bool            // the host asked it to stop
	crash    *capture.Report // the crash report it died in (panic and trace), if any
	pid      int64
	req      *ctlRequest // the operator's stop or restart that ended it, if any
}

// lastWordsWindow is how soon after a crash report ended by a quiet spell
// stderr must end (the worker die), with nothing written after the report,
// for the exit record to carry it: a runtime that printed its trace may
// take a moment to die (a core dump, exit handlers).
const lastWordsWindow = 5 * time.Second

func (in *instance) run() {
	defer in.h.instanceEnded(in)
	defer in.answer(errors.New("the host is stopping, or the instance was removed"))
	if in.h.state != nil && in.stream == nil {
		st := in.h.openStream(in.id)
		in.emitMu.Lock()
		if st != nil {
			in.stream = st
			in.seq = max(in.seq, st.lastSeq)
		} else {
			in.seq = max(in.seq, in.h.state.seqFloor[in.id])
		}
		in.emitMu.Unlock()
	}
	backoff := in.cfg.BackoffInitial
	for {
		if in.h.isStopping() {
			return
		}
		in.setState(StateRunning)
		ex := in.runOnce()
		inc := in.incarnation
		if ex.startErr != nil { // it never started
			in.answer(ex.startErr)
		}

		var restart bool
		var why string
		delay := time.Duration(0)
		switch {
		case ex.req != nil && ex.req.op == opRestart:
			restart, why = true, "restarting: the operator asked"
			backoff = in.cfg.BackoffInitial
		case ex.req != nil && ex.req.op == opReplace:
			restart, why = true, "restarting: its configuration was reloaded"
		case ex.req != nil:
			why = "stopped by the operator"
		default:
			restart, why = in.decide(ex)
			if restart {
				if ex.uptime >= in.cfg.BackoffReset {
					backoff = in.cfg.BackoffInitial
				}
				delay = backoff
				backoff = min(backoff*2, in.cfg.BackoffMax)
				why = fmt.Sprintf("restarting in %s", delay)
			}
		}
		// The state first: whoever sees the exit record, or the answer
		// to their request, sees the state it left.
		in.noteExit(ex)
		stopped := ex.req != nil && ex.req.op == opStop
		in.mu.Lock()
		switch {
		case stopped:
			in.state = StateStopped
		case restart:
			in.state = StateBackoff
		case in.gaveUp:
			in.state = StateGaveUp
		case !in.h.isStopping():
			in.state = StateExited
		}
		in.mu.Unlock()
		in.emitExit(ex, inc, restart, why)
		if ex.req != nil && ex.req.op == opReplace {
			in.setConfig(ex.req.cfg)
			backoff = in.cfg.BackoffInitial
		}
		switch {
		case ex.req != nil && (ex.req.op == opRestart || ex.req.op == opReplace):
			in.waiting = append(in.waiting, ex.req.done)
		case ex.req != nil:
			ex.req.done <- nil
		}
		switch {
		case stopped:
			if !in.waitStopped() {
				return
			}
			backoff = in.cfg.BackoffInitial
		case !restart:
			return
		case !in.waitBackoff(delay):
			return
		}
		in.mu.Lock()
		in.incarnation++
		in.restartsMade++
		in.mu.Unlock()
	}
}

// setConfig replaces the instance's configuration, between incarnations
// (only its goroutine calls it; others read cfg under mu).
// answer answers the requests waiting for the next start.
func (in *instance) answer(err error) {
	for _, c := range in.waiting {
		c <- err
	}
	in.waiting = nil
}

func (in *instance) setConfig(c *config.WorkerConfig) {
	in.mu.Lock()
	in.cfg = c
	in.mu.Unlock()
}

func (in *instance) setState(s InstanceState) {
	in.mu.Lock()
	in.state = s
	in.mu.Unlock()
}

// noteExit keeps how an incarnation ended, for Status.
func (in *instance) noteExit(ex exitInfo) {
	var what string
	switch {
	case ex.startErr != nil:
		what = "failed to start: " + ex.startErr.Error()
	case ex.state != nil:
		code, sig, signaled := proc.ExitDescription(ex.state)
		what = fmt.Sprintf("exited with status %d", code)
		if signaled {
			what = "killed by " + proc.SignalName(sig)
		}
	}
	if ex.crash != nil {
		what += ": " + ex.crash.Summary
	}
	in.mu.Lock()
	in.lastExit = what
	in.mu.Unlock()
}

// waitBackoff waits out a restart's delay, serving the operator meanwhile:
// start or restart cut it short, stop stops the instance. It returns false
// when the instance is done for good.
func (in *instance) waitBackoff(delay time.Duration) bool {
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return true
		case <-in.h.stopping:
			return false
		case req := <-in.ctl:
			switch req.op {
			case opStart, opRestart:
				in.waiting = append(in.waiting, req.done) // answered once it has started
				return true
			case opStop:
				in.setState(StateStopped)
				in.answer(errors.New("stopped before it started again"))
				req.done <- nil
				return in.waitStopped()
			case opReplace: // the next start takes it
				in.setConfig(req.cfg)
				req.done <- nil
			}
		}
	}
}

// waitStopped keeps a stopped instance stopped until the operator starts
// it (true) or the host stops, or Scale took it away (false).
func (in *instance) waitStopped() bool {
	in.h.instMu.Lock()
	removed := in.removed
	in.h.instMu.Unlock()
	if removed {
		return false
	}
	in.setState(StateStopped)
	in.answer(errors.New("stopped before it started again"))
	for {
		select {
		case <-in.h.stopping:
			return false
		case req := <-in.ctl:
			switch req.op {
			case opStart, opRestart:
				in.waiting = append(in.waiting, req.done) // answered once it has started
				return true
			case opStop:
				in.h.instMu.Lock()
				removed := in.removed
				in.h.instMu.Unlock()
				req.done <- nil
				if removed {
					return false
				}
			case opReplace: // stays stopped, with the new configuration
				in.setConfig(req.cfg)
				req.done <- nil
			}
		}
	}
}

// decide applies the restart policy and the crash-loop limit.
func (in *instance) decide(ex exitInfo) (bool, string) {
	if ex.stopped || in.h.isStopping() {
		return false, "host is stopping"
	}
	failed := ex.startErr != nil || !ex.state.Success()
	switch in.cfg.Restart {
	case config.RestartNever:
		return false, "restart policy is never"
	case config.RestartOnFailure:
		if !failed {
			return false, "exited successfully; restart policy is on-failure"
		}
	}
	now := time.Now()
	in.mu.Lock()
	defer in.mu.Unlock()
	kept := in.restarts[:0]
	for _, t := range in.restarts {
		if now.Sub(t) < in.cfg.RestartWindow {
			kept = append(kept, t)
		}
	}
	in.restarts = kept
	if len(in.restarts) >= in.cfg.MaxRestarts {
		in.gaveUp = true
		return false, fmt.Sprintf("crash loop: %d restarts within %s; giving up", len(in.restarts), in.cfg.RestartWindow)
	}
	in.restarts = append(in.restarts, now)
	return true, ""
}

func (in *instance) runOnce() exitInfo {
	cfg := in.cfg
	r := &run{in: in, incarnation: in.incarnation}

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return exitInfo{startErr: fmt.Errorf("socketpair: %w", err)}
	}
	hostF := os.NewFile(uintptr(fds[0]), "logtk-ipc-host")
	childF := os.NewFile(uintptr(fds[1]), "logtk-ipc-worker")
	nc, err := net.FileConn(hostF)
	hostF.Close()
	if err != nil {
		childF.Close()
		return exitInfo{startErr: fmt.Errorf("ipc channel: %w", err)}
	}
	r.conn = nc.(*net.UnixConn)
	outR, outW, err := os.Pipe()
	if err != nil {
		childF.Close()
		r.conn.Close()
		return exitInfo{startErr: err}
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		childF.Close()
		r.conn.Close()
		outR.Close()
		outW.Close()
		return exitInfo{startErr: err}
	}

	var ringF *os.File
	if cfg.RingBytes > 0 {
		if in.stream != nil {
			r.rf, ringF, err = in.stream.newRing(cfg.RingBytes)
			if err == nil {
				r.ring = r.rf.ring
			}
		} else {
			r.ring, ringF, err = shmring.Create("logtk-ring", cfg.RingBytes)
		}
		if err != nil {
			r.ring = nil
			r.hostRecord(record.LevelWarn, "no shared-memory ring for this worker; its records go through the socket: "+err.Error())
		}
	}
	cmd := exec.Command(cfg.Command, cfg.Args...)
	cmd.Dir = cfg.Dir
	cmd.Env = in.env(r.incarnation, ringF != nil)
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.ExtraFiles = []*os.File{childF} // fd 3
	if ringF != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, ringF) // fd 4
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if cfg.UID != nil || cfg.GID != nil {
		cred := &syscall.Credential{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid()), Groups: cfg.Groups}
		if cfg.UID != nil {
			cred.Uid = *cfg.UID
		}
		if cfg.GID != nil {
			cred.Gid = *cfg.GID
		}
		cred.NoSetGroups = os.Getuid() != 0
		cmd.SysProcAttr.Credential = cred
	}
	started := time.Now()
	p, err := proc.Start(cmd)
	childF.Close()
	outW.Close()
	errW.Close()
	if ringF != nil {
		ringF.Close() // the host keeps its mapping
	}
	if err != nil {
		r.closeRing()
		r.conn.Close()
		outR.Close()
		errR.Close()
		return exitInfo{startErr: err}
	}
	r.pid = int64(p.Pid())
	r.origin = nil // a record stamped before the start (a ring failure) had no pid
	if r.rf != nil {
		in.stream.started(r.rf, r.incarnation, r.pid)
	}
	in.mu.Lock()
	in.proc, in.conn, in.started = p, r.conn, started
	in.mu.Unlock()
	in.answer(nil)
	r.hostRecord(record.LevelInfo, "worker started", slog.String("command", cfg.Command))

	var readers sync.WaitGroup
	var crash, lastWords *capture.Report
	readers.Add(3)
	go func() { defer readers.Done(); r.readIPC() }()
	go func() { defer readers.Done(); r.readLines(outR, record.SourceStdout) }()
	go func() { defer readers.Done(); crash, lastWords = r.readStderr(errR) }()

	exited := make(chan *os.ProcessState, 1)
	go func() {
		st, err := p.Wait()
		if err != nil {
			in.h.log.Error("waiting for worker failed", "worker", in.id, "error", err)
		}
		exited <- st
	}()

	var st *os.ProcessState
	var req *ctlRequest
	stopped := false
	stop := func() {
		stopped = true
		in.setState(StateStopping)
		p.Signal(cfg.StopSignal)
		t := time.NewTimer(cfg.StopTimeout)
		select {
		case st = <-exited:
			t.Stop()
		case <-t.C:
			r.hostRecord(record.LevelWarn, fmt.Sprintf("worker did not stop within %s of %s; killing it", cfg.StopTimeout, proc.SignalName(cfg.StopSignal)))
			p.Kill()
			st = <-exited
		}
	}
wait:
	for {
		select {
		case st = <-exited:
			break wait
		case <-in.h.stopping:
			stop()
			break wait
		case rq := <-in.ctl:
			if rq.op == opStart {
				rq.done <- errors.New("already running")
				continue
			}
			req = &rq
			stop()
			break wait
		}
	}
	uptime := time.Since(started)

	// Drain: everything the worker wrote before it died is still in the
	// channel and pipes. Read it to the end; if a child of the worker holds
	// them open, stop waiting after DrainTimeout.
	drained := make(chan struct{})
	go func() { readers.Wait(); close(drained) }()
	t := time.NewTimer(cfg.DrainTimeout)
	select {
	case <-drained:
		t.Stop()
	case <-t.C:
		r.hostRecord(record.LevelWarn, fmt.Sprintf("output of the worker still open %s after it exited (a child process holds it?); closing it", cfg.DrainTimeout))
		r.conn.Close()
		outR.Close()
		errR.Close()
		<-drained
	}
	r.conn.Close()
	outR.Close()
	errR.Close()
	r.endRing()
	in.mu.Lock()
	in.proc, in.conn = nil, nil
	in.mu.Unlock()
	if crash == nil && lastWords != nil && !stopped && st != nil && !st.Success() {
		crash = lastWords // it was already a record; it is also how the worker died
	}
	return exitInfo{state: st, uptime: uptime, stopped: stopped, crash: crash, pid: r.pid, req: req}
}

func (in *instance) env(incarnation uint32, ring bool) []string {
	var env []string
	if !in.cfg.NoInheritEnv {
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, ipc.EnvFD+"=") && !strings.HasPrefix(kv, ipc.EnvRingFD+"=") {
				env = append(env, kv)
			}
		}
	}
	env = append(env, sortedEnv(in.cfg.Env)...)
	if ring {
		env = append(env, ipc.EnvRingFD+"=4")
	}
	return append(env,
		ipc.EnvFD+"=3",
		ipc.EnvWorker+"="+in.id.Name,
		ipc.EnvIndex+"="+strconv.Itoa(in.id.Index),
		ipc.EnvIncarnation+"="+strconv.FormatUint(uint64(incarnation), 10),
	)
}

// emitExit writes the one record that describes how an incarnation ended.
func (in *instance) emitExit(ex exitInfo, inc uint32, restart bool, decision string) {
	r := &run{in: in, pid: ex.pid, incarnation: inc}
	var attrs []slog.Attr
	level := int32(record.LevelError)
	var msg string
	switch {
	case ex.startErr != nil:
		msg = fmt.Sprintf("worker failed to start: %v", ex.startErr)
		attrs = append(attrs, slog.String("error", ex.startErr.Error()))
	default:
		code, sig, signaled := proc.ExitDescription(ex.state)
		if signaled {
			msg = fmt.Sprintf("worker killed by %s", proc.SignalName(sig))
			attrs = append(attrs, slog.String("signal", proc.SignalName(sig)))
		} else {
			msg = fmt.Sprintf("worker exited with status %d", code)
			attrs = append(attrs, slog.Int("exit_code", code))
		}
		if ex.stopped && ex.crash == nil {
			level = record.LevelInfo
			msg = "worker stopped: " + strings.TrimPrefix(msg, "worker ")
		} else if code == 0 && !signaled && ex.crash == nil {
			level = record.LevelInfo
		}
		attrs = append(attrs, slog.Duration("uptime", ex.uptime.Round(time.Millisecond)))
	}
	if ex.crash != nil {
		msg += ": " + ex.crash.Summary
		attrs = append(attrs, slog.String("panic", ex.crash.Text))
	}
	attrs = append(attrs, slog.Bool("restart", restart))
	if decision != "" {
		msg += "; " + decision
		attrs = append(attrs, slog.String("decision", decision))
	}
	if strings.HasPrefix(decision, "crash loop") {
		level = record.LevelFatal
	}
	r.hostRecord(level, msg, attrs...)
}

// kill SIGKILLs the instance's running process, if any.
func (in *instance) kill() {
	in.mu.Lock()
	p := in.proc
	in.mu.Unlock()
	if p != nil {
		p.Kill()
	}
}

func (in *instance) send(payload []byte) error {
	in.mu.Lock()
	conn, maxFrame := in.conn, in.cfg.MaxFrameBytes
	in.mu.Unlock()
	if conn == nil {
		return fmt.Errorf("host: worker %s is not running", in.id)
	}
	if len(payload) > maxFrame {
		return fmt.Errorf("host: message of %d bytes exceeds the %d-byte frame limit", len(payload), maxFrame)
	}
	conn.SetWriteDeadline(time.Now().Add(sendTimeout))
	_, err := conn.Write(ipc.AppendFrame(nil, ipc.TypeHostMessage, payload))
	if err != nil {
		return fmt.Errorf("host: sending to %s: %w", in.id, err)
	}
	return nil
}

// sortedEnv renders env as sorted KEY=value pairs.
func sortedEnv(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
