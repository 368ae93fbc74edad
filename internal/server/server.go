package server

import (
	"bufio"
	"container/list"
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/logtk/logtk/internal/entries"
	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/wire"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
	"github.com/logtk/logtk/record"
)

// Options configure a Server. Zero values take the documented defaults.
type Options struct {
	// Tokens are the accepted secrets. Required: a server without tokens
	// refuses everyone.
	Tokens [][]byte
	Store  *Store
	// MaxFrameBytes is the largest frame payload accepted. Default 4 MiB.
	MaxFrameBytes int
	// MaxInFlight is announced to clients, which keep at most that many
	// batches unacknowledged. Default 32.
	MaxInFlight int
	// Heartbeat is the ping interval; a peer silent for three is dead.
	// Default 5s.
	Heartbeat time.Duration
	// AuthTimeout bounds the time from accept to a complete AUTH frame.
	// Default 5s.
	AuthTimeout time.Duration
	// MaxConns bounds authenticated connections: past it a client is
	// refused with 4007 (at once when the limit is reached as it
	// connects). Connections still authenticating do not count. Default
	// 4096.
	MaxConns int
	// MaxUnauthenticated bounds connections that have not authenticated
	// yet. A new connection beyond it evicts the oldest of them (CLOSE
	// 4007): so a client that authenticates within the time it takes
	// MaxUnauthenticated newer connections to arrive gets in, however many
	// idle sockets are open. Default 64.
	MaxUnauthenticated int
	Logger             hclog.Logger
	// OnStored, when set, receives each batch once it is written to the
	// store, usually before its sync (a duplicate is not passed again; a
	// batch whose sync fails is resent and passed again), as it was
	// received, with the stamp the store appended to each of its records
	// (nil for formats other than logtk.v1.Record). It runs on the
	// connection's goroutine: while it runs, that sender waits.
	OnStored func(application, sender, format string, batch, stamp []byte)
}

// Stats are counters since the server started. Rejected counts
// connections refused at authentication (including those evicted by newer
// unauthenticated ones, or refused for max_connections) or closed for
// exceeding max_in_flight.
type Stats struct {
	Batches, Records, Duplicates, Rejected, Gaps atomic.Int64
}

// Conns returns the connections open now, authenticated or not.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Server accepts wire protocol v1 connections.
type Server struct {
	opts  Options
	log   hclog.Logger
	Stats Stats

	mu      sync.Mutex
	conns   map[*session]struct{}
	senders map[string]*session // application/sender -> live session
	lns     []net.Listener
	closing bool
	wg      sync.WaitGroup
	seqs    sync.Map // application/sender/worker#index -> *atomic.Uint64
	// accepted numbers connections in the order they were accepted: of
	// two sessions of one sender, the later connection wins (takeOver).
	accepted atomic.Uint64
	// unauthenticated holds the sessions that have not authenticated yet,
	// oldest first: at most MaxUnauthenticated.
	unauthenticated list.List
	// connSema holds a slot per authenticated session: MaxConns.
	connSema chan struct{}
	// preAuthLog keeps warnings about peers that never authenticated to
	// one per window: a flood of them must not flood the log.
	preAuthLog QuietLog
}

// QuietLog lets one warning through per quietWindow and logs the rest
// at debug level, counting them into the next warning: what peers do
// wrong, so that a flood of it does not flood the log. The zero value is
// ready.
type QuietLog struct {
	mu      sync.Mutex
	last    time.Time
	dropped int
}

const quietWindow = 10 * time.Second

// Warn logs msg with args, or at debug level if a warning went out in
// the last quietWindow.
func (q *QuietLog) Warn(l hclog.Logger, msg string, args ...any) {
	q.mu.Lock()
	now := time.Now()
	if now.Sub(q.last) < quietWindow {
		q.dropped++
		q.mu.Unlock()
		l.Debug(msg, args...)
		return
	}
	q.last = now
	n := q.dropped
	q.dropped = 0
	q.mu.Unlock()
	if n > 0 {
		args = append(args, "similar_since_last_warning", n)
	}
	l.Warn(msg, args...)
}

