package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/logtk/logtk/internal/entries"
	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/testcert"
	"github.com/logtk/logtk/internal/testlog"
	"github.com/logtk/logtk/internal/wire"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
	"github.com/logtk/logtk/record"
)

var token = []byte("s3cret-token")

type testServer struct {
	*Server
	addr string
	dir  string
}

func start(t *testing.T, opts Options, wrap func(net.Listener) net.Listener) *testServer {
	t.Helper()
	return startWith(t, opts, StoreOptions{Fsync: true}, wrap)
}

// startWith starts a server whose store, in a new directory, has storeOpts.
func startWith(t *testing.T, opts Options, storeOpts StoreOptions, wrap func(net.Listener) net.Listener) *testServer {
	t.Helper()
	dir := t.TempDir()
	storeOpts.Dir = dir
	store, err := OpenStore(storeOpts)
	if err != nil {
		t.Fatal(err)
	}
	opts.Store = store
	if opts.Tokens == nil {
		opts.Tokens = [][]byte{token}
	}
	if opts.Logger == nil {
		opts.Logger = hclog.New(&hclog.LoggerOptions{Output: testlog.Writer{T: t}, Level: hclog.Debug})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if wrap != nil {
		ln = wrap(ln)
	}
	s := New(opts)
	go s.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Close(ctx)
		store.Close()
	})
	return &testServer{Server: s, addr: addr, dir: dir}
}

// client is a minimal wire protocol client for the tests.
type client struct {
	t *testing.T
	c net.Conn
	r *wire.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &client{t: t, c: c, r: wire.NewReader(c, 0)}
}

func authFrame(tok []byte, sender, app, format string) []byte {
	p, _ := proto.Marshal(&logtkv1.Auth{ProtocolVersion: wire.ProtocolVersion, Token: tok, Sender: sender, Application: app, Format: format})
	return wire.AppendFrame(nil, wire.TypeAuth, p)
}

