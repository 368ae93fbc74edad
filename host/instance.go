package host

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/capture"
	"github.com/logtk/logtk/internal/ipc"
	"github.com/logtk/logtk/internal/proc"
	"github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/shmring"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
)

// sendTimeout bounds a write to a worker's channel (welcome, messages).
const sendTimeout = 5 * time.Second

// maxBadFrames is how many consecutive bad frames a channel may carry before
// the host stops reading it as frames: the stream has lost its framing.
const maxBadFrames = 100

// instance supervises one worker instance across its incarnations.
type instance struct {
	h   *Host
	cfg *config.WorkerConfig
	id  WorkerID

	// emitMu makes sequence assignment and queueing one step, so records
	// reach the output in sequence order.
	emitMu sync.Mutex
	seq    uint64
	// slab holds stamped records back to back: one allocation per 64 KiB
	// of records instead of one per record. A record handed to the queue
	// is a capacity-limited slice of it and is never written again.
	slab []byte
	// pending holds stamped records not yet queued (at most BatchSize).
	pending [][]byte

	mu          sync.Mutex // guards the fields below
	proc        *proc.Process
	conn        *net.UnixConn
	incarnation uint32
	restarts    []time.Time
	gaveUp      bool // the crash-loop limit ended it
}

// incarnation state shared by the goroutines of one run.
type run struct {
	in          *instance
	pid         int64
	incarnation uint32
	writeMu     sync.Mutex
	conn        *net.UnixConn
	origin      []byte // the stamp fields common to this run's records

	// The shared-memory ring, read by readIPC only (nil without one, or
	// once abandoned as corrupt).
	ring     *shmring.Shared
	sockRecs uint64 // RECORD_AT frames taken from the socket
	// ringBlocked: the ring's next entry is a barrier for RECORD_AT frames
	// not yet read from the socket.
	ringBlocked bool
	// ringUnsettled counts the reads in a row that found the ring's
	// published position not (yet) a valid one.
	ringUnsettled int
}

// exitInfo is what one incarnation left behind.
type exitInfo struct {
	startErr error
	state    *os.ProcessState
	uptime   time.Duration
	stopped  bool            // the host asked it to stop
	crash    *capture.Report // the crash report it died in (panic and trace), if any
	pid      int64
}

// lastWordsWindow is how soon after a crash report ended by a quiet spell
// stderr must end (the worker die), with nothing written after the report,
// for the exit record to carry it: a runtime that printed its trace may
// take a moment to die (a core dump, exit handlers).
const lastWordsWindow = 5 * time.Second