// New returns a Server; call Serve for each listener.
func New(opts Options) *Server {
	if opts.MaxFrameBytes == 0 {
		opts.MaxFrameBytes = wire.DefaultMaxFrameBytes
	}
	if opts.MaxInFlight == 0 {
		opts.MaxInFlight = wire.DefaultMaxInFlight
	}
	if opts.Heartbeat == 0 {
		opts.Heartbeat = wire.DefaultHeartbeat * time.Millisecond
	}
	if opts.AuthTimeout == 0 {
		opts.AuthTimeout = 5 * time.Second
	}
	if opts.MaxConns == 0 {
		opts.MaxConns = 4096
	}
	if opts.MaxUnauthenticated == 0 {
		opts.MaxUnauthenticated = 64
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	return &Server{opts: opts, log: opts.Logger, conns: map[*session]struct{}{}, senders: map[string]*session{},
		connSema: make(chan struct{}, opts.MaxConns)}
}

// Serve accepts connections on ln until Close. It returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return errors.New("server: closed")
	}
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTemporary) {
				delay = min(max(delay*2, 5*time.Millisecond), time.Second)
				time.Sleep(delay) // accept backoff, as net/http does
				continue
			}
			return err
		}
		delay = 0
		// Nothing is written here (a refusal included): a peer that does
		// not read must not hold up accepting.
		ss := &session{s: s, c: c, done: make(chan struct{}), order: s.accepted.Add(1)}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.conns[ss] = struct{}{}
		s.awaitAuth(ss)
		s.wg.Add(1)
		s.mu.Unlock()
		go ss.run()
	}
}

var errTemporary = errors.New("temporary")

// awaitAuth counts ss among the unauthenticated sessions (with s.mu held,
// before its goroutine starts) and gives it AuthTimeout to authenticate.
// When they are then more than MaxUnauthenticated, the oldest is
// dismissed to make room. Evicting the oldest, rather than refusing the
// newest, means that idle sockets cannot keep a client out by being held
// open: a peer would have to open MaxUnauthenticated connections in the
// time the client takes to authenticate.
func (s *Server) awaitAuth(ss *session) {
	if s.unauthenticated.Len() >= s.opts.MaxUnauthenticated {
		oldest := s.unauthenticated.Front().Value.(*session)
		s.dismiss(oldest, wire.CloseTooManyConns, fmt.Sprintf(
			"too many unauthenticated connections (max_unauthenticated = %d): this one, the oldest, made room for a newer one", s.opts.MaxUnauthenticated))
		s.preAuthLog.Warn(oldest.log, "unauthenticated connection evicted by a newer one", "limit", s.opts.MaxUnauthenticated)
	}
	// Here, not in the session's goroutine: a dismissal's deadline
	// (under s.mu too) must not be overwritten by this one.
	ss.c.SetReadDeadline(time.Now().Add(s.opts.AuthTimeout))
	ss.pending = s.unauthenticated.PushBack(ss)
	ss.log = s.log.With("remote", ss.c.RemoteAddr().String())
}

// dismiss ends an unauthenticated session (with s.mu held) without writing
// to it here, so that a peer that does not read cannot stall the caller:
// the session leaves the unauthenticated ones, its read is interrupted,
// and its own goroutine sends CLOSE with code and reason.
func (s *Server) dismiss(ss *session, code uint32, reason string) {
	s.unauthenticated.Remove(ss.pending)
	ss.pending = nil
	ss.dismissal = &closeReason{code, reason}
	ss.c.SetReadDeadline(time.Now())
}

// closeReason is a CLOSE to send.
type closeReason struct {
	code   uint32
	reason string
}