func (c *client) write(b []byte) {
	c.t.Helper()
	if _, err := c.c.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next frame, skipping PINGs unless asked for.
func (c *client) next() (wire.Type, []byte, error) {
	for {
		t, p, err := c.r.Next()
		if err == nil && t == wire.TypePing {
			continue
		}
		return t, append([]byte(nil), p...), err
	}
}

func (c *client) auth(sender, app, format string) *logtkv1.ServerWelcome {
	c.t.Helper()
	c.write(authFrame(token, sender, app, format))
	t, p, err := c.next()
	if err != nil || t != wire.TypeWelcome {
		c.t.Fatalf("expected WELCOME, got %s %q %v", t, p, err)
	}
	var w logtkv1.ServerWelcome
	proto.Unmarshal(p, &w)
	return &w
}

func (c *client) expectClose(code uint32) string {
	c.t.Helper()
	for {
		t, p, err := c.next()
		if err != nil {
			c.t.Fatalf("connection ended without CLOSE %d: %v", code, err)
		}
		if t == wire.TypeClose {
			var cl logtkv1.Close
			proto.Unmarshal(p, &cl)
			if cl.Code != code {
				c.t.Fatalf("CLOSE %d %q, want %d", cl.Code, cl.Reason, code)
			}
			return cl.Reason
		}
	}
}

func (c *client) sendBatch(id uint64, records ...string) uint64 {
	c.t.Helper()
	var b []byte
	for _, e := range records {
		b = entries.Append(b, []byte(e))
	}
	c.write(wire.AppendData(nil, id, b))
	t, p, err := c.next()
	if err != nil || t != wire.TypeAck {
		c.t.Fatalf("expected ACK for %d, got %s %q %v", id, t, p, err)
	}
	got, _ := wire.ParseAck(p)
	return got
}

func TestStoresAndDeduplicates(t *testing.T) {
	s := start(t, Options{}, nil)
	c := dial(t, s.addr)
	if w := c.auth("host-a", "shop", "json"); w.LastBatchId != 0 || w.MaxFrameBytes == 0 {
		t.Fatalf("welcome %v", w)
	}
	for id := uint64(1); id <= 3; id++ {
		if got := c.sendBatch(id, fmt.Sprintf("line %d\n", id)); got != id {
			t.Fatalf("ack %d for batch %d", got, id)
		}
	}
	c.sendBatch(2, "line 2 resent\n") // a retransmission: acked, not stored
	c.c.Close()

	// Reconnecting, the client learns what the server has.
	c = dial(t, s.addr)
	if w := c.auth("host-a", "shop", "json"); w.LastBatchId != 3 {
		t.Fatalf("LastBatchId = %d, want 3", w.LastBatchId)
	}
	b, _ := os.ReadFile(filepath.Join(s.dir, "shop", "records.log"))
	if string(b) != "line 1\nline 2\nline 3\n" {
		t.Fatalf("stored %q", b)
	}
	if s.Stats.Duplicates.Load() != 1 || s.Stats.Records.Load() != 3 {
		t.Fatalf("stats: %d duplicates, %d records", s.Stats.Duplicates.Load(), s.Stats.Records.Load())
	}
}

// TestRejects: each bad client is refused with a clear code and nothing
// is stored; a good sender beside them loses nothing.
func TestRejects(t *testing.T) {
	s := start(t, Options{AuthTimeout: 300 * time.Millisecond, MaxFrameBytes: 1024}, nil)
	tests := []struct {
		name   string
		send   []byte
		code   uint32
		trunc  bool
		reason string // what the reason must say, if anything
	}{
		{name: "wrong token", send: authFrame([]byte("guess"), "h", "app", "json"), code: wire.CloseAuthFailed},
		{name: "no token", send: authFrame(nil, "h", "app", "json"), code: wire.CloseAuthFailed},
		{name: "data before auth", send: wire.AppendData(nil, 1, nil), code: wire.CloseAuthFailed, reason: "first frame is DATA, not AUTH"},
		{name: "garbage bytes", send: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), code: wire.CloseFrameTooLarge},
		{name: "frame over the limit", send: wire.AppendFrame(nil, wire.TypeAuth, make([]byte, 2000)), code: wire.CloseFrameTooLarge},
		{name: "4 GiB declared", send: []byte{0xff, 0xff, 0xff, 0xff, 1}, code: wire.CloseFrameTooLarge},
		{name: "slow loris", send: []byte{10, 0}, code: wire.CloseTimeout},
		{name: "bad sender name", send: authFrame(token, "../etc", "app", "json"), code: wire.CloseBadIdentity},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, s.addr)
			c.write(tc.send)
			reason := c.expectClose(tc.code)
			if reason == "" || !strings.Contains(reason, tc.reason) {
				t.Errorf("CLOSE reason %q, want it to say %q", reason, tc.reason)
			}
			if _, _, err := c.r.Next(); err == nil {
				t.Error("connection still open after CLOSE")
			}
		})
	}
	if entries, _ := os.ReadDir(s.dir); len(entries) != 0 {
		t.Fatalf("something was stored: %v", entries)
	}
	// A second AUTH is named as the wire protocol names it.
	c := dial(t, s.addr)
	c.auth("h", "app", "json")
	c.write(authFrame(token, "h", "app", "json"))
	if reason := c.expectClose(wire.CloseMalformed); !strings.Contains(reason, "unexpected AUTH frame") {
		t.Errorf("a second AUTH: CLOSE reason %q", reason)
	}
	// So is a type the wire protocol does not have (0x83 is an IPC type).
	c = dial(t, s.addr)
	c.auth("h", "app", "json")
	c.write(wire.AppendFrame(nil, 0x83, nil))
	if reason := c.expectClose(wire.CloseMalformed); !strings.Contains(reason, "unexpected unknown (0x83) frame") {
		t.Errorf("an unknown frame type: CLOSE reason %q", reason)
	}
	// After auth, an oversized DATA frame closes the connection too.
	c = dial(t, s.addr)
	c.auth("h", "app", "json")
	c.write(wire.AppendData(nil, 1, make([]byte, 4096)))
	c.expectClose(wire.CloseFrameTooLarge)
}

// TestIdleConnectionsAndLimit: 1,000 connections that never authenticate
// are closed (evicted by newer ones beyond max_unauthenticated, the rest
// after the auth timeout) while a good sender is served; past MaxConns new
// connections are refused with a code.
func TestIdleConnectionsAndLimit(t *testing.T) {
	s := start(t, Options{AuthTimeout: 500 * time.Millisecond, MaxConns: 1100, Logger: hclog.NewNullLogger()}, nil)
	var idle []net.Conn
	for range 1000 {
		c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	good := dial(t, s.addr)
	good.auth("good", "app", "json")
	for id := uint64(1); id <= 100; id++ {
		good.sendBatch(id, "x\n")
	}
	// Every idle connection is closed by the server.
	for _, c := range idle {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("idle connection not closed by the server: %v", err)
		}
	}
	if n := s.Stats.Records.Load(); n != 100 {
		t.Fatalf("good sender stored %d of 100", n)
	}
	// The limit: fill it, then one more is refused.
	small := start(t, Options{MaxConns: 3, Logger: hclog.NewNullLogger()}, nil)
	for range 3 {
		dial(t, small.addr).auth(fmt.Sprint(time.Now().UnixNano()), "app", "json")
	}
	dial(t, small.addr).expectClose(wire.CloseTooManyConns)
}

