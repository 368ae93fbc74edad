// Package network is the reference network transport: it ships batches to
// a logtk log server over wire protocol v1 (docs/wire-protocol.md) through
// an endpoint the host dials for it, and acknowledges a batch to the host
// only when the server has acknowledged storing it. See README.md.
package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logtk/logtk/sdk/plugin"
)

// Info describes the plugin.
var Info = plugin.Info{
	Name:    "network",
	Version: "1.0.0",
	Config: []plugin.Field{
		{Name: "endpoint", Type: plugin.TypeString, Required: true, Doc: "name of the endpoint granted in allow { endpoint \"name\" { ... } }"},
		{Name: "token", Type: plugin.TypeString, Doc: "the server's secret token (or token_file)"},
		{Name: "token_file", Type: plugin.TypeFile, Doc: "a file holding the token; surrounding whitespace is ignored"},
		{Name: "sender", Type: plugin.TypeString, Required: true, Doc: "this host's stable identity, [A-Za-z0-9._-]: the server drops retransmissions per sender"},
		{Name: "application", Type: plugin.TypeString, Required: true, Doc: "the server keeps a directory per application"},
		{Name: "format", Type: plugin.TypeString, Doc: `what the records are; default "logtk.v1.Record" (the protobuf format without a schema)`},
		{Name: "hostname", Type: plugin.TypeString, Doc: "this machine's name, sent in AUTH; the server stamps it on every record it stores; default none"},
		{Name: "ack_timeout", Type: plugin.TypeString, Doc: `how long to wait for the server's acknowledgement; default "10s"`},
	},
}

// frameType is a frame type of wire protocol v1. It mirrors wire.Type
// (internal/wire), which the plugin cannot import: that package builds on
// internal/ipc and the net package, neither of which builds for wasip1.
// TestFrameTypesAreWires checks that the two agree.
type frameType byte

// Frame types of wire protocol v1.
const (
	tAuth    frameType = 0x01
	tWelcome frameType = 0x02
	tData    frameType = 0x03
	tAck     frameType = 0x04
	tPing    frameType = 0x05
	tPong    frameType = 0x06
	tClose   frameType = 0x07
)

// String names a frame type as docs/wire-protocol.md does.
func (t frameType) String() string {
	switch t {
	case tAuth:
		return "AUTH"
	case tWelcome:
		return "WELCOME"
	case tData:
		return "DATA"
	case tAck:
		return "ACK"
	case tPing:
		return "PING"
	case tPong:
		return "PONG"
	case tClose:
		return "CLOSE"
	}
	return fmt.Sprintf("unknown (0x%02x)", byte(t))
}

// Transport is the network transport.
type Transport struct {
	cfg struct {
		Endpoint    string `json:"endpoint"`
		Token       string `json:"token"`
		TokenFile   []byte `json:"token_file"`
		Sender      string `json:"sender"`
		Application string `json:"application"`
		Format      string `json:"format"`
		Hostname    string `json:"hostname"`
		AckTimeout  string `json:"ack_timeout"`
	}
	token      []byte
	ackTimeout time.Duration

	conn     *plugin.Conn
	inflight map[uint64]struct{} // sent, not yet acknowledged
	// quiet is how long reads have waited in vain since the last ack of
	// a batch on its way: the ack timeout is measured by it, not by a clock
	// (the sandbox's clock is a fake unless granted; the waits are real,
	// the host enforces them).
	quiet       time.Duration
	done        []uint64      // acknowledged, not yet reported by Poll
	stored      uint64        // the server's last stored batch for this sender
	held        []plugin.Mark // WELCOME's held: what the server has of each worker instance
	maxFrame    int
	maxInFlight int    // the server's limit on unacknowledged batches (0: none announced)
	in          []byte // bytes read, not yet consumed
	out         []byte
	readBuf     [64 << 10]byte
}

// New returns an unconfigured Transport.
func New() *Transport { return &Transport{} }

var (
	_ plugin.AsyncTransport = (*Transport)(nil)
	_ plugin.Configurer     = (*Transport)(nil)
	_ plugin.MarkKeeper     = (*Transport)(nil)
)