// Close stops accepting, tells every client the server is shutting down,
// and waits for their sessions to end (each finishes the batch it is
// writing) or for ctx.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for _, ln := range s.lns {
		ln.Close()
	}
	for ss := range s.conns {
		if ss.pending != nil {
			s.dismiss(ss, wire.CloseShutdown, "server shutting down")
		} else {
			ss.shutdown(wire.CloseShutdown, "server shutting down")
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for ss := range s.conns {
			ss.c.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

func closeFrame(code uint32, reason string) []byte {
	p, _ := proto.Marshal(&logtkv1.Close{Code: code, Reason: reason})
	return wire.AppendFrame(nil, wire.TypeClose, p)
}

type session struct {
	s     *Server
	c     net.Conn
	done  chan struct{}
	order uint64 // when its connection was accepted, among the server's

	wmu sync.Mutex
	// w buffers what the session sends once authenticated (nil before:
	// an unauthenticated peer gets no buffers, and its CLOSE is written
	// straight to c).
	w        *bufio.Writer
	lastSend atomic.Int64
	closeMu  sync.Mutex
	closed   bool

	// Under Server.mu: pending is the session's place among the
	// unauthenticated ones (nil once it leaves them), dismissal why it was
	// dismissed from there. admitted: it holds a slot of connSema (set
	// and read by the session's goroutine only).
	pending   *list.Element
	dismissal *closeReason
	admitted  bool

	// stamp is what the store appends to each record of a
	// logtk.v1.Record session (nil for other formats).
	stamp []byte

	app, sender, format string
	log                 hclog.Logger
	unacked             atomic.Int64 // batches read and not yet acknowledged

	// seqs caches this session's entries of Server.seqs by worker name
	// and index, so that following a record's sequence costs a map lookup
	// without building its key.
	seqs map[string]map[uint32]*atomic.Uint64
	recs []recSeq // the last batch's records' seqs (readSeqs)
}

func (ss *session) run() {
	s := ss.s
	defer func() {
		ss.c.Close()
		s.mu.Lock()
		delete(s.conns, ss)
		if ss.pending != nil {
			s.unauthenticated.Remove(ss.pending)
			ss.pending = nil
		}
		if ss.sender != "" && s.senders[ss.app+"/"+ss.sender] == ss {
			delete(s.senders, ss.app+"/"+ss.sender)
		}
		s.mu.Unlock()
		close(ss.done)
		if ss.admitted {
			<-s.connSema
		}
		s.wg.Done()
	}()

	// Authentication: a complete AUTH frame within AuthTimeout (set by
	// awaitAuth; it also bounds a TLS handshake, even one a refusal's
	// CLOSE sets off).
	if len(s.connSema) == cap(s.connSema) {
		s.Stats.Rejected.Add(1)
		ss.reject(wire.CloseTooManyConns, fmt.Sprintf("too many connections (max_connections = %d)", s.opts.MaxConns))
		return
	}
	auth := ss.readAuth()
	if auth == nil {
		s.Stats.Rejected.Add(1)
		return
	}
	if !s.tokenOK(auth.Token) {
		s.Stats.Rejected.Add(1)
		ss.reject(wire.CloseAuthFailed, "authentication failed")
		return
	}
	if auth.ProtocolVersion != wire.ProtocolVersion {
		s.Stats.Rejected.Add(1)
		ss.reject(wire.CloseVersion, fmt.Sprintf("protocol version %d not supported; this server speaks %d", auth.ProtocolVersion, wire.ProtocolVersion))
		return
	}
	if !wire.ValidName(auth.Sender) || !wire.ValidName(auth.Application) {
		s.Stats.Rejected.Add(1)
		ss.reject(wire.CloseBadIdentity, fmt.Sprintf("sender %q / application %q: names are 1-128 of [A-Za-z0-9._-]", auth.Sender, auth.Application))
		return
	}
	if !wire.ValidHostname(auth.Hostname) {
		s.Stats.Rejected.Add(1)
		ss.reject(wire.CloseBadIdentity, fmt.Sprintf("hostname %q: a hostname is 1-253 of [A-Za-z0-9._-], or none", auth.Hostname))
		return
	}
	if !ss.admit() {
		s.Stats.Rejected.Add(1)
		return
	}
	ss.app, ss.sender, ss.format = auth.Application, auth.Sender, auth.Format
	if ss.format == "logtk.v1.Record" {
		ss.stamp = irecord.AppendServerStamp(nil, auth.Sender, auth.Hostname, auth.Application)
	}
	ss.log = ss.log.With("application", ss.app, "sender", ss.sender)
	if !ss.takeOver() {
		return
	}
	// Authenticated: the session gets its buffers.
	ss.wmu.Lock()
	ss.w = bufio.NewWriterSize(ss.c, 16<<10)
	ss.wmu.Unlock()
	r := wire.NewReader(ss.c, s.opts.MaxFrameBytes)
	r.RefuseOversized()
	welcome, _ := proto.Marshal(&logtkv1.ServerWelcome{
		ProtocolVersion: wire.ProtocolVersion,
		MaxFrameBytes:   uint32(s.opts.MaxFrameBytes),
		MaxInFlight:     uint32(s.opts.MaxInFlight),
		HeartbeatMillis: uint32(s.opts.Heartbeat / time.Millisecond),
		LastBatchId:     s.opts.Store.Resume(ss.app, ss.sender),
		Held:            heldOf(s.opts.Store.Held(ss.app, ss.sender)),
	})
	if err := ss.send(wire.AppendFrame(nil, wire.TypeWelcome, welcome), true); err != nil {
		ss.fail(err, "sending WELCOME")
		return
	}
	ss.log.Info("client connected", "format", ss.format, "hostname", auth.Hostname)
	stopBeat := ss.heartbeat()
	defer stopBeat()

	// Stored batches are made durable and acknowledged by a committer
	// goroutine while this one reads and stores the next: batches that
	// arrive during a sync are covered by the next one.
	acks := make(chan pendingAck, maxPendingAcks)
	committed := make(chan struct{})
	go func() { defer close(committed); ss.committer(acks) }()
	defer func() { close(acks); <-committed }()
	for {
		ss.c.SetReadDeadline(time.Now().Add(3 * s.opts.Heartbeat))
		t, p, err := r.Next()
		if err != nil {
			ss.fail(err, "reading")
			return
		}
		switch t {
		case wire.TypeData:
			id, batch, n, err := wire.ParseData(p)
			if err != nil {
				ss.reject(wire.CloseMalformed, err.Error())
				return
			}
			if id == 0 {
				// 0 is WELCOME's last_batch_id for "nothing stored": a
				// batch 0 would be taken for a duplicate, acknowledged
				// and never stored.
				ss.reject(wire.CloseMalformed, "batch id 0 is not allowed: batch ids start at 1 (a last_batch_id of 0 means nothing is stored)")
				return
			}
			if ss.unacked.Add(1) > int64(s.opts.MaxInFlight) {
				s.Stats.Rejected.Add(1)
				ss.reject(wire.CloseTooManyInFlight, fmt.Sprintf("more than max_in_flight = %d batches unacknowledged", s.opts.MaxInFlight))
				return
			}
			var held []WorkerSeq
			if ss.format == "logtk.v1.Record" {
				held = ss.readSeqs(batch)
			}
			t, dup, err := s.opts.Store.AppendHeld(ss.app, ss.sender, ss.format, id, batch, ss.stamp, held)
			if errors.Is(err, ErrTooManyOpen) {
				ss.reject(wire.CloseTooManyApplications, err.Error()+"; try again later")
				return
			}
			if err != nil {
				ss.log.Error("storing a batch failed; closing so the client retries", "batch", id, "error", err)
				ss.reject(wire.CloseStorage, "storage failed")
				return
			}
			if dup {
				s.Stats.Duplicates.Add(1)
			} else {
				s.Stats.Batches.Add(1)
				s.Stats.Records.Add(int64(n))
				if ss.format == "logtk.v1.Record" {
					ss.checkGaps()
				}
				if s.opts.OnStored != nil {
					s.opts.OnStored(ss.app, ss.sender, ss.format, batch, ss.stamp)
				}
			}
			// While more batches are waiting to be read, their syncs and
			// acks wait too: a burst of batches costs one sync (shared
			// with other connections writing the same files) and one
			// write of acks.
			acks <- pendingAck{id, t}
		case wire.TypePing:
			nonce, err := wire.ParsePing(p)
			if err != nil {
				ss.reject(wire.CloseMalformed, err.Error())
				return
			}
			if err := ss.send(wire.AppendPing(nil, wire.TypePong, nonce), true); err != nil {
				ss.fail(err, "answering PING")
				return
			}
		case wire.TypePong:
		case wire.TypeClose:
			var c logtkv1.Close
			proto.Unmarshal(p, &c)
			ss.log.Info("client closed the connection", "code", c.Code, "reason", c.Reason)
			return
		default:
			ss.reject(wire.CloseMalformed, fmt.Sprintf("unexpected %s frame from a client", t))
			return
		}
	}
}

// readAuth reads the first frame, which must be an AUTH, straight from the
// connection: nothing is buffered but the frame itself, and a frame that
// declares more than wire.MaxAuthBytes (or max_frame_bytes, if smaller) is
// refused with 4003 from its length prefix, before any more is read. So a
// peer that has not authenticated holds at most that much of the server's
// memory, and only while it is connected. It returns nil once the session
// is refused (or the peer has gone).
func (ss *session) readAuth() *logtkv1.Auth {
	limit := min(wire.MaxAuthBytes, ss.s.opts.MaxFrameBytes)
	var hdr [4]byte
	if err := readFirstFrame(ss.c, hdr[:], false); err != nil {
		ss.authReadFailed(err)
		return nil
	}
	switch length := binary.LittleEndian.Uint32(hdr[:]); {
	case length == 0:
		ss.reject(wire.CloseMalformed, "zero-length frame (a frame has at least its type byte)")
		return nil
	case int64(length)-1 > int64(limit):
		ss.reject(wire.CloseFrameTooLarge, fmt.Sprintf("the first frame declares a %d-byte payload; before authentication an AUTH of at most %d bytes is read", length-1, limit))
		return nil
	}
	frame := make([]byte, binary.LittleEndian.Uint32(hdr[:])) // type and payload
	if err := readFirstFrame(ss.c, frame[:1], true); err != nil {
		ss.authReadFailed(err)
		return nil
	}
	if t := wire.Type(frame[0]); t != wire.TypeAuth {
		ss.reject(wire.CloseAuthFailed, fmt.Sprintf("first frame is %s, not AUTH", t))
		return nil
	}
	if err := readFirstFrame(ss.c, frame[1:], true); err != nil {
		ss.authReadFailed(err)
		return nil
	}
	auth := new(logtkv1.Auth)
	if err := proto.Unmarshal(frame[1:], auth); err != nil {
		ss.reject(wire.CloseMalformed, "AUTH does not decode: "+err.Error())
		return nil
	}
	return auth
}

// authReadFailed ends a session whose AUTH could not be read: with the
// CLOSE it was dismissed with, if it was (its read was interrupted for
// it), else as err says.
func (ss *session) authReadFailed(err error) {
	ss.s.mu.Lock()
	d := ss.dismissal
	ss.s.mu.Unlock()
	if d != nil {
		ss.reject(d.code, d.reason)
		return
	}
	ss.fail(err, "before authenticating")
}

// admit moves an authenticated session from the unauthenticated ones to
// the connections max_connections counts. It reports false, having sent
// CLOSE, when the session was dismissed meanwhile or max_connections is
// reached.
func (ss *session) admit() bool {
	s := ss.s
	s.mu.Lock()
	d := ss.dismissal
	if ss.pending != nil {
		s.unauthenticated.Remove(ss.pending)
		ss.pending = nil
	}
	s.mu.Unlock()
	if d != nil {
		ss.reject(d.code, d.reason)
		return false
	}
	select {
	case s.connSema <- struct{}{}:
		ss.admitted = true
		return true
	default:
		ss.reject(wire.CloseTooManyConns, fmt.Sprintf("too many connections (max_connections = %d)", s.opts.MaxConns))
		return false
	}
}

// readFirstFrame reads len(b) bytes of the first frame; a stream that ends
// inside the frame (started: some of it was read before) is reported as
// wire.ErrTruncated.
func readFirstFrame(c net.Conn, b []byte, started bool) error {
	_, err := io.ReadFull(c, b)
	if errors.Is(err, io.ErrUnexpectedEOF) || started && errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: the connection ended inside its first frame", wire.ErrTruncated)
	}
	return err
}

// maxPendingAcks bounds the batches a session stores ahead of their sync
// and acknowledgement.
const maxPendingAcks = 64

// pendingAck is a stored batch awaiting its sync and acknowledgement.
type pendingAck struct {
	id uint64
	t  Ticket
}

// committer makes the batches read from acks durable and acknowledges
// them, as many at a time as are waiting. After a storage failure (the
// connection is being closed) it only drains acks.
func (ss *session) committer(acks <-chan pendingAck) {
	var group []pendingAck
	acking := true
	for a := range acks {
		group = append(group[:0], a)
	more:
		for len(group) < maxPendingAcks {
			select {
			case b, ok := <-acks:
				if !ok {
					break more
				}
				group = append(group, b)
			default:
				break more
			}
		}
		if !ss.commit(group, &acking) {
			for range acks {
			}
			return
		}
	}
}

// commit waits until the pending batches are durable and, while acking,
// acknowledges them in one write. On a storage failure it closes the
// connection (the client resends what was not acknowledged) and returns
// false. A client that cannot be told (the write of an ACK failed: its
// host died) still has every batch it sent made durable and counted in
// what the sender's next WELCOME says is held: the batches are in the
// store, and a next host cut by a WELCOME that missed them would store
// them again.
func (ss *session) commit(pending []pendingAck, acking *bool) bool {
	for i, p := range pending {
		if err := ss.s.opts.Store.Commit(p.t); err != nil {
			ss.log.Error("syncing stored batches failed; closing so the client retries", "batch", p.id, "error", err)
			ss.reject(wire.CloseStorage, "storage failed")
			return false
		}
		ss.unacked.Add(-1) // before the ack: the client may send its next batch at once
		if !*acking {
			continue
		}
		if err := ss.send(wire.AppendAck(nil, p.id), i == len(pending)-1); err != nil {
			ss.fail(err, "acknowledging")
			*acking = false
		}
	}
	return true
}

// tokenOK compares the token with every configured one in constant time.
func (s *Server) tokenOK(token []byte) bool {
	ok := 0
	for _, t := range s.opts.Tokens {
		ok |= subtle.ConstantTimeCompare(token, t)
	}
	return ok == 1 && len(token) > 0
}

// takeOver makes this the sender's only session: an older one (a client
// that reconnected before the server noticed the old connection died) is
// closed and awaited, so batches of one sender are never stored
// concurrently out of order. Older is by connection, not by AUTH: a
// connection accepted before the current session's, whose AUTH the
// server reads only now (a host killed just after it connected, whose
// bytes were still in the socket), is refused, not let in to store
// batches after the newer session's WELCOME said what is held (its
// host is gone or will connect again; the newer one sends its records).
func (ss *session) takeOver() bool {
	s := ss.s
	key := ss.app + "/" + ss.sender
	for {
		s.mu.Lock()
		old := s.senders[key]
		if old == nil {
			s.senders[key] = ss
			s.mu.Unlock()
			return true
		}
		if old.order > ss.order {
			s.mu.Unlock()
			ss.reject(wire.CloseReplaced, "a newer connection of this sender has taken over")
			return false
		}
		s.mu.Unlock()
		old.shutdown(wire.CloseReplaced, "a newer connection of this sender took over")
		select {
		case <-old.done:
		case <-time.After(s.opts.AuthTimeout):
			ss.reject(wire.CloseReplaced, "the previous connection of this sender is still busy")
			return false
		}
	}
}

func (ss *session) send(frame []byte, flush bool) error {
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	ss.c.SetWriteDeadline(time.Now().Add(3 * ss.s.opts.Heartbeat))
	if _, err := ss.w.Write(frame); err != nil {
		return err
	}
	ss.lastSend.Store(time.Now().UnixNano())
	if flush {
		return ss.w.Flush()
	}
	return nil
}

func (ss *session) heartbeat() func() {
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(ss.s.opts.Heartbeat / 2)
		defer t.Stop()
		var nonce uint64
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if time.Since(time.Unix(0, ss.lastSend.Load())) >= ss.s.opts.Heartbeat {
					nonce++
					if ss.send(wire.AppendPing(nil, wire.TypePing, nonce), true) != nil {
						return
					}
				}
			}
		}
	}()
	return func() { close(stop) }
}

