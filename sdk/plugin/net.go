package plugin

import (
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// Conn is a connection to a named endpoint that plugins.hcl granted to the
// transport (allow { endpoint "name" { ... } }). The host owns the address,
// TLS and timeouts; the plugin sees a byte stream. A Conn is closed with
// its instance if the plugin does not close it.
type Conn struct{ h int32 }

// ErrTimeout is returned by Read when nothing arrived in time.
var ErrTimeout = errors.New("timeout")

// Dial connects to a granted endpoint.
func Dial(endpoint string) (*Conn, error) {
	h := netDial(endpoint)
	if h < 0 {
		return nil, netErr("dial "+endpoint, h)
	}
	return &Conn{h: h}, nil
}

// Write writes all of b, within the endpoint's I/O timeout.
func (c *Conn) Write(b []byte) error {
	if n := netWrite(c.h, b); n < 0 {
		return netErr("write", n)
	}
	return nil
}

// Read reads into b, waiting at most timeout (capped by the endpoint's
// I/O timeout and by what is left of the call's time budget; a timeout
// under a millisecond waits one). It returns ErrTimeout if nothing arrived
// and io.EOF when the peer closed.
func (c *Conn) Read(b []byte, timeout time.Duration) (int, error) {
	// net_read takes whole milliseconds, and 0 means the endpoint's I/O
	// timeout: a wait that rounded down to 0 would block for that long.
	ms := max(int32(min(timeout, time.Duration(math.MaxInt32)*time.Millisecond)/time.Millisecond), 1)
	n := netRead(c.h, b, ms)
	switch {
	case n > 0:
		return int(n), nil
	case n == 0:
		return 0, ErrTimeout
	case n == -7:
		return 0, io.EOF
	}
	return 0, netErr("read", n)
}

// Close closes the connection.
func (c *Conn) Close() error {
	if n := netClose(c.h); n < 0 {
		return netErr("close", n)
	}
	return nil
}

var netErrNames = map[int32]string{-1: "endpoint not granted", -2: "dial failed", -3: "i/o error",
	-4: "bad handle", -5: "buffer outside memory", -6: "too many connections", -7: "connection closed"}

func netErr(op string, code int32) error {
	msg := netLastError()
	name := netErrNames[code]
	if name == "" {
		name = fmt.Sprintf("error %d", code)
	}
	if msg != "" {
		return fmt.Errorf("%s: %s: %s", op, name, msg)
	}
	return fmt.Errorf("%s: %s", op, name)
}
