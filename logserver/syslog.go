package logserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/internal/syslog"
	"github.com/logtk/logtk/internal/wire"
)

// The syslog listeners (docs/syslog.md) store each message as a
// logtk.v1.Record in the same store as the wire protocol, under the
// sender "syslog-<peer address>". syslog has no acknowledgements: a
// message is stored once the server has read it, and what a client sent
// just before the server died may be lost, as with any syslog server.
//
// Messages that arrive together (what one read brought, up to
// syslogBatch) are stored as one batch, one sync for all.

const (
	syslogBatch   = 512              // messages stored together at most
	syslogIdle    = 10 * time.Minute // a TCP client silent this long is closed
	syslogUDPWait = 20 * time.Millisecond
)

// syslogIDs numbers the batches of every syslog sender, increasing
// across restarts (from the clock), as the store's exactly-once wants.
var syslogIDs atomic.Uint64

func init() { syslogIDs.Store(uint64(time.Now().UnixNano())) }

type syslogListeners struct {
	mu     sync.Mutex
	tcp    net.Listener
	tcpRaw net.Listener // tcp under its TLS, for its accept deadline
	// drainBy: once closing, the Unix nanoseconds until which the
	// connections (and the accept queue) are still read.
	drainBy atomic.Int64
	udp     net.PacketConn
	conns   map[net.Conn]bool
	wg      sync.WaitGroup
	closed  bool
	Stats   SyslogStats
	tcpAddr net.Addr
	udpAddr net.Addr
	stored  chan struct{} // a token after each store, for tests to wait on
}

// SyslogStats counts what the syslog listeners received. Messages is
// every message stored: parsed, or Unparsed (stored raw with a
// syslog_error attribute), or Cut (longer than max_message_bytes, stored
// cut). Skipped ones (octet-counted, too long) are not stored.
type SyslogStats struct {
	Messages atomic.Int64
	Unparsed atomic.Int64
	Cut      atomic.Int64
	Skipped  atomic.Int64
	// Refused counts TCP connections closed at once for max_connections.
	Refused atomic.Int64
}

// ServeSyslog serves the syslog block's listeners (tcp and udp may be
// nil) until Shutdown; it returns at once. The TCP listener is made TLS
// when the block says so.
func (s *Server) ServeSyslog(tcp net.Listener, udp net.PacketConn) error {
	sl := s.cfg.Syslog
	if sl == nil {
		return errors.New("logserver: the server block has no syslog block")
	}
	raw := tcp
	if tcp != nil && sl.TLS != nil {
		tc, err := sl.TLS.Build()
		if err != nil {
			return err
		}
		tcp = tls.NewListener(tcp, tc)
	}
	l := &s.syslog
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrServerClosed
	}
	l.tcp, l.tcpRaw, l.udp, l.conns = tcp, raw, udp, map[net.Conn]bool{}
	if l.stored == nil {
		l.stored = make(chan struct{}, 1)
	}
	if tcp != nil {
		l.tcpAddr = tcp.Addr()
		l.wg.Add(1)
		go s.acceptSyslog(tcp)
		s.log.Info("syslog listening", "tcp", tcp.Addr().String(), "tls", sl.TLS != nil)
	}
	if udp != nil {
		l.udpAddr = udp.LocalAddr()
		l.wg.Add(1)
		go s.readSyslogUDP(udp)
		s.log.Info("syslog listening", "udp", udp.LocalAddr().String())
	}
	return nil
}

// SyslogAddrs returns the addresses the syslog listeners serve (nil for
// one not served).
func (s *Server) SyslogAddrs() (tcp, udp net.Addr) {
	s.syslog.mu.Lock()
	defer s.syslog.mu.Unlock()
	return s.syslog.tcpAddr, s.syslog.udpAddr
}

// SyslogStats returns the syslog listeners' counts.
func (s *Server) SyslogStats() *SyslogStats { return &s.syslog.Stats }

// syslogDrain is how long a stopping server still reads its syslog
// connections, and accepts those already made: a message a client wrote
// before the stop (it has no acknowledgement to wait for) is stored.
const syslogDrain = 500 * time.Millisecond