// reject sends CLOSE with a code and reason, logs it, and ends the session.
func (ss *session) reject(code uint32, reason string) {
	ss.warn("closing connection", "code", code, "reason", reason)
	ss.shutdown(code, reason)
}

// warn logs a warning about the session; about one that has not
// authenticated, at most one per quietWindow for the whole server.
func (ss *session) warn(msg string, args ...any) {
	if ss.app == "" {
		ss.s.preAuthLog.Warn(ss.log, msg+" (before authenticating)", args...)
		return
	}
	ss.log.Warn(msg, args...)
}

func (ss *session) shutdown(code uint32, reason string) {
	ss.closeMu.Lock()
	defer ss.closeMu.Unlock()
	if ss.closed {
		return
	}
	ss.closed = true
	ss.wmu.Lock()
	ss.c.SetWriteDeadline(time.Now().Add(time.Second))
	if ss.w != nil {
		ss.w.Write(closeFrame(code, reason))
		ss.w.Flush()
	} else {
		ss.c.Write(closeFrame(code, reason))
	}
	ss.wmu.Unlock()
	// Unblock the reader; the session goroutine closes the connection.
	ss.c.SetReadDeadline(time.Now())
}

func (ss *session) fail(err error, when string) {
	var ne net.Error
	var fe *wire.FrameError
	switch {
	case errors.As(err, &fe) && fe.Length > 0:
		ss.reject(wire.CloseFrameTooLarge, fe.Reason)
	case errors.As(err, &fe):
		ss.reject(wire.CloseMalformed, fe.Reason)
	case errors.Is(err, wire.ErrTruncated):
		ss.warn("connection ended inside a frame", "when", when)
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		ss.log.Debug("connection ended", "when", when)
	case errors.As(err, &ne) && ne.Timeout():
		ss.closeMu.Lock()
		closed := ss.closed
		ss.closeMu.Unlock()
		if !closed {
			ss.reject(wire.CloseTimeout, "no complete frame in time "+when)
		}
	default:
		ss.warn("connection failed", "when", when, "error", err)
	}
}

