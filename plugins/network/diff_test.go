package network_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logtk/logtk/internal/wasm"
	"github.com/logtk/logtk/plugins/builtin"
	"github.com/logtk/logtk/sdk/plugin"
	"github.com/logtk/logtk/sdk/plugintest"
)

// The network transport logtk-host runs is compiled from C
// (plugins/c/network.c); this package is its reference. The tests here
// run both modules, the Go one built for wasip1 and the C one, against
// the same scripted servers and compare what each answered the host
// and sent the server. (The host's network tests, server kills and
// chaos included, run the C module end to end.)

// frame is one frame of wire protocol v1.
type frame struct {
	typ     byte
	payload []byte
}

func appendFrame(b []byte, typ byte, p []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p)+1))
	return append(append(b, typ), p...)
}

func readFrame(r io.Reader) (frame, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return frame{}, err
	}
	n := binary.LittleEndian.Uint32(h[:])
	if n < 1 || n > 1<<24 {
		return frame{}, fmt.Errorf("frame length %d", n)
	}
	p := make([]byte, n-1)
	_, err := io.ReadFull(r, p)
	return frame{h[4], p}, err
}

// welcome encodes a ServerWelcome: stored, max_frame_bytes,
// max_in_flight and held marks.
func welcome(stored, maxFrame, maxInFlight uint64, held ...plugin.Mark) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, 1)
	if maxFrame > 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, maxFrame)
	}
	if maxInFlight > 0 {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, maxInFlight)
	}
	b = protowire.AppendTag(b, 5, protowire.VarintType)
	b = protowire.AppendVarint(b, stored)
	for _, h := range held {
		var ws []byte
		ws = protowire.AppendTag(ws, 1, protowire.BytesType)
		ws = protowire.AppendString(ws, h.Worker)
		ws = protowire.AppendTag(ws, 2, protowire.VarintType)
		ws = protowire.AppendVarint(ws, uint64(h.Index))
		ws = protowire.AppendTag(ws, 3, protowire.VarintType)
		ws = protowire.AppendVarint(ws, h.Seq)
		b = protowire.AppendTag(b, 6, protowire.BytesType)
		b = protowire.AppendBytes(b, ws)
	}
	return b
}

func closeFrame(code uint64, reason string) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, code)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendString(b, reason)
}

// script is a server: it gets each connection (its index from 0) and
// a reader of the client's frames, which notes each.
type script func(i int, c net.Conn, read func() (frame, error))

// server accepts connections and runs the script on each, noting every
// frame the client sent, by connection.
type server struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	got   map[int][]string
	conns int // accepted
}

func serve(t testing.TB, s script) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &server{ln: ln, got: map[int][]string{}}
	t.Cleanup(func() {
		ln.Close()
		srv.wg.Wait() // connections end with their instances, or at their deadline
	})
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			srv.mu.Lock()
			srv.conns++
			srv.mu.Unlock()
			srv.wg.Add(1)
			go func() {
				defer srv.wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				s(i, c, func() (frame, error) {
					f, err := readFrame(c)
					if err == nil {
						srv.mu.Lock()
						srv.got[i] = append(srv.got[i], fmt.Sprintf("conn %d got %x %x", i, f.typ, f.payload))
						srv.mu.Unlock()
					}
					return f, err
				})
			}()
		}
	}()
	return srv
}

// stop waits for the connections to end and returns what the server
// got, connection by connection.
func (s *server) stop() []string {
	s.ln.Close()
	s.wg.Wait()
	out := []string{fmt.Sprintf("%d connections", s.conns)}
	for i := range s.conns {
		out = append(out, s.got[i]...)
	}
	return out
}

var addr = regexp.MustCompile(`127\.0\.0\.1:[0-9]+`)

// step is one host call, or a wait for every batch written to be
// reported (or to fail).
type step struct {
	call  string // "marks", "write", "settle", "close"
	id    uint64
	batch []string
}