func TestTakeOverAndHeartbeat(t *testing.T) {
	s := start(t, Options{Heartbeat: 100 * time.Millisecond}, nil)
	old := dial(t, s.addr)
	old.auth("h", "app", "json")
	newer := dial(t, s.addr)
	newer.auth("h", "app", "json")
	old.expectClose(wire.CloseReplaced)

	// The server pings an idle client...
	newer.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if ty, _, err := newer.r.Next(); err != nil || ty != wire.TypePing {
		t.Fatalf("expected a PING from the server, got %s %v", ty, err)
	}
	// ...and closes one that stays silent for three intervals.
	newer.expectClose(wire.CloseTimeout)
}

func TestGapDetection(t *testing.T) {
	s := start(t, Options{}, nil)
	c := dial(t, s.addr)
	c.auth("h", "app", "logtk.v1.Record")
	rec := func(seq uint64) string {
		b := irecord.AppendHead(nil, time.Unix(1, 0), record.LevelInfo, "m", "")
		return string(irecord.AppendStamp(b, &irecord.Stamp{Worker: "w", Seq: seq}))
	}
	c.sendBatch(1, rec(1), rec(2))
	c.sendBatch(2, rec(4)) // 3 is missing
	c.sendBatch(3, rec(1)) // a restarted host: not a gap
	if g := s.Stats.Gaps.Load(); g != 1 {
		t.Fatalf("%d gaps detected, want 1", g)
	}
	b, _ := os.ReadFile(filepath.Join(s.dir, "app", "records.pb"))
	if n := bytes.Count(b, []byte("m")); n < 4 {
		t.Fatalf("stored %d records", n)
	}
}

// TestTLS: a client that trusts the test CA is served; one that doesn't
// fails the handshake; a client certificate from another CA is refused
// when the server requires one.
func TestTLS(t *testing.T) {
	ca := testcert.NewCA(t, "logtk test CA")
	serverCert := ca.Server(t, "127.0.0.1")
	pool := ca.Pool()
	clientGood := ca.Client(t, "client")
	clientBad := testcert.NewCA(t, "someone else's CA").Client(t, "intruder")

	s := start(t, Options{}, func(ln net.Listener) net.Listener {
		return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{serverCert},
			ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13})
	})
	try := func(roots *x509.CertPool, cert tls.Certificate) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.addr,
			&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1"})
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		cl := &client{t: t, c: c, r: wire.NewReader(c, 0)}
		cl.write(authFrame(token, "tls", "app", "json"))
		ty, _, err := cl.next()
		if err != nil {
			return err
		}
		if ty != wire.TypeWelcome {
			return fmt.Errorf("got %s", ty)
		}
		cl.sendBatch(1, "over tls\n")
		return nil
	}
	if err := try(pool, clientGood); err != nil {
		t.Fatalf("trusted client: %v", err)
	}
	if err := try(x509.NewCertPool(), clientGood); err == nil {
		t.Fatal("a client that does not trust the server's CA connected")
	}
	if err := try(pool, clientBad); err == nil {
		t.Fatal("a client certificate from another CA was accepted")
	} else if !strings.Contains(err.Error(), "certificate") && !errors.Is(err, io.EOF) {
		t.Logf("rejected with: %v", err)
	}
}