// Configure implements plugin.Configurer.
func (t *Transport) Configure(config []byte) error {
	if err := plugin.DecodeConfig(config, &t.cfg); err != nil {
		return err
	}
	switch {
	case t.cfg.Endpoint == "":
		return errors.New("endpoint is required")
	case t.cfg.Sender == "" || t.cfg.Application == "":
		return errors.New("sender and application are required")
	case t.cfg.Token != "" && len(t.cfg.TokenFile) > 0:
		return errors.New("give token or token_file, not both")
	}
	t.token = []byte(t.cfg.Token)
	if len(t.cfg.TokenFile) > 0 {
		t.token = trimSpace(t.cfg.TokenFile)
	}
	if len(t.token) == 0 {
		return errors.New("token or token_file is required")
	}
	if t.cfg.Format == "" {
		t.cfg.Format = "logtk.v1.Record"
	}
	t.ackTimeout = 10 * time.Second
	if t.cfg.AckTimeout != "" {
		d, err := time.ParseDuration(t.cfg.AckTimeout)
		if err != nil || d <= 0 {
			return fmt.Errorf("ack_timeout %q is not a positive duration", t.cfg.AckTimeout)
		}
		t.ackTimeout = d
	}
	return nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// Open implements plugin.Transport. The connection is made by the first
// Write, so that a server that is down does not fail the start.
func (t *Transport) Open() error { return nil }

// Marks implements plugin.MarkKeeper: it connects, and returns what the
// server's WELCOME says it holds of each worker instance of this sender
// and application (the highest seq stored). The server stores a sender's
// batches in order, so each is held with every batch before it. A server
// that cannot be reached fails it with Retry, as a write would.
func (t *Transport) Marks() ([]plugin.Mark, error) {
	if t.conn == nil {
		if err := t.connect(); err != nil {
			t.drop()
			return nil, plugin.Retry(err)
		}
	}
	return t.held, nil
}

// Write implements plugin.Transport: it returns nil only when the server
// acknowledged the batch (or said it had it already). It is WriteAsync
// followed by waiting for that batch's ack; the host uses the
// asynchronous pair.
func (t *Transport) Write(b *plugin.Batch) error {
	if err := t.WriteAsync(b); err != nil {
		return err
	}
	defer func() { t.done = t.done[:0] }()
	for {
		if _, waiting := t.inflight[b.ID()]; !waiting {
			return nil
		}
		if err := t.waitForAcks(); err != nil {
			return err
		}
	}
}

// waitForAcks reads acks for up to a second and fails with Retry once the
// server has been quiet for ack_timeout with batches on their way.
func (t *Transport) waitForAcks() error {
	if err := t.readAcks(min(time.Second, t.ackTimeout)); err != nil {
		return err
	}
	if len(t.inflight) > 0 && t.quiet >= t.ackTimeout {
		n := len(t.inflight)
		t.drop()
		return plugin.Retry(fmt.Errorf("no ack within %s with %d batches on their way", t.ackTimeout, n))
	}
	return nil
}

// WriteAsync implements plugin.AsyncTransport: it sends the batch and
// returns; Poll reports it once the server acknowledged it.
func (t *Transport) WriteAsync(b *plugin.Batch) error {
	if t.inflight == nil {
		t.inflight = map[uint64]struct{}{}
	}
	if b.Len() == 0 {
		t.done = append(t.done, b.ID())
		return nil
	}
	if t.conn == nil {
		if err := t.connect(); err != nil {
			t.drop()
			return plugin.Retry(err)
		}
	}
	if b.ID() <= t.stored {
		t.done = append(t.done, b.ID()) // stored before a reconnect
		return nil
	}
	// The server's limit on unacknowledged batches: wait for acks first.
	for t.maxInFlight > 0 && len(t.inflight) >= t.maxInFlight {
		if err := t.waitForAcks(); err != nil {
			return err
		}
	}
	t.out = appendHeader(t.out[:0], tData, protowire.SizeVarint(b.ID())+len(b.Bytes()))
	t.out = protowire.AppendVarint(t.out, b.ID())
	t.out = append(t.out, b.Bytes()...)
	if t.maxFrame > 0 && len(t.out)-5 > t.maxFrame {
		return fmt.Errorf("batch %d is %d bytes, over the server's frame limit of %d: lower the batch size", b.ID(), len(t.out)-5, t.maxFrame)
	}
	if err := t.conn.Write(t.out); err != nil {
		t.drop()
		return plugin.Retry(err)
	}
	if len(t.inflight) == 0 {
		t.quiet = 0 // the wait for this batch's ack starts now
	}
	t.inflight[b.ID()] = struct{}{}
	return nil
}

// Poll implements plugin.AsyncTransport: it waits up to timeout for
// acknowledgements and reports them. A batch unacknowledged for longer
// than ack_timeout, or a lost connection, makes it fail with Retry: the
// host then sends everything unacknowledged again. With nothing on its way
// (the host polls an idle transport every few seconds) it answers the
// server's PINGs, so that a quiet connection stays open; a connection the
// server closed meanwhile is dropped, and the next batch reconnects.
func (t *Transport) Poll(timeout time.Duration) ([]uint64, error) {
	err := t.readAcks(timeout)
	if err == nil && len(t.inflight) > 0 && t.quiet >= t.ackTimeout {
		n := len(t.inflight)
		t.drop()
		err = plugin.Retry(fmt.Errorf("no ack within %s with %d batches on their way", t.ackTimeout, n))
	}
	ids := t.done
	t.done = nil
	return ids, err
}

// readAcks reads the server's frames, waiting up to wait for the first
// and then taking only those already read, adding the acknowledged
// batches to t.done. It answers PINGs; with nothing on its way it reads
// for them alone.
func (t *Transport) readAcks(wait time.Duration) error {
	idle := len(t.inflight) == 0
	if t.conn == nil {
		if idle {
			return nil
		}
		return plugin.Retry(errors.New("not connected"))
	}
	for idle || len(t.inflight) > 0 {
		typ, p, err := t.readFrame(wait)
		if errors.Is(err, plugin.ErrTimeout) {
			return nil
		}
		if err != nil {
			t.drop()
			if idle {
				return nil // nothing was on its way: the next batch reconnects
			}
			return plugin.Retry(fmt.Errorf("waiting for acks: %w", err))
		}
		wait = 0 // take the frames already read, then return
		switch typ {
		case tAck:
			id, n := protowire.ConsumeVarint(p)
			if n < 0 {
				t.drop()
				return plugin.Retry(errors.New("malformed ACK"))
			}
			if _, ok := t.inflight[id]; ok {
				delete(t.inflight, id)
				t.done = append(t.done, id)
				t.stored = max(t.stored, id)
				t.quiet = 0 // only an ack counts: a stuck server still PINGs
			}
		case tPing:
			if err := t.conn.Write(append(appendHeader(nil, tPong, len(p)), p...)); err != nil {
				t.drop()
				if idle {
					return nil
				}
				return plugin.Retry(err)
			}
		case tClose:
			t.drop()
			if idle {
				return nil
			}
			return plugin.Retry(fmt.Errorf("server closed the connection: %s", describeClose(p)))
		}
	}
	return nil
}

func appendHeader(b []byte, typ frameType, n int) []byte {
	return append(binary.LittleEndian.AppendUint32(b, uint32(n+1)), byte(typ))
}

func (t *Transport) connect() error {
	c, err := plugin.Dial(t.cfg.Endpoint)
	if err != nil {
		return err
	}
	t.conn, t.in = c, t.in[:0]
	var a []byte
	a = protowire.AppendTag(a, 1, protowire.VarintType)
	a = protowire.AppendVarint(a, 1)
	a = protowire.AppendTag(a, 2, protowire.BytesType)
	a = protowire.AppendBytes(a, t.token)
	for i, s := range []string{t.cfg.Sender, t.cfg.Application, t.cfg.Format, t.cfg.Hostname} {
		if s == "" {
			continue
		}
		a = protowire.AppendTag(a, protowire.Number(3+i), protowire.BytesType)
		a = protowire.AppendString(a, s)
	}
	if err := c.Write(append(appendHeader(nil, tAuth, len(a)), a...)); err != nil {
		return err
	}
	typ, p, err := t.readFrame(t.ackTimeout)
	if err != nil {
		return fmt.Errorf("waiting for WELCOME: %w", err)
	}
	switch typ {
	case tWelcome:
	case tClose:
		return fmt.Errorf("server refused the connection: %s", describeClose(p))
	default:
		return fmt.Errorf("expected WELCOME, got %s", typ)
	}
	w, err := parseWelcome(p)
	if err != nil {
		return err
	}
	t.stored, t.maxFrame, t.maxInFlight, t.held = w.stored, w.maxFrame, w.maxInFlight, w.held
	return nil
}

// welcome is what the plugin uses of a WELCOME.
type welcome struct {
	stored      uint64 // the highest batch id the server has from this sender
	maxFrame    int    // 0: not announced
	maxInFlight int    // 0: not announced
	held        []plugin.Mark
}

// parseWelcome reads the fields of a WELCOME the plugin uses.
func parseWelcome(p []byte) (welcome, error) {
	var w welcome
	for len(p) > 0 {
		num, typ, n := protowire.ConsumeTag(p)
		if n < 0 {
			return welcome{}, errors.New("malformed WELCOME")
		}
		p = p[n:]
		v, m := protowire.ConsumeVarint(p)
		if typ != protowire.VarintType {
			m = protowire.ConsumeFieldValue(num, typ, p)
		}
		if m < 0 {
			return welcome{}, errors.New("malformed WELCOME")
		}
		if num == 6 && typ == protowire.BytesType {
			h, err := parseWorkerSeq(p[:m])
			if err != nil {
				return welcome{}, err
			}
			w.held = append(w.held, h)
		}
		p = p[m:]
		if typ != protowire.VarintType {
			continue
		}
		switch num {
		case 2:
			w.maxFrame = int(min(v, 1<<30))
		case 3:
			w.maxInFlight = int(min(v, 1<<16))
		case 5:
			w.stored = v
		}
	}
	return w, nil
}

// parseWorkerSeq reads a WELCOME's WorkerSeq (the field with its length).
func parseWorkerSeq(f []byte) (plugin.Mark, error) {
	var m plugin.Mark
	b, n := protowire.ConsumeBytes(f)
	if n < 0 {
		return m, errors.New("malformed WELCOME: held")
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return m, errors.New("malformed WELCOME: held")
		}
		b = b[n:]
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return m, errors.New("malformed WELCOME: held")
		}
		switch {
		case num == 1 && typ == protowire.BytesType:
			w, _ := protowire.ConsumeBytes(b)
			if !utf8.Valid(w) {
				return m, errors.New("malformed WELCOME: a held worker name is not UTF-8")
			}
			m.Worker = string(w)
		case num == 2 && typ == protowire.VarintType:
			v, _ := protowire.ConsumeVarint(b)
			if v > math.MaxUint32 {
				return m, errors.New("malformed WELCOME: a held worker index is too large")
			}
			m.Index = uint32(v)
		case num == 3 && typ == protowire.VarintType:
			m.Seq, _ = protowire.ConsumeVarint(b)
		}
		b = b[n:]
	}
	return m, nil
}