func (l *syslogListeners) close() {
	until := time.Now().Add(syslogDrain)
	l.mu.Lock()
	l.closed = true
	l.drainBy.Store(until.UnixNano())
	if l.tcp != nil {
		if d, ok := l.tcpRaw.(interface{ SetDeadline(time.Time) error }); !ok || d.SetDeadline(until) != nil {
			l.tcp.Close()
		}
	}
	if l.udp != nil {
		l.udp.Close()
	}
	for c := range l.conns {
		c.SetReadDeadline(until)
	}
	l.mu.Unlock()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(time.Until(until) + syslogDrain):
	}
	// A connection that set itself a later deadline in the meantime.
	l.mu.Lock()
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	<-done
}

func (s *Server) acceptSyslog(ln net.Listener) {
	l := &s.syslog
	defer l.wg.Done()
	defer ln.Close()
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed, or past the drain's deadline
		}
		l.mu.Lock()
		if len(l.conns) >= s.maxConns() {
			// As rsyslog's imtcp past MaxSessions: the connection is
			// closed at once (its sender sees it), the others go on.
			l.mu.Unlock()
			// Counted before the close: whoever sees the close sees the
			// count.
			l.Stats.Refused.Add(1)
			c.Close()
			s.peerWarn.Warn(s.log, "syslog: connection refused", "peer", c.RemoteAddr().String(),
				"reason", fmt.Sprintf("too many connections (max_connections = %d)", s.maxConns()))
			continue
		}
		if l.closed {
			// Made before the stop: read until the drain's deadline.
			c.SetReadDeadline(time.Unix(0, l.drainBy.Load()))
		}
		l.conns[c] = true
		l.wg.Add(1)
		l.mu.Unlock()
		go func() {
			defer l.wg.Done()
			defer func() {
				l.mu.Lock()
				delete(l.conns, c)
				l.mu.Unlock()
				c.Close()
			}()
			s.serveSyslogConn(c)
		}()
	}
}

// ingestBatch gathers a peer's records (syslog messages, OTLP log
// records) into a batch per application, stored by storeBatches.
type ingestBatch struct {
	s      *Server
	sender string
	host   string
	byApp  map[string][]byte // application -> entries
	n      int
	rec    []byte
	// now is when the batch's first record arrived: the batch's records
	// arrived together, in one read (one clock reading for them all).
	now time.Time
	// The application the last message went to and its batch, kept out
	// of byApp between messages (a map lookup per message otherwise);
	// sync puts it back.
	curApp string
	cur    []byte
}

// sync puts the current application's batch back into byApp.
func (b *ingestBatch) sync() {
	if b.curApp != "" {
		b.byApp[b.curApp] = b.cur
		b.curApp, b.cur = "", nil
	}
}

func (s *Server) newBatcher(receiver string, peer net.Addr) *ingestBatch {
	host := peer.String()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	// Names the store takes: letters, digits, '.', '_', '-'.
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, host)
	return &ingestBatch{s: s, sender: receiver + "-" + clean, host: clean, byApp: map[string][]byte{}}
}

// add turns a frame into a record for its application.
func (b *ingestBatch) add(frame []byte, tooLong bool) {
	sl := b.s.cfg.Syslog
	if b.n == 0 {
		b.now = time.Now()
	}
	now := b.now
	m, err := syslog.Parse(frame, now, time.Local)
	switch {
	case tooLong:
		b.s.syslog.Stats.Cut.Add(1)
		err = fmt.Errorf("message longer than max_message_bytes (%d): cut", sl.MaxMessageBytes)
	case err != nil:
		b.s.syslog.Stats.Unparsed.Add(1)
	}
	app := sl.Application
	if err == nil && sl.ByAppName && m.AppName != nil && wire.ValidName(string(m.AppName)) {
		app = string(m.AppName)
	}
	b.rec = syslog.AppendRecord(b.rec[:0], &m, frame, err, now)
	if app != b.curApp {
		b.sync()
		b.curApp, b.cur = app, b.byApp[app]
	}
	b.cur = entries.Append(b.cur, b.rec)
	b.n++
}