// TestSlowSenderDoesNotStallOthers: an authenticated sender stalls in the
// middle of a DATA frame to the same application; five others are served
// meanwhile.
func TestSlowSenderDoesNotStallOthers(t *testing.T) {
	s := start(t, Options{Heartbeat: 2 * time.Second}, nil)
	slow := dial(t, s.addr)
	slow.auth("slow", "app", "json")
	frame := wire.AppendData(nil, 1, entries.Append(nil, []byte("never finished\n")))
	slow.write(frame[:len(frame)-3])

	errs := make(chan error, 5)
	for i := range 5 {
		go func() {
			c := dial(t, s.addr)
			c.auth(fmt.Sprintf("fast-%d", i), "app", "json")
			for id := uint64(1); id <= 50; id++ {
				c.write(wire.AppendData(nil, id, entries.Append(nil, []byte("ok\n"))))
				ty, _, err := c.next()
				if err != nil || ty != wire.TypeAck {
					errs <- fmt.Errorf("sender %d batch %d: %s %v", i, id, ty, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 5 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Stats.Records.Load(); n != 250 {
		t.Fatalf("%d of 250 records stored", n)
	}
	b, _ := os.ReadFile(filepath.Join(s.dir, "app", "records.log"))
	if strings.Contains(string(b), "never finished") {
		t.Fatal("a partial frame was stored")
	}
}

// TestBatchIDZeroRefused: batch id 0 means "nothing stored" in WELCOME's
// last_batch_id, so a DATA frame with id 0 could never be stored.
// Instead of acknowledging it (before: ACK 0, and the batch silently
// lost) the server closes with 4004 and a reason naming the id; nothing
// is stored, and the client's next connection starting at 1 is served.
func TestBatchIDZeroRefused(t *testing.T) {
	s := start(t, Options{}, nil)
	c := dial(t, s.addr)
	c.auth("h", "app", "json")
	c.write(wire.AppendData(nil, 0, entries.Append(nil, []byte("batch zero\n"))))
	if reason := c.expectClose(wire.CloseMalformed); !strings.Contains(reason, "batch id 0") {
		t.Fatalf("CLOSE reason %q does not name batch id 0", reason)
	}
	if b, _ := os.ReadFile(filepath.Join(s.dir, "app", "records.log")); len(b) != 0 {
		t.Fatalf("batch 0 was stored: %q", b)
	}
	c = dial(t, s.addr)
	if w := c.auth("h", "app", "json"); w.LastBatchId != 0 {
		t.Fatalf("LastBatchId = %d, want 0", w.LastBatchId)
	}
	if got := c.sendBatch(1, "batch one\n"); got != 1 {
		t.Fatalf("ack %d for batch 1", got)
	}
	if b, _ := os.ReadFile(filepath.Join(s.dir, "app", "records.log")); string(b) != "batch one\n" {
		t.Fatalf("stored %q", b)
	}
}

// TestAuthFrameLimit: before authenticating, a peer can make the server
// read at most wire.MaxAuthBytes. An AUTH declaring more is refused with
// 4003 from its length prefix alone (the test sends no body; before, the
// server took the frame's 4 MiB limit, allocated the declared size and
// waited for the body until the auth timeout). An AUTH of exactly the
// limit is read, and an AUTH with every field at its largest fits.
func TestAuthFrameLimit(t *testing.T) {
	long := bytes.Repeat([]byte("t"), wire.MaxTokenBytes)
	s := start(t, Options{AuthTimeout: time.Minute, Tokens: [][]byte{token, long}}, nil)
	for _, payload := range []uint32{wire.MaxAuthBytes + 1, 4 << 20, 1<<32 - 2} {
		c := dial(t, s.addr)
		c.c.SetDeadline(time.Now().Add(10 * time.Second))
		c.write(binary.LittleEndian.AppendUint32(nil, payload+1)) // the length prefix only
		if reason := c.expectClose(wire.CloseFrameTooLarge); !strings.Contains(reason, fmt.Sprint(wire.MaxAuthBytes)) {
			t.Errorf("%d-byte AUTH: reason %q does not give the limit", payload, reason)
		}
		if _, _, err := c.r.Next(); err == nil {
			t.Errorf("%d-byte AUTH: connection still open after CLOSE", payload)
		}
	}

	// Exactly the limit is read: refused for its token, not its size.
	p, _ := proto.Marshal(&logtkv1.Auth{ProtocolVersion: wire.ProtocolVersion, Token: []byte("guess"), Sender: "h", Application: "app"})
	p = protowire.AppendTag(p, 99, protowire.BytesType) // an unknown field fills it up
	p = protowire.AppendBytes(p, make([]byte, wire.MaxAuthBytes-len(p)-2))
	if len(p) != wire.MaxAuthBytes {
		t.Fatalf("test AUTH is %d bytes, want %d", len(p), wire.MaxAuthBytes)
	}
	c := dial(t, s.addr)
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	c.write(wire.AppendFrame(nil, wire.TypeAuth, p))
	c.expectClose(wire.CloseAuthFailed)

	// The largest legitimate AUTH fits.
	name := strings.Repeat("n", 128)
	p, _ = proto.Marshal(&logtkv1.Auth{ProtocolVersion: wire.ProtocolVersion, Token: long, Sender: name, Application: name,
		Format: "logtk.v1.Record", Hostname: strings.Repeat("h", 253)})
	c = dial(t, s.addr)
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	c.write(wire.AppendFrame(nil, wire.TypeAuth, p))
	if ty, _, err := c.next(); err != nil || ty != wire.TypeWelcome {
		t.Fatalf("%d-byte AUTH with every field at its largest: got %s %v, want WELCOME", len(p), ty, err)
	}
}

// TestIdleTokenlessCannotLockOut: 300 connections that never authenticate
// (silent, half a length prefix, part of an AUTH) against a server
// allowing 8 connections and 4 unauthenticated ones; a good client must
// still authenticate and store a batch (before: refused with 4007, as
// the idle sockets took every connection). The oldest idle connection
// made room for a newer one and was closed with 4007.
func TestIdleTokenlessCannotLockOut(t *testing.T) {
	logs := &testlog.Buffer{}
	s := start(t, Options{AuthTimeout: time.Minute, MaxConns: 8, MaxUnauthenticated: 4,
		Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info})}, nil)
	const idleConns = 300
	partialAuth := authFrame(token, "idle", "app", "json")[:20]
	idle := make([]net.Conn, 0, idleConns)
	for i := range idleConns {
		c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		switch i % 3 {
		case 1:
			c.Write([]byte{10, 0}) // half a length prefix (the server may have closed it: no error check)
		case 2:
			c.Write(partialAuth)
		}
		idle = append(idle, c)
	}
	good := dial(t, s.addr)
	good.auth("good", "app", "json")
	if got := good.sendBatch(1, "stored\n"); got != 1 {
		t.Fatalf("ack %d for batch 1", got)
	}
	if b, _ := os.ReadFile(filepath.Join(s.dir, "app", "records.log")); string(b) != "stored\n" {
		t.Fatalf("stored %q", b)
	}
	oldest := &client{t: t, c: idle[0], r: wire.NewReader(idle[0], 0)}
	if reason := oldest.expectClose(wire.CloseTooManyConns); !strings.Contains(reason, "unauthenticated") {
		t.Fatalf("the oldest idle connection was closed with reason %q", reason)
	}
	// Hundreds of evictions are a few lines of the log, not hundreds (an
	// outside tester's flood wrote 18 MB of them in seconds).
	if n := strings.Count(logs.String(), "[WARN]"); n > 3 {
		t.Errorf("%d warnings for the evicted connections:\n%.2000s", n, logs)
	}
}

// TestManyApplications: the store keeps at most 4 application files open
// (MaxOpen); 3 senders stay connected and keep sending while 20 other
// applications connect in turn and send. Every batch is acknowledged and
// stored, and the store never holds more than 8 descriptors (before: 2 per
// application, 46, until a restart).
func TestManyApplications(t *testing.T) {
	s := startWith(t, Options{Logger: hclog.NewNullLogger()}, StoreOptions{Fsync: true, MaxOpen: 4}, nil)
	kept := make([]*client, 3)
	for i := range kept {
		kept[i] = dial(t, s.addr)
		kept[i].auth("keeper", fmt.Sprintf("kept%d", i), "json")
	}
	for i := range 20 {
		c := dial(t, s.addr)
		c.auth("h", fmt.Sprintf("app%02d", i), "json")
		c.sendBatch(1, fmt.Sprintf("app%02d\n", i))
		c.c.Close()
		for j, k := range kept {
			if got := k.sendBatch(uint64(i+1), fmt.Sprintf("kept%d %d\n", j, i+1)); got != uint64(i+1) {
				t.Fatalf("kept%d: ack %d for batch %d", j, got, i+1)
			}
		}
		if n := openFilesUnder(t, s.dir); n > 8 {
			t.Fatalf("after application %d: %d descriptors open under the store, want at most 8", i, n)
		}
	}
	for i := range 20 {
		if b, _ := os.ReadFile(filepath.Join(s.dir, fmt.Sprintf("app%02d", i), "records.log")); string(b) != fmt.Sprintf("app%02d\n", i) {
			t.Fatalf("app%02d stored %q", i, b)
		}
	}
	for j := range kept {
		b, _ := os.ReadFile(filepath.Join(s.dir, fmt.Sprintf("kept%d", j), "records.log"))
		if n := strings.Count(string(b), "\n"); n != 20 {
			t.Fatalf("kept%d: %d of 20 batches stored", j, n)
		}
	}
}

// TestApplicationsAllBusy: with MaxOpen 1 and that file busy (its sync
// held up), a batch of another application is refused with CLOSE 4011,
// naming the application, and not stored; the busy sender is
// acknowledged once its sync is done, and the refused one, connecting
// again, is stored.
func TestApplicationsAllBusy(t *testing.T) {
	release, entered := make(chan struct{}), make(chan struct{}, 1)
	var once sync.Once
	failSyncs(t, func(f *os.File) error {
		if strings.Contains(f.Name(), string(filepath.Separator)+"held"+string(filepath.Separator)) {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
		}
		return f.Sync()
	})
	s := startWith(t, Options{}, StoreOptions{Fsync: true, MaxOpen: 1}, nil)
	t.Cleanup(func() { once.Do(func() { close(release) }) }) // before the server's cleanup

	held := dial(t, s.addr)
	held.auth("h", "held", "json")
	held.write(wire.AppendData(nil, 1, entries.Append(nil, []byte("held\n"))))
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the held batch's sync never started")
	}
	other := dial(t, s.addr)
	other.auth("h", "other", "json")
	other.write(wire.AppendData(nil, 1, entries.Append(nil, []byte("other\n"))))
	if reason := other.expectClose(wire.CloseTooManyApplications); !strings.Contains(reason, `"other"`) {
		t.Fatalf("CLOSE reason %q does not name the application", reason)
	}
	once.Do(func() { close(release) })
	if ty, p, err := held.next(); err != nil || ty != wire.TypeAck {
		t.Fatalf("held: expected ACK, got %s %q %v", ty, p, err)
	}
	other = dial(t, s.addr)
	if w := other.auth("h", "other", "json"); w.LastBatchId != 0 {
		t.Fatalf("the refused batch counts as stored: LastBatchId %d", w.LastBatchId)
	}
	other.sendBatch(1, "other\n")
	for app, want := range map[string]string{"held": "held\n", "other": "other\n"} {
		if b, _ := os.ReadFile(filepath.Join(s.dir, app, "records.log")); string(b) != want {
			t.Fatalf("%s stored %q", app, b)
		}
	}
}

// TestStampsOrigin: every stored logtk.v1.Record, and what the server's
// stages receive (each record with the stamp OnStored is given), carries
// the sender, hostname and application of its
// connection, whatever the sender put in those fields (issue 14: stored
// records said nothing of where they came from). A hostname that is not
// one is refused.
func TestStampsOrigin(t *testing.T) {
	var staged [][]byte
	var mu sync.Mutex
	s := start(t, Options{OnStored: func(app, sender, format string, batch, stamp []byte) {
		mu.Lock()
		defer mu.Unlock()
		entries.Each(batch, func(e []byte) { staged = append(staged, append(append([]byte(nil), e...), stamp...)) })
	}}, nil)
	c := dial(t, s.addr)
	p, _ := proto.Marshal(&logtkv1.Auth{ProtocolVersion: wire.ProtocolVersion, Token: token, Sender: "web-01",
		Application: "shop", Format: "logtk.v1.Record", Hostname: "web-01.example.com"})
	c.write(wire.AppendFrame(nil, wire.TypeAuth, p))
	if typ, p, err := c.next(); err != nil || typ != wire.TypeWelcome {
		t.Fatalf("expected WELCOME, got %s %q %v", typ, p, err)
	}
	honest := irecord.AppendHead(nil, time.Unix(1, 0), record.LevelInfo, "honest", "")
	forged := irecord.AppendServerStamp(irecord.AppendHead(nil, time.Unix(2, 0), record.LevelInfo, "forged", ""), "someone-else", "elsewhere", "other-app")
	// A record that ends inside an unknown bytes field whose length is
	// the stamp's: the stamp would become its contents, and the forged
	// origin before it would stand (a reviewer's attack).
	stampLen := len(irecord.AppendServerStamp(nil, "web-01", "web-01.example.com", "shop"))
	swallow := protowire.AppendTag(bytes.Clone(forged), 100, protowire.BytesType)
	swallow = protowire.AppendVarint(swallow, uint64(stampLen))
	c.sendBatch(1, string(honest), string(forged), string(swallow))

	b, err := os.ReadFile(filepath.Join(s.dir, "shop", "records.pb"))
	if err != nil {
		t.Fatal(err)
	}
	var stored [][]byte
	for len(b) > 0 {
		l, n := protowire.ConsumeVarint(b)
		stored = append(stored, b[n:n+int(l)])
		b = b[n+int(l):]
	}
	mu.Lock()
	if len(stored) != 3 {
		t.Fatalf("stored %d records, want 3", len(stored))
	}
	if err := irecord.Validate(stored[2]); err == nil {
		var v record.Record
		v.Parse(stored[2])
		t.Errorf("the swallowing record was stored valid, saying sender %q, application %q", v.Sender, v.Application)
	}
	stored = stored[:2]
	for what, recs := range map[string][][]byte{"stored": stored, "staged": staged} {
		if len(recs) < 2 {
			t.Fatalf("%s %d records, want 2", what, len(recs))
		}
		for _, r := range recs[:2] {
			var rec logtkv1.Record
			if err := proto.Unmarshal(r, &rec); err != nil {
				t.Fatal(err)
			}
			if rec.Sender != "web-01" || rec.Hostname != "web-01.example.com" || rec.Application != "shop" {
				t.Errorf("%s record %q says sender %q, hostname %q, application %q", what, rec.Message, rec.Sender, rec.Hostname, rec.Application)
			}
		}
	}

	mu.Unlock()

	// Without a hostname in AUTH, a record's own is overridden by none.
	c = dial(t, s.addr)
	p, _ = proto.Marshal(&logtkv1.Auth{ProtocolVersion: wire.ProtocolVersion, Token: token, Sender: "web-03",
		Application: "quiet", Format: "logtk.v1.Record"})
	c.write(wire.AppendFrame(nil, wire.TypeAuth, p))
	if typ, p, err := c.next(); err != nil || typ != wire.TypeWelcome {
		t.Fatalf("expected WELCOME, got %s %q %v", typ, p, err)
	}
	c.sendBatch(1, string(forged))
	b, _ = os.ReadFile(filepath.Join(s.dir, "quiet", "records.pb"))
	l, n := protowire.ConsumeVarint(b)
	var rec logtkv1.Record
	if err := proto.Unmarshal(b[n:n+int(l)], &rec); err != nil || rec.Hostname != "" || rec.Sender != "web-03" {
		t.Errorf("without a hostname in AUTH: stored sender %q, hostname %q (%v)", rec.Sender, rec.Hostname, err)
	}

	c = dial(t, s.addr)
	p, _ = proto.Marshal(&logtkv1.Auth{ProtocolVersion: wire.ProtocolVersion, Token: token, Sender: "web-02",
		Application: "shop", Format: "logtk.v1.Record", Hostname: "web 02\n[INFO] forged line"})
	c.write(wire.AppendFrame(nil, wire.TypeAuth, p))
	c.expectClose(wire.CloseBadIdentity)
}

// TestWelcomeHeld: for logtk.v1.Record, WELCOME names what the server
// stored of each worker instance of the sender (the highest seq), and
// only the sender's: what a host numbers above and does not send again.
// TestOlderConnectionCannotTakeOver: a connection accepted before the
// sender's current session, whose AUTH comes only now (a host killed
// just after it connected: its bytes were still in the socket), is
// refused and stores nothing; it does not replace the newer session,
// whose WELCOME said what is held. (It did, and stored its batch after
// that WELCOME: the newer host, cut by those marks, stored the same
// records again.)
func TestOlderConnectionCannotTakeOver(t *testing.T) {
	s := start(t, Options{}, nil)
	stale := dial(t, s.addr)
	newer := dial(t, s.addr)
	if w := newer.auth("h", "app", "json"); w.LastBatchId != 0 {
		t.Fatalf("last batch %d", w.LastBatchId)
	}
	stale.write(append(authFrame(token, "h", "app", "json"), wire.AppendData(nil, 7, entries.Append(nil, []byte("late")))...))
	stale.expectClose(wire.CloseReplaced)
	if got := newer.sendBatch(3, "on time"); got != 3 {
		t.Fatalf("ACK %d", got)
	}
	newer.c.Close()
	again := dial(t, s.addr)
	if w := again.auth("h", "app", "json"); w.LastBatchId != 3 {
		t.Fatalf("last batch %d, want 3: the older connection's batch 7 was stored", w.LastBatchId)
	}
}

func TestWelcomeHeld(t *testing.T) {
	s := start(t, Options{}, nil)
	rec := func(worker string, index uint32, seq uint64) string {
		b := irecord.AppendHead(nil, time.Unix(1, 0), 9, "m", "")
		b = append(b, irecord.AppendStampOrigin(nil, worker, index, 1, 0)...)
		return string(irecord.AppendStampArrival(b, seq, 1, 1))
	}
	c := dial(t, s.addr)
	if w := c.auth("host-a", "shop", "logtk.v1.Record"); len(w.Held) != 0 {
		t.Fatalf("held %v before anything was stored", w.Held)
	}
	c.sendBatch(1, rec("api", 0, 1), rec("api", 0, 2), rec("api", 1, 7))
	c.sendBatch(2, rec("api", 0, 3), rec("", 0, 9)) // the host's own: never held
	c.c.Close()
	c = dial(t, s.addr)
	c.auth("host-b", "shop", "logtk.v1.Record")
	c.sendBatch(1, rec("api", 0, 50))
	c.c.Close()

	c = dial(t, s.addr)
	w := c.auth("host-a", "shop", "logtk.v1.Record")
	var got []string
	for _, h := range w.Held {
		got = append(got, fmt.Sprintf("%s#%d:%d", h.Worker, h.WorkerIndex, h.Seq))
	}
	if strings.Join(got, " ") != "api#0:3 api#1:7" {
		t.Fatalf("WELCOME held %v, want api#0:3 api#1:7", got)
	}
}

// deafConn takes one write (the WELCOME), then every write fails: the
// client's host is gone.
type deafConn struct {
	net.Conn
	writes atomic.Int32
}

func (c *deafConn) Write(b []byte) (int, error) {
	if c.writes.Add(1) > 1 {
		return 0, errors.New("injected: the peer is gone")
	}
	return c.Conn.Write(b)
}

// TestUnacknowledgedBatchesAreHeld: batches the server stored but could
// not acknowledge (its ACK write failed: the client's host died) are
// made durable and counted in the sender's next WELCOME all the same.
// (The session stopped committing at the first failed ACK: the batches
// after it were in the store, but not in last_batch_id and held, and the
// next host, cut by that WELCOME, stored them again.)
func TestUnacknowledgedBatchesAreHeld(t *testing.T) {
	var deaf atomic.Bool
	s := start(t, Options{}, func(ln net.Listener) net.Listener {
		return listenerFunc(func() (net.Conn, error) {
			c, err := ln.Accept()
			if err != nil || !deaf.Load() {
				return c, err
			}
			return &deafConn{Conn: c}, nil
		}, ln)
	})
	rec := func(seq uint64) []byte {
		b := irecord.AppendHead(nil, time.Unix(1, 0), 9, "m", "")
		b = append(b, irecord.AppendStampOrigin(nil, "api", 0, 1, 0)...)
		return irecord.AppendStampArrival(b, seq, 1, 1)
	}
	deaf.Store(true)
	c := dial(t, s.addr)
	c.auth("h", "app", "logtk.v1.Record")
	for id := uint64(1); id <= 5; id++ {
		c.write(wire.AppendData(nil, id, entries.Append(nil, rec(id))))
	}
	// The client closes, as a dead host's socket is closed; the session
	// stores the five it read, then ends.
	c.c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats.Batches.Load() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 5 batches stored", s.Stats.Batches.Load())
		}
		time.Sleep(time.Millisecond) // polling the server's count: no event to wait on
	}
	deaf.Store(false)
	again := dial(t, s.addr)
	w := again.auth("h", "app", "logtk.v1.Record") // after the old session has ended (takeOver)
	if w.LastBatchId != 5 || len(w.Held) != 1 || w.Held[0].Seq != 5 {
		t.Fatalf("WELCOME says last batch %d, held %v: want batch 5, seq 5 (all five were stored)", w.LastBatchId, w.Held)
	}
}

// listenerFunc is a listener whose Accept is accept.
func listenerFunc(accept func() (net.Conn, error), ln net.Listener) net.Listener {
	return acceptFunc{ln, accept}
}

type acceptFunc struct {
	net.Listener
	accept func() (net.Conn, error)
}

func (a acceptFunc) Accept() (net.Conn, error) { return a.accept() }