// splitFrame takes one complete frame off the front of in.
func splitFrame(in []byte) (typ frameType, payload, rest []byte, ok bool, err error) {
	if len(in) < 5 {
		return 0, nil, in, false, nil
	}
	n := int(binary.LittleEndian.Uint32(in))
	if n < 1 || n > 16<<20 {
		return 0, nil, in, false, fmt.Errorf("frame length %d from the server", n)
	}
	if len(in) < 4+n {
		return 0, nil, in, false, nil
	}
	return frameType(in[4]), in[5 : 4+n], in[4+n:], true, nil
}

// readFrame returns the next frame: one already read, or one that
// arrives within wait (0: only one already read). A read that waits in
// vain adds its wait to t.quiet (an ack resets it).
// It returns plugin.ErrTimeout when no whole frame came in time.
func (t *Transport) readFrame(wait time.Duration) (frameType, []byte, error) {
	for {
		typ, p, rest, ok, err := splitFrame(t.in)
		if err != nil {
			return 0, nil, err
		}
		if ok {
			frame := append([]byte(nil), p...)
			t.in = append(t.in[:0], rest...)
			return typ, frame, nil
		}
		if wait <= 0 {
			return 0, nil, plugin.ErrTimeout
		}
		k, err := t.conn.Read(t.readBuf[:], wait)
		if errors.Is(err, plugin.ErrTimeout) {
			t.quiet += wait
			return 0, nil, plugin.ErrTimeout
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, nil, errors.New("server closed the connection")
			}
			return 0, nil, err
		}
		t.in = append(t.in, t.readBuf[:k]...)
	}
}