// lastSeq returns the counter of the last sequence number seen from a
// worker instance (shared by the sender's sessions, so a reconnect does
// not look like a gap).
func (ss *session) lastSeq(worker []byte, index uint32) *atomic.Uint64 {
	byIndex := ss.seqs[string(worker)]
	if c := byIndex[index]; c != nil {
		return c
	}
	if ss.seqs == nil {
		ss.seqs = map[string]map[uint32]*atomic.Uint64{}
	}
	if byIndex == nil {
		byIndex = map[uint32]*atomic.Uint64{}
		ss.seqs[string(worker)] = byIndex
	}
	key := fmt.Sprintf("%s/%s/%s#%d", ss.app, ss.sender, worker, index)
	val, _ := ss.s.seqs.LoadOrStore(key, new(atomic.Uint64))
	c := val.(*atomic.Uint64)
	byIndex[index] = c
	return c
}

// readSeqs reads the worker instance and seq of each record of a
// logtk.v1.Record batch into ss.recs (for checkGaps) and returns the
// batch's highest seq per instance (for the store's Held).
func (ss *session) readSeqs(batch []byte) []WorkerSeq {
	ss.recs = ss.recs[:0]
	var held []WorkerSeq
	var v record.Record
	entries.Each(batch, func(e []byte) {
		if !v.Parse(e) || v.Seq == 0 {
			return
		}
		ss.recs = append(ss.recs, recSeq{v.Worker, v.WorkerIndex, v.Seq})
		if len(v.Worker) == 0 {
			return // a host's own record: its seqs start again each run
		}
		i := slices.IndexFunc(held, func(w WorkerSeq) bool { return w.Index == v.WorkerIndex && w.Worker == string(v.Worker) })
		if i < 0 {
			held = append(held, WorkerSeq{Worker: string(v.Worker), Index: v.WorkerIndex, Seq: v.Seq})
		} else {
			held[i].Seq = max(held[i].Seq, v.Seq)
		}
	})
	return held
}

