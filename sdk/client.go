package sdk

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/logtk/logtk/internal/ipc"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
	"github.com/logtk/logtk/record/textfmt"
)

// Version is the SDK's version, sent to the host in the hello frame.
const Version = "0.1.0"

// helloTimeout bounds the wait for the host's welcome when connecting.
const helloTimeout = 5 * time.Second

// ErrNoHost is returned by Send when the program is not running under
// logtk-host (or the channel to it has been lost).
var ErrNoHost = errors.New("logtk: not connected to a logtk host")

// client is the process-wide channel to the host, or the stand-alone
// fallback when there is none.
type client struct {
	conn       *net.UnixConn // nil when stand-alone
	w          io.Writer     // where frames go: conn, or a test's writer
	broken     atomic.Bool   // set once the channel failed; fallback from then on
	maxPayload int           // the largest frame payload the host accepts
	maxRecord  int           // the largest encoded record sent
	welcome    *logtkv1.Welcome
	ring       *ringWriter // nil without a shared-memory ring
	// sockRecords counts records sent as RECORD frames (not RECORD_AT).
	sockRecords atomic.Uint64

	fbMu     sync.Mutex // serialises fallback writes
	fallback io.Writer

	msgMu      sync.Mutex
	onMsg      []func([]byte)
	readerOnce sync.Once
}

var (
	defaultOnce   sync.Once
	defaultClient *client
)

// theClient returns the process-wide client, connecting on first use.
func theClient() *client {
	defaultOnce.Do(func() { defaultClient = connect(os.Stderr) })
	return defaultClient
}

// newClient returns a client writing frames to w (nil: stand-alone) and
// text to fallback.
func newClient(w, fallback io.Writer) *client {
	return &client{w: w, fallback: fallback, maxPayload: ipc.DefaultMaxPayload, maxRecord: ipc.DefaultMaxPayload}
}

// connect opens the channel announced in the environment. Any failure
// leaves a client in stand-alone mode writing text to fallback; a warning
// says why, unless no host was announced at all.
func connect(fallback io.Writer) *client {
	c := newClient(nil, fallback)
	fdStr, ok := os.LookupEnv(ipc.EnvFD)
	if !ok {
		c.attachRing(false)
		return c
	}
	// Children of the worker must not believe they have the channel.
	os.Unsetenv(ipc.EnvFD)
	conn, err := dial(fdStr)
	if err == nil {
		err = c.handshake(conn)
		if err != nil {
			conn.Close()
		}
	}
	if err != nil {
		fmt.Fprintf(fallback, "logtk: %s=%s announced a host channel but it is unusable (%v); logging to stderr\n", ipc.EnvFD, fdStr, err)
		c.attachRing(false)
		return c
	}
	c.conn, c.w = conn, conn
	c.attachRing(true)
	return c
}

func dial(fdStr string) (*net.UnixConn, error) {
	fd, err := strconv.Atoi(fdStr)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("bad file descriptor %q", fdStr)
	}
	f := os.NewFile(uintptr(fd), "logtk-ipc")
	if f == nil {
		return nil, fmt.Errorf("file descriptor %d is not open", fd)
	}
	// FileConn duplicates the descriptor with close-on-exec set; closing
	// the original keeps it from leaking into the worker's children.
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("file descriptor %d is not a unix socket", fd)
	}
	return uc, nil
}