func describeClose(p []byte) string {
	var code uint64
	var reason string
	for len(p) > 0 {
		num, typ, n := protowire.ConsumeTag(p)
		if n < 0 {
			break
		}
		p = p[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			code, n = protowire.ConsumeVarint(p)
		case num == 2 && typ == protowire.BytesType:
			var s []byte
			s, n = protowire.ConsumeBytes(p)
			reason = string(s)
		default:
			n = protowire.ConsumeFieldValue(num, typ, p)
		}
		if n < 0 {
			break
		}
		p = p[n:]
	}
	return fmt.Sprintf("code %d: %s", code, reason)
}

// drop forgets the connection and what was on its way: the host resends
// it after a Retry.
func (t *Transport) drop() {
	if t.conn != nil {
		t.conn.Close()
		t.conn = nil
	}
	clear(t.inflight)
}

// Flush implements plugin.Transport: every acknowledged batch is stored.
func (t *Transport) Flush() error { return nil }

// Close implements plugin.Transport.
func (t *Transport) Close() error {
	if t.conn != nil {
		var c []byte
		c = protowire.AppendTag(c, 1, protowire.VarintType)
		c = protowire.AppendVarint(c, 1000)
		t.conn.Write(append(appendHeader(nil, tClose, len(c)), c...))
		t.drop()
	}
	return nil
}