// flush stores the gathered batches, one per application, and syncs
// them.
func (b *ingestBatch) flush() error {
	b.sync()
	if b.n == 0 {
		return nil
	}
	n := 0
	for _, batch := range b.byApp {
		c, _ := entries.Count(batch)
		n += c
	}
	err := b.s.storeBatches(b)
	if err == nil {
		b.s.syslog.Stats.Messages.Add(int64(n))
		select {
		case b.s.syslog.stored <- struct{}{}:
		default:
		}
	}
	b.n = 0
	// The batches are kept for the next (the store and the stages copy
	// what they take), but not the applications of a peer that names
	// many.
	if len(b.byApp) > 16 {
		clear(b.byApp)
	}
	for app, batch := range b.byApp {
		b.byApp[app] = batch[:0]
	}
	return err
}

func (s *Server) serveSyslogConn(c net.Conn) {
	max := s.cfg.Syslog.MaxMessageBytes
	r := syslog.NewReader(c, max)
	b := s.newBatcher("syslog", c.RemoteAddr())
	defer func() {
		if err := b.flush(); err != nil {
			s.log.Error("syslog: storing failed; these messages are lost", "peer", c.RemoteAddr().String(), "error", err)
		}
	}()
	for frames := 0; ; frames++ {
		if r.Buffered() == 0 || frames%1024 == 0 {
			// A read waits only when nothing is buffered: the deadline is
			// set then (and now and then, for a frame that straddles a
			// refill of the buffer), not for every frame. Once the server
			// stops, no later than the drain's.
			deadline := time.Now().Add(syslogIdle)
			if d := s.syslog.drainBy.Load(); d != 0 && d < deadline.UnixNano() {
				deadline = time.Unix(0, d)
			}
			c.SetReadDeadline(deadline)
		}
		frame, err := r.Next()
		switch {
		case err == nil:
			b.add(frame, false)
		case errors.Is(err, syslog.ErrTooLong):
			if frame != nil {
				b.add(frame, true)
			} else {
				s.syslog.Stats.Skipped.Add(1)
				s.peerWarn.Warn(s.log, "syslog: an octet-counted message longer than max_message_bytes was skipped", "peer", c.RemoteAddr().String(), "max", max)
			}
		case errors.Is(err, io.EOF):
			return
		default:
			if !errors.Is(err, net.ErrClosed) && s.syslog.drainBy.Load() == 0 {
				s.peerWarn.Warn(s.log, "syslog: connection ends", "peer", c.RemoteAddr().String(), "error", err)
			}
			return
		}
		// Store what arrived together: nothing more is buffered, or the
		// batch is full.
		if r.Buffered() == 0 || b.n >= syslogBatch {
			if err := b.flush(); err != nil {
				s.log.Error("syslog: storing failed; these messages are lost", "peer", c.RemoteAddr().String(), "error", err)
			}
		}
	}
}

func (s *Server) readSyslogUDP(pc net.PacketConn) {
	defer s.syslog.wg.Done()
	// Room for bursts: what overflows the socket's buffer the kernel
	// drops before the server sees it (UDP has no flow control).
	if uc, ok := pc.(*net.UDPConn); ok {
		uc.SetReadBuffer(8 << 20)
	}
	max := s.cfg.Syslog.MaxMessageBytes
	buf := make([]byte, 65536)
	batchers := map[string]*ingestBatch{}
	flush := func() {
		for peer, b := range batchers {
			if err := b.flush(); err != nil {
				s.log.Error("syslog: storing failed; these messages are lost", "peer", peer, "error", err)
			}
		}
		clear(batchers)
	}
	defer flush()
	pending := 0
	for {
		if pending > 0 {
			pc.SetReadDeadline(time.Now().Add(syslogUDPWait))
		} else {
			pc.SetReadDeadline(time.Time{})
		}
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				flush()
				pending = 0
				continue
			}
			return
		}
		b := batchers[addr.String()]
		if b == nil {
			b = s.newBatcher("syslog", addr)
			batchers[addr.String()] = b
		}
		frame := buf[:n]
		tooLong := n > max
		if tooLong {
			frame = frame[:max]
		}
		b.add(frame, tooLong)
		if pending++; pending >= syslogBatch {
			flush()
			pending = 0
		}
	}
}