// run drives module through steps against a server running s, and
// returns the transcript: each call's answer, and what the server got.
func run(t *testing.T, module []byte, cfg string, s script, steps []step) []string {
	t.Helper()
	ctx := context.Background()
	srv := serve(t, s)
	defer srv.ln.Close()
	mod, err := wasm.Load(ctx, module, wasm.Options{Name: "network", Limits: wasm.Limits{CallTimeout: 10 * time.Second},
		Grants: wasm.Grants{Endpoints: map[string]wasm.Endpoint{"logs": {Address: srv.ln.Addr().String(), IOTimeout: 5 * time.Second}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer mod.Close(ctx)
	inst, err := mod.NewInstance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	note := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	answer := func(err error) string {
		var ce *wasm.CallError
		if errors.As(err, &ce) {
			// The status, and the message less the server's address.
			return fmt.Sprintf("status %d: %s", ce.Status, addr.ReplaceAllString(ce.Msg, "ADDR"))
		}
		if err != nil {
			return "error " + err.Error()
		}
		return "ok"
	}
	if err := inst.Configure(ctx, []byte(cfg)); err != nil {
		t.Fatal(err)
	}
	if err := inst.Open(ctx); err != nil {
		t.Fatal(err)
	}
	keeps := false
	pending := map[uint64]bool{}
	for _, st := range steps {
		switch st.call {
		case "marks":
			held, k, err := inst.KeepMarks(ctx)
			keeps = k && err == nil
			ms, _ := plugin.ParseMarks(nil, held)
			note("marks %v %s", ms, answer(err))
		case "write":
			var b []byte
			for _, e := range st.batch {
				b = plugin.AppendEntry(b, []byte(e))
			}
			var p bool
			var err error
			if keeps {
				p, err = inst.WriteMarked(ctx, st.id, nil, b)
			} else {
				p, err = inst.Write(ctx, st.id, b)
			}
			if p {
				pending[st.id] = true
			}
			note("write %d: pending %v %s", st.id, p, answer(err))
		case "settle":
			var acked []uint64
			deadline := time.Now().Add(15 * time.Second)
			for len(pending) > 0 && time.Now().Before(deadline) {
				ids, err := inst.Poll(ctx, 200*time.Millisecond)
				for _, id := range ids {
					delete(pending, id)
					acked = append(acked, id)
				}
				if err != nil {
					note("poll: %s", answer(err))
					clear(pending)
				}
			}
			slices.Sort(acked)
			note("delivered %v, left %d", acked, len(pending))
		case "close":
			note("close %s", answer(inst.ClosePlugin(ctx)))
		}
	}
	inst.Close(ctx)
	return append(out, srv.stop()...)
}

// scenarios are scripted servers, each with the calls the host makes.
func scenarios() map[string]struct {
	cfg   string
	s     script
	steps []step
} {
	base := `{"endpoint":"logs","token":"secret-token","sender":"web-1","application":"shop","hostname":"h1"}`
	ackAll := func(w []byte) script {
		return func(_ int, c net.Conn, read func() (frame, error)) {
			if _, err := read(); err != nil {
				return
			}
			c.Write(appendFrame(nil, 0x02, w))
			for {
				f, err := read()
				if err != nil {
					return
				}
				if f.typ == 0x03 {
					id, _ := protowire.ConsumeVarint(f.payload)
					c.Write(appendFrame(nil, 0x04, protowire.AppendVarint(nil, id)))
				}
			}
		}
	}
	writes := func(ids ...uint64) []step {
		var s []step
		for _, id := range ids {
			s = append(s, step{call: "write", id: id, batch: []string{fmt.Sprintf("record %d", id), "another"}})
		}
		return s
	}
	seq := func(parts ...[]step) []step { return slices.Concat(parts...) }
	marks, settle, closing := []step{{call: "marks"}}, []step{{call: "settle"}}, []step{{call: "close"}}
	type sc = struct {
		cfg   string
		s     script
		steps []step
	}
	return map[string]sc{
		"acks": {base, ackAll(welcome(0, 0, 0)), seq(marks, writes(1, 2, 3), settle, closing)},
		"held and stored": {base, ackAll(welcome(2, 1<<20, 0, plugin.Mark{Worker: "api", Index: 1, Seq: 9}, plugin.Mark{Worker: "db", Seq: 1 << 40})),
			seq(marks, writes(1, 2, 3, 4), settle, closing)},
		"empty batch":          {base, ackAll(welcome(0, 0, 0)), seq([]step{{call: "write", id: 1}}, writes(2), settle, closing)},
		"in flight limit":      {base, ackAll(welcome(0, 0, 2)), seq(writes(1, 2, 3, 4, 5), settle, closing)},
		"over the frame limit": {base, ackAll(welcome(0, 10, 0)), seq(writes(1), settle, closing)},
		"format and token file": {`{"endpoint":"logs","token_file":"IHNlY3JldAo=","sender":"s","application":"a","format":"json"}`,
			ackAll(welcome(0, 0, 0)), seq(writes(1), settle, closing)},
		"refused": {base, func(_ int, c net.Conn, read func() (frame, error)) {
			read()
			c.Write(appendFrame(nil, 0x07, closeFrame(4001, "bad token")))
		}, seq(marks, writes(1), closing)},
		"not a welcome": {base, func(_ int, c net.Conn, read func() (frame, error)) {
			read()
			c.Write(appendFrame(nil, 0x04, []byte{1}))
			read()
		}, seq(writes(1), closing)},
		"unknown frame type": {base, func(_ int, c net.Conn, read func() (frame, error)) {
			read()
			c.Write(appendFrame(nil, 0x99, nil))
			read()
		}, seq(writes(1), closing)},
		"frame length zero": {base, func(_ int, c net.Conn, read func() (frame, error)) {
			read()
			c.Write([]byte{0, 0, 0, 0, 2})
			read()
		}, seq(writes(1), closing)},
		"frame too long": {base, func(_ int, c net.Conn, read func() (frame, error)) {
			read()
			c.Write([]byte{1, 0, 0, 2, 2})
			read()
		}, seq(writes(1), closing)},
		"malformed held":       {base, ackAll(append(welcome(0, 0, 0), 0x32, 3, 0x0a, 1, 0xff)), seq(marks, writes(1), closing)},
		"held index too large": {base, ackAll(append(welcome(0, 0, 0), 0x32, 7, 0x10, 0x80, 0x80, 0x80, 0x80, 0x10, 0x18)), seq(marks, closing)},
		"welcome with groups and fixed fields": {base, ackAll(append(welcome(0, 0, 0), 0x3b, 0x08, 0x01, 0x3c, 0x4d, 1, 2, 3, 4, 0x51, 1, 2, 3, 4, 5, 6, 7, 8)),
			seq(marks, writes(1), settle, closing)},
		"pings, split frames, a malformed ack": {base, func(_ int, c net.Conn, read func() (frame, error)) {
			if _, err := read(); err != nil {
				return
			}
			w := appendFrame(nil, 0x02, welcome(0, 0, 0))
			c.Write(w[:3]) // two writes: the client may read half a frame
			c.Write(w[3:])
			for {
				f, err := read()
				if err != nil {
					return
				}
				if f.typ != 0x03 {
					continue
				}
				id, _ := protowire.ConsumeVarint(f.payload)
				ping := appendFrame(nil, 0x05, []byte("12345678"))
				c.Write(append(ping, appendFrame(nil, 0x04, protowire.AppendVarint(nil, id))...))
				if id == 3 {
					c.Write(appendFrame(nil, 0x04, nil))
				}
			}
		}, seq(writes(1, 2), settle, writes(3), settle, closing)},
		"server closes mid batch, then acks on reconnect": {base, func(i int, c net.Conn, read func() (frame, error)) {
			if _, err := read(); err != nil {
				return
			}
			c.Write(appendFrame(nil, 0x02, welcome(uint64(i), 0, 0)))
			for {
				f, err := read()
				if err != nil {
					return
				}
				if f.typ != 0x03 {
					continue
				}
				if i == 0 {
					c.Write(appendFrame(nil, 0x07, closeFrame(1001, "going away")))
					return
				}
				id, _ := protowire.ConsumeVarint(f.payload)
				c.Write(appendFrame(nil, 0x04, protowire.AppendVarint(nil, id)))
			}
		}, seq(writes(1), settle, writes(1, 2), settle, closing)},
		"no ack": {`{"endpoint":"logs","token":"t","sender":"s","application":"a","ack_timeout":"300ms"}`, func(_ int, c net.Conn, read func() (frame, error)) {
			if _, err := read(); err != nil {
				return
			}
			c.Write(appendFrame(nil, 0x02, welcome(0, 0, 0)))
			for {
				if _, err := read(); err != nil {
					return
				}
			}
		}, seq(writes(1, 2), settle, closing)},
		"not granted": {`{"endpoint":"elsewhere","token":"t","sender":"s","application":"a"}`, ackAll(welcome(0, 0, 0)),
			seq(marks, writes(1), closing)},
	}
}

// TestSameAsTheReference: against every scripted server the C module
// answers the host and writes to the server what the Go one does.
func TestSameAsTheReference(t *testing.T) {
	goModule, err := os.ReadFile(plugintest.Build(t, "plugin"))
	if err != nil {
		t.Fatal(err)
	}
	cModule, _ := builtin.Module("network")
	for name, sc := range scenarios() {
		t.Run(name, func(t *testing.T) {
			want := run(t, goModule, sc.cfg, sc.s, sc.steps)
			got := run(t, cModule, sc.cfg, sc.s, sc.steps)
			if !slices.Equal(got, want) {
				t.Fatalf("the C module:\n  %s\nthe Go one:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
		})
	}
}

// FuzzWelcomeAsTheReference: whatever a server's WELCOME holds, the C
// module answers the host's marks call as the Go one does (the marks,
// or the status and message).
func FuzzWelcomeAsTheReference(f *testing.F) {
	f.Add(welcome(3, 1<<20, 8, plugin.Mark{Worker: "api", Index: 1, Seq: 9}))
	f.Add(append(welcome(0, 0, 0), 0x32, 3, 0x0a, 1, 0xff))
	f.Add(append(welcome(0, 0, 0), 0x3b, 0x08, 0x01, 0x3c, 0x4d, 1, 2, 3, 4))
	f.Add([]byte{0x32, 7, 0x10, 0x80, 0x80, 0x80, 0x80, 0x10, 0x18})
	ctx := context.Background()
	var payload atomic.Pointer[[]byte]
	srv := serve(f, func(_ int, c net.Conn, read func() (frame, error)) {
		if _, err := read(); err != nil {
			return
		}
		c.Write(appendFrame(nil, 0x02, *payload.Load()))
		for {
			if _, err := read(); err != nil {
				return
			}
		}
	})
	goModule, err := os.ReadFile(plugintest.Build(f, "plugin"))
	if err != nil {
		f.Fatal(err)
	}
	cModule, _ := builtin.Module("network")
	var mods []*wasm.Module
	for _, b := range [][]byte{goModule, cModule} {
		m, err := wasm.Load(ctx, b, wasm.Options{Name: "network",
			Grants: wasm.Grants{Endpoints: map[string]wasm.Endpoint{"logs": {Address: srv.ln.Addr().String()}}}})
		if err != nil {
			f.Fatal(err)
		}
		defer m.Close(ctx)
		mods = append(mods, m)
	}
	cfg := []byte(`{"endpoint":"logs","token":"t","sender":"s","application":"a"}`)
	f.Fuzz(func(t *testing.T, w []byte) {
		payload.Store(&w)
		var answers [2]string
		for k, m := range mods {
			inst, err := m.NewInstance(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := inst.Configure(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			held, _, err := inst.KeepMarks(ctx)
			ms, _ := plugin.ParseMarks(nil, held)
			answers[k] = fmt.Sprintf("%v %v", ms, err)
			inst.Close(ctx)
		}
		if answers[0] != answers[1] {
			t.Fatalf("go: %s\nc:  %s", answers[0], answers[1])
		}
	})
}