// recSeq is a record's worker instance and seq; worker points into the
// batch being stored.
type recSeq struct {
	worker []byte
	index  uint32
	seq    uint64
}

// heldOf is WELCOME's held.
func heldOf(held []WorkerSeq) []*logtkv1.WorkerSeq {
	out := make([]*logtkv1.WorkerSeq, len(held))
	for i, w := range held {
		out[i] = &logtkv1.WorkerSeq{Worker: w.Worker, WorkerIndex: w.Index, Seq: w.Seq}
	}
	return out
}

// checkGaps follows per-worker sequence numbers of the logtk.v1.Record
// batch readSeqs read last and logs a gap: records lost before the
// server. A sequence that starts again at 1 is a restarted host, not a
// gap.
func (ss *session) checkGaps() {
	for _, r := range ss.recs {
		prev := ss.lastSeq(r.worker, r.index).Swap(r.seq)
		if prev != 0 && r.seq != prev+1 && r.seq != 1 {
			ss.s.Stats.Gaps.Add(1)
			if r.seq > prev {
				ss.log.Error("gap in a worker's records", "worker", fmt.Sprintf("%s#%d", r.worker, r.index), "after_seq", prev, "seq", r.seq, "missing", r.seq-prev-1)
			} else {
				ss.log.Warn("a worker's records arrived out of order", "worker", fmt.Sprintf("%s#%d", r.worker, r.index), "after_seq", prev, "seq", r.seq)
			}
		}
	}
}