func (c *client) handshake(conn *net.UnixConn) error {
	hello, _ := proto.Marshal(&logtkv1.Hello{
		ProtocolVersion: ipc.ProtocolVersion,
		Sdk:             "logtk-go/" + Version,
		Pid:             int64(os.Getpid()),
	})
	conn.SetDeadline(time.Now().Add(helloTimeout))
	defer conn.SetDeadline(time.Time{})
	if _, err := conn.Write(ipc.AppendFrame(nil, ipc.TypeHello, hello)); err != nil {
		return fmt.Errorf("sending hello: %w", err)
	}
	// Read the welcome byte by byte-exact framing: a bufio.Reader here
	// would swallow frames meant for the message reader started later.
	t, payload, err := readFrameExact(conn)
	if err != nil {
		return fmt.Errorf("waiting for welcome: %w", err)
	}
	switch t {
	case ipc.TypeWelcome:
	case ipc.TypeHostGoodbye:
		var g logtkv1.Goodbye
		proto.Unmarshal(payload, &g)
		return fmt.Errorf("host refused the channel: %s", g.Reason)
	default:
		return fmt.Errorf("expected a welcome frame, got %s", t)
	}
	var w logtkv1.Welcome
	if err := proto.Unmarshal(payload, &w); err != nil {
		return fmt.Errorf("decoding welcome: %w", err)
	}
	if w.ProtocolVersion != ipc.ProtocolVersion {
		return fmt.Errorf("host speaks IPC protocol %d, this SDK speaks %d", w.ProtocolVersion, ipc.ProtocolVersion)
	}
	if w.MaxFrameBytes > 0 {
		c.maxPayload = int(w.MaxFrameBytes)
		c.maxRecord = c.maxPayload
	}
	c.welcome = &w
	return nil
}

// readFrameExact reads one frame without reading past it.
func readFrameExact(r io.Reader) (ipc.Type, []byte, error) {
	var hdr [ipc.HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(uint32(hdr[0]) | uint32(hdr[1])<<8 | uint32(hdr[2])<<16 | uint32(hdr[3])<<24)
	if n < 1 || n > 1<<20 {
		return 0, nil, fmt.Errorf("frame length %d out of range", n)
	}
	p := make([]byte, n-1)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return ipc.Type(hdr[4]), p, nil
}

// connected reports whether records go to a host.
func (c *client) connected() bool { return c.w != nil && !c.broken.Load() }

// writeFrame sends one complete frame. When it returns nil the frame is in
// the kernel's socket buffer, owned by the host's end: it survives the
// death of this process. Concurrent calls never interleave frames.
func (c *client) writeFrame(frame []byte) error {
	if !c.connected() {
		return ErrNoHost
	}
	// net.Conn's Write holds the descriptor's write lock for the whole
	// buffer, so frames from concurrent callers never interleave.
	if _, err := c.w.Write(frame); err != nil {
		if c.broken.CompareAndSwap(false, true) {
			c.fallbackText(fmt.Appendf(nil, "logtk: lost the channel to the host (%v); logging to stderr from now on\n", err))
		}
		return err
	}
	return nil
}

// writeRecord sends an encoded record frame, or renders it as text on the
// fallback writer when there is no host.
func (c *client) writeRecord(frame []byte) {
	if c.ring != nil && c.connected() {
		if c.ringRecord(frame) {
			return
		}
	} else if c.writeFrame(frame) == nil {
		c.sockRecords.Add(1)
		return
	}
	c.fallbackText(textfmt.AppendEncoded(nil, frame[ipc.HeaderSize:]))
}

func (c *client) fallbackText(b []byte) {
	c.fbMu.Lock()
	c.fallback.Write(b)
	c.fbMu.Unlock()
}

// onMessage registers fn and starts the reader of host frames.
func (c *client) onMessage(fn func([]byte)) {
	c.msgMu.Lock()
	c.onMsg = append(c.onMsg, fn)
	c.msgMu.Unlock()
	if c.conn == nil {
		return
	}
	c.readerOnce.Do(func() { go c.readLoop() })
}

func (c *client) readLoop() {
	r := ipc.NewReader(c.conn, c.maxPayload)
	for {
		t, p, err := r.Next()
		if err != nil {
			var fe *ipc.FrameError
			if errors.As(err, &fe) {
				continue
			}
			return
		}
		switch t {
		case ipc.TypeHostMessage:
			c.msgMu.Lock()
			fns := c.onMsg
			c.msgMu.Unlock()
			for _, fn := range fns {
				fn(append([]byte(nil), p...))
			}
		case ipc.TypeHostGoodbye:
			var g logtkv1.Goodbye
			proto.Unmarshal(p, &g)
			if c.broken.CompareAndSwap(false, true) {
				c.fallbackText(fmt.Appendf(nil, "logtk: host closed the channel (%s); logging to stderr from now on\n", g.Reason))
			}
			return
		}
	}
}