func (in *instance) run() {
	defer in.h.instWG.Done()
	backoff := in.cfg.BackoffInitial
	for {
		if in.h.isStopping() {
			return
		}
		ex := in.runOnce()
		inc := in.incarnation

		restart, why := in.decide(ex)
		delay := time.Duration(0)
		if restart {
			if ex.uptime >= in.cfg.BackoffReset {
				backoff = in.cfg.BackoffInitial
			}
			delay = backoff
			backoff = min(backoff*2, in.cfg.BackoffMax)
			why = fmt.Sprintf("restarting in %s", delay)
		}
		in.emitExit(ex, inc, restart, why)
		if !restart {
			return
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-in.h.stopping:
			t.Stop()
			return
		}
		in.mu.Lock()
		in.incarnation++
		in.mu.Unlock()
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
		r.ring, ringF, err = shmring.Create("logtk-ring", cfg.RingBytes)
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
	in.mu.Lock()
	in.proc, in.conn = p, r.conn
	in.mu.Unlock()
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
	stopped := false
	select {
	case st = <-exited:
	case <-in.h.stopping:
		stopped = true
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
	r.closeRing()
	in.mu.Lock()
	in.proc, in.conn = nil, nil
	in.mu.Unlock()
	if crash == nil && lastWords != nil && !stopped && st != nil && !st.Success() {
		crash = lastWords // it was already a record; it is also how the worker died
	}
	return exitInfo{state: st, uptime: uptime, stopped: stopped, crash: crash, pid: r.pid}
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
	conn := in.conn
	in.mu.Unlock()
	if conn == nil {
		return fmt.Errorf("host: worker %s is not running", in.id)
	}
	if len(payload) > in.cfg.MaxFrameBytes {
		return fmt.Errorf("host: message of %d bytes exceeds the %d-byte frame limit", len(payload), in.cfg.MaxFrameBytes)
	}
	conn.SetWriteDeadline(time.Now().Add(sendTimeout))
	_, err := conn.Write(ipc.AppendFrame(nil, ipc.TypeHostMessage, payload))
	if err != nil {
		return fmt.Errorf("host: sending to %s: %w", in.id, err)
	}
	return nil
}

// emit stamps body (an encoded record without origin fields) and queues it.
func (r *run) emit(source int32, body []byte) {
	r.in.emitMu.Lock()
	r.stampLocked(source, body, false, time.Now().UnixNano())
	r.flushLocked()
	r.in.emitMu.Unlock()
}

// stampLocked copies body into the instance's slab, appends the host's
// fields and adds the result to the pending batch. With check it
// validates the copy first (and adds nothing if that fails): a record read
// from memory the worker can still write is checked only once it is out
// of the worker's reach. The caller holds emitMu and calls flushLocked
// before it lets go of it.
func (r *run) stampLocked(source int32, body []byte, check bool, received int64) error {
	in := r.in
	if r.origin == nil {
		r.origin = record.AppendStampOrigin(nil, in.id.Name, uint32(in.id.Index), r.pid, r.incarnation)
	}
	if need := len(body) + len(r.origin) + 32; cap(in.slab)-len(in.slab) < need {
		in.slab = make([]byte, 0, max(64<<10, need))
	}
	start := len(in.slab)
	rec := append(in.slab, body...)
	if check {
		if err := record.Validate(rec[start:]); err != nil {
			return err
		}
	}
	in.seq++
	rec = append(rec, r.origin...)
	rec = record.AppendStampArrival(rec, in.seq, source, received)
	in.slab = rec
	in.pending = append(in.pending, rec[start:len(rec):len(rec)])
	if len(in.pending) >= in.h.opts.BatchSize {
		r.flushLocked()
	}
	return nil
}

// flushLocked queues the pending records. The caller holds emitMu.
func (r *run) flushLocked() {
	in := r.in
	if len(in.pending) == 0 {
		return
	}
	in.h.enqueue(in.pending)
	in.pending = in.h.getBatch()
}

// hostRecord emits a record the host writes about the worker.
func (r *run) hostRecord(level int32, msg string, attrs ...slog.Attr) {
	b := record.AppendHead(nil, time.Now(), level, msg, "logtk.host")
	for _, a := range attrs {
		b = record.AppendAttr(b, a)
	}
	r.emit(record.SourceHost, b)
}

// messageRecord keeps a custom message nobody handles (Options.OnMessage
// is not set, as under logtk-host run) as a debug record of the worker:
// logger logtk.message, the payload as a string attribute when it is
// UTF-8, as bytes otherwise.
func (r *run) messageRecord(msg []byte) {
	b := record.AppendHead(nil, time.Now(), record.LevelDebug, fmt.Sprintf("custom message (%d bytes); nothing handles messages here", len(msg)), "logtk.message")
	if utf8.Valid(msg) {
		b = record.AppendAttr(b, slog.String("payload", string(msg)))
	} else {
		b = record.AppendAttr(b, slog.Any("payload", msg))
	}
	r.emit(record.SourceHost, b)
}

func (r *run) readIPC() {
	in := r.in
	rd := ipc.NewReader(r.conn, in.cfg.MaxFrameBytes)
	// The worker is gone (or its channel is): the ring's last records,
	// written after everything the socket carried, are read last.
	defer r.drainSettled(shmring.NoLimit, true)
	bad := 0
	helloSeen := false
	for {
		if !rd.FrameBuffered() {
			r.in.emitMu.Lock()
			r.flushLocked()
			r.in.emitMu.Unlock()
		}
		r.pollRing(rd)
		t, p, err := rd.Next()
		if r.ring != nil {
			r.ring.CancelSleep()
		}
		if err != nil {
			var fe *ipc.FrameError
			switch {
			case err == io.EOF:
				return
			case errors.As(err, &fe):
				r.hostRecord(record.LevelError, "worker sent a bad IPC frame: "+fe.Reason,
					slog.Int64("offset", fe.Offset), slog.String("frame_type", fe.Type.String()), slog.Uint64("declared_length", uint64(fe.Length)))
				if bad++; bad >= maxBadFrames {
					r.goodbye(fmt.Sprintf("%d consecutive bad frames; the channel has lost its framing", bad))
					r.hostRecord(record.LevelError, fmt.Sprintf("closed the IPC channel after %d consecutive bad frames; the worker's SDK falls back to stderr", bad))
					r.discard()
					return
				}
				continue
			case errors.Is(err, ipc.ErrTruncated):
				r.hostRecord(record.LevelError, "IPC channel ended inside a frame: "+err.Error())
				return
			case errors.Is(err, net.ErrClosed):
				return
			default:
				r.hostRecord(record.LevelError, "reading the IPC channel failed: "+err.Error())
				return
			}
		}
		switch t {
		case ipc.TypeHello:
			var hello logtkv1.Hello
			if err := proto.Unmarshal(p, &hello); err != nil {
				r.hostRecord(record.LevelError, "worker sent an undecodable hello: "+err.Error(), slog.Any("payload", append([]byte(nil), p...)))
				bad++
				continue
			}
			helloSeen = true
			if hello.ProtocolVersion != ipc.ProtocolVersion {
				reason := fmt.Sprintf("worker speaks IPC protocol %d, this host speaks %d", hello.ProtocolVersion, ipc.ProtocolVersion)
				r.goodbye(reason)
				r.hostRecord(record.LevelError, "refused the worker's IPC channel: "+reason, slog.String("sdk", hello.Sdk))
				r.discard()
				return
			}
			w, _ := proto.Marshal(&logtkv1.Welcome{
				ProtocolVersion: ipc.ProtocolVersion,
				MaxFrameBytes:   uint32(in.cfg.MaxFrameBytes),
				Worker:          in.id.Name,
				WorkerIndex:     uint32(in.id.Index),
				Incarnation:     r.incarnation,
			})
			r.write(ipc.TypeWelcome, w)
		case ipc.TypeRecord:
			if !helloSeen {
				helloSeen = true
				r.hostRecord(record.LevelWarn, "worker sent records without a hello frame; accepting them")
			}
			// Records read together are queued together: the batch goes
			// out before the reader could block (top of the loop).
			r.in.emitMu.Lock()
			err := r.stampLocked(record.SourceSDK, p, true, time.Now().UnixNano())
			r.in.emitMu.Unlock()
			if err != nil {
				r.hostRecord(record.LevelError, "worker sent a malformed record: "+err.Error(),
					slog.Any("payload", append([]byte(nil), p...)))
				bad++
				continue
			}
		case ipc.TypeRecordAt:
			if err := r.recordAt(p); err != nil {
				r.hostRecord(record.LevelError, "worker sent a malformed record: "+err.Error(),
					slog.Any("payload", append([]byte(nil), p...)))
				bad++
				continue
			}
		case ipc.TypeDoorbell:
			// The ring has records; the loop reads it next.
		case ipc.TypeMessage:
			r.in.emitMu.Lock()
			r.flushLocked() // the records before it, before a callback that may take its time
			r.in.emitMu.Unlock()
			msg := append([]byte(nil), p...)
			if fn := in.h.opts.OnMessage; fn != nil {
				fn(in.id, msg)
			} else {
				r.messageRecord(msg)
			}
		case ipc.TypeGoodbye:
			// The worker is closing its end; read on to EOF.
		default:
			r.hostRecord(record.LevelError, "worker sent an unknown IPC frame type "+t.String(), slog.Any("payload", append([]byte(nil), p...)))
			bad++
			continue
		}
		bad = 0
	}
}

func (r *run) write(t ipc.Type, payload []byte) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	r.conn.SetWriteDeadline(time.Now().Add(sendTimeout))
	_, err := r.conn.Write(ipc.AppendFrame(nil, t, payload))
	return err
}

func (r *run) goodbye(reason string) {
	g, _ := proto.Marshal(&logtkv1.Goodbye{Reason: reason})
	r.write(ipc.TypeHostGoodbye, g)
}

// discard reads the channel to its end without interpreting it, so a worker
// blocked writing to it is not stuck (its SDK switches to stderr on the
// goodbye).
func (r *run) discard() {
	r.conn.CloseWrite()
	io.Copy(io.Discard, r.conn)
}

// readLines turns a stdout pipe into records.
func (r *run) readLines(f *os.File, source int32) {
	lv := lineLevel{def: record.LevelInfo}
	capture.Lines(f, r.in.cfg.MaxLineBytes, func(line []byte, part int, last bool) {
		r.lineRecord(source, line, part, last, lv.of(line, part))
	})
}

// readStderr is readLines for stderr (lines at the worker's StderrLevel),
// with crash reports (see capture.Splitter): a report that ends while the
// worker runs is a stderr record of its own at error level, its summary
// for message and its text in the "panic" attribute; a report that
// outgrows 4*MaxLineBytes is emitted in parts as it grows. readStderr
// returns the report stderr ended in, for the exit record, and the one
// that ended by a quiet spell less than lastWordsWindow before stderr
// ended, if nothing but blank lines came after it (lastWords).
func (r *run) readStderr(f *os.File) (crash, lastWords *capture.Report) {
	lv := lineLevel{def: r.in.cfg.StderrLevelNumber()}
	var quietAt time.Time
	sp := &capture.Splitter{
		Limit: 4 * r.in.cfg.MaxLineBytes,
		Line: func(line []byte, part int, last bool) {
			r.lineRecord(record.SourceStderr, line, part, last, lv.of(line, part))
		},
		Report: func(rep capture.Report) {
			if rep.Ended == capture.EndQuiet && !rep.More {
				quietAt = time.Now()
			}
			r.reportRecord(rep)
		},
	}
	if rep, open, _ := sp.Read(f, r.in.cfg.MaxLineBytes); open {
		return &rep, nil
	}
	if rep, ok := sp.LastWords(); ok && time.Since(quietAt) < lastWordsWindow {
		return nil, &rep
	}
	return nil, nil
}

// reportRecord emits a crash report that ended while the worker ran, or a
// part of one that outgrew its limit.
func (r *run) reportRecord(rep capture.Report) {
	if rep.More {
		r.hostRecord(record.LevelError, fmt.Sprintf("crash report, part %d (continues)", rep.Part),
			slog.String("panic", rep.Text))
		return
	}
	b := record.AppendHead(nil, time.Now(), record.LevelError, rep.Summary, "")
	b = record.AppendAttr(b, slog.String("panic", rep.Text))
	r.emit(record.SourceStderr, b)
}

// lineLevel gives the pieces of a line the level its first piece names
// (capture.LevelPrefix), or def.
type lineLevel struct {
	def, cur int32
}

func (l *lineLevel) of(line []byte, part int) int32 {
	if part == 0 {
		l.cur = l.def
		if lv, ok := capture.LevelPrefix(line); ok {
			l.cur = record.LevelFromSlog(lv)
		}
	}
	return l.cur
}

// lineRecord emits a line (or a piece of one) at level, unless it is a
// JSON line with a level of its own.
func (r *run) lineRecord(source int32, line []byte, part int, last bool, level int32) {
	if part == 0 && last {
		if jr, ok := capture.ParseJSONLine(line); ok {
			t := jr.Time
			if t.IsZero() {
				t = time.Now()
			}
			if jr.HasLvl {
				level = record.LevelFromSlog(jr.Level)
			}
			b := record.AppendHead(nil, t, level, jr.Message, jr.Logger)
			for _, a := range jr.Attrs {
				b = record.AppendAttr(b, a)
			}
			r.emit(source, b)
			return
		}
	}
	text := string(line)
	valid := utf8.ValidString(text)
	if !valid {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	b := record.AppendHead(nil, time.Now(), level, text, "")
	if !valid {
		// The message had to be repaired; the exact bytes travel along.
		b = record.AppendAttr(b, slog.Any("logtk.raw_line", line))
	}
	if part > 0 || !last {
		b = record.AppendAttr(b, slog.Int("logtk.line_part", part))
		b = record.AppendAttr(b, slog.Bool("logtk.line_continues", !last))
	}
	r.emit(source, b)
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
