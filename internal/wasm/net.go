package wasm

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// Endpoint is a named network destination a plugin may dial. The host owns
// the address, TLS and timeouts; the plugin knows only the name.
type Endpoint struct {
	Address     string
	TLS         *tls.Config   // nil: plain TCP
	DialTimeout time.Duration // default 5s
	IOTimeout   time.Duration // per read/write; default 10s
}

// Results of the net_* host functions (negative values are errors).
const (
	netErrNotGranted = -1
	netErrDial       = -2
	netErrIO         = -3
	netErrBadHandle  = -4
	netErrMemory     = -5
	netErrTooMany    = -6
	netEOF           = -7
)

const maxConnsPerInstance = 16

// netState is one instance's open connections.
type netState struct {
	mu      sync.Mutex
	conns   map[int32]net.Conn
	next    int32
	lastErr string
}

func (n *netState) setErr(err error) {
	n.mu.Lock()
	n.lastErr = err.Error()
	n.mu.Unlock()
}

func (n *netState) closeAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for h, c := range n.conns {
		c.Close()
		delete(n.conns, h)
	}
}

// instanceOf returns the instance mod is (nil for a module that is not,
// or no longer, an instance of m).
func (m *Module) instanceOf(mod api.Module) *Instance {
	v, _ := m.instances.Load(mod)
	inst, _ := v.(*Instance)
	return inst
}

// netOf returns the network state of the instance mod is, or nil.
func (m *Module) netOf(mod api.Module) *netState {
	if inst := m.instanceOf(mod); inst != nil {
		return inst.net
	}
	return nil
}

// netFunctions are the network host functions (docs/plugin-abi.md).
func (m *Module) netFunctions() map[string]api.GoModuleFunc {
	i32 := func(v int32) uint64 { return uint64(uint32(v)) }
	return map[string]api.GoModuleFunc{
		// net_dial(name_ptr, name_len) -> handle | error
		"net_dial": func(ctx context.Context, mod api.Module, stack []uint64) {
			ns := m.netOf(mod)
			name, ok := mod.Memory().Read(uint32(stack[0]), uint32(stack[1]))
			if !ok || ns == nil {
				stack[0] = i32(netErrMemory)
				return
			}
			ep, granted := m.opts.Grants.Endpoints[string(name)]
			if !granted {
				ns.setErr(fmt.Errorf("endpoint %q is not granted (allow { endpoint %q { ... } })", name, name))
				m.log().Warn("plugin dialled an endpoint it was not granted", "endpoint", string(name))
				stack[0] = i32(netErrNotGranted)
				return
			}
			ns.mu.Lock()
			n := len(ns.conns)
			ns.mu.Unlock()
			if n >= maxConnsPerInstance {
				ns.setErr(fmt.Errorf("more than %d open connections", maxConnsPerInstance))
				stack[0] = i32(netErrTooMany)
				return
			}
			timeout := ep.DialTimeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			d := &net.Dialer{Timeout: timeout}
			if inst := m.instanceOf(mod); inst != nil && inst.deadline != 0 {
				// The dial counts against the operation's time budget,
				// which the stop flag cannot enforce in a host function.
				// (Host functions run on the operation's goroutine, the
				// one that sets the deadline.)
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, inst.deadline-monoNow())
				defer cancel()
			}
			var c net.Conn
			var err error
			if ep.TLS != nil {
				c, err = (&tls.Dialer{NetDialer: d, Config: ep.TLS}).DialContext(ctx, "tcp", ep.Address)
			} else {
				c, err = d.DialContext(ctx, "tcp", ep.Address)
			}
			if err != nil {
				ns.setErr(err)
				stack[0] = i32(netErrDial)
				return
			}
			ns.mu.Lock()
			ns.next++
			h := ns.next
			ns.conns[h] = &timedConn{Conn: c, io: ep.IOTimeout}
			ns.mu.Unlock()
			stack[0] = i32(h)
		},
		// net_write(handle, ptr, len) -> len | error: writes everything.
		"net_write": func(ctx context.Context, mod api.Module, stack []uint64) {
			ns, c := m.conn(mod, stack[0])
			if c == nil {
				stack[0] = i32(netErrBadHandle)
				return
			}
			b, ok := mod.Memory().Read(uint32(stack[1]), uint32(stack[2]))
			if !ok {
				stack[0] = i32(netErrMemory)
				return
			}
			tc := c.(*timedConn)
			tc.Conn.SetWriteDeadline(time.Now().Add(m.withinBudget(mod, tc.ioTimeout())))
			if _, err := tc.Conn.Write(b); err != nil {
				ns.setErr(err)
				stack[0] = i32(netErrIO)
				return
			}
			stack[0] = i32(int32(len(b)))
		},
		// net_read(handle, ptr, cap, timeout_ms) -> n | 0 (timeout) | error
		"net_read": func(ctx context.Context, mod api.Module, stack []uint64) {
			ns, c := m.conn(mod, stack[0])
			if c == nil {
				stack[0] = i32(netErrBadHandle)
				return
			}
			p, n, ms := uint32(stack[1]), uint32(stack[2]), int32(stack[3])
			if uint64(p)+uint64(n) > uint64(mod.Memory().Size()) {
				stack[0] = i32(netErrMemory)
				return
			}
			// Read straight into the plugin's memory.
			buf, _ := mod.Memory().Read(p, n)
			tc := c.(*timedConn)
			wait := time.Duration(ms) * time.Millisecond
			if wait <= 0 || (tc.io > 0 && wait > tc.io) {
				wait = tc.ioTimeout()
			}
			wait = m.withinBudget(mod, wait)
			tc.Conn.SetReadDeadline(time.Now().Add(wait))
			k, err := tc.Conn.Read(buf)
			if k > 0 {
				stack[0] = i32(int32(k))
				return
			}
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				stack[0] = 0
			case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
				ns.setErr(err)
				stack[0] = i32(netEOF)
			default:
				if err != nil {
					ns.setErr(err)
				}
				stack[0] = i32(netErrIO)
			}
		},
		// net_close(handle) -> 0 | error
		"net_close": func(ctx context.Context, mod api.Module, stack []uint64) {
			ns := m.netOf(mod)
			if ns == nil {
				stack[0] = i32(netErrBadHandle)
				return
			}
			ns.mu.Lock()
			c, ok := ns.conns[int32(stack[0])]
			delete(ns.conns, int32(stack[0]))
			ns.mu.Unlock()
			if !ok {
				stack[0] = i32(netErrBadHandle)
				return
			}
			c.Close()
			stack[0] = 0
		},
		// net_error(ptr, cap) -> n: the last error's message.
		"net_error": func(ctx context.Context, mod api.Module, stack []uint64) {
			ns := m.netOf(mod)
			if ns == nil {
				stack[0] = 0
				return
			}
			ns.mu.Lock()
			msg := ns.lastErr
			ns.mu.Unlock()
			if uint32(len(msg)) > uint32(stack[1]) {
				msg = msg[:stack[1]]
			}
			if !mod.Memory().Write(uint32(stack[0]), []byte(msg)) {
				stack[0] = i32(netErrMemory)
				return
			}
			stack[0] = i32(int32(len(msg)))
		},
	}
}

// withinBudget shortens a wait so that it ends with the operation's time
// budget: the stop flag that enforces the budget cannot interrupt a host
// function, so one that blocked past it would overrun the call (and the
// instance would be discarded for it). Host functions run on the
// operation's goroutine, the one that sets the deadline.
func (m *Module) withinBudget(mod api.Module, wait time.Duration) time.Duration {
	if inst := m.instanceOf(mod); inst != nil && inst.deadline != 0 {
		left := inst.deadline - monoNow()
		// Leave the plugin a moment to act on what it read.
		left -= left / 10
		if left < time.Millisecond {
			left = time.Millisecond
		}
		wait = min(wait, left)
	}
	return wait
}

func (m *Module) conn(mod api.Module, h uint64) (*netState, net.Conn) {
	ns := m.netOf(mod)
	if ns == nil {
		return nil, nil
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return ns, ns.conns[int32(h)]
}

// timedConn applies the endpoint's I/O timeout to writes.
type timedConn struct {
	net.Conn
	io time.Duration
}

func (c *timedConn) ioTimeout() time.Duration {
	if c.io > 0 {
		return c.io
	}
	return 10 * time.Second
}

func (c *timedConn) Write(b []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.ioTimeout()))
	return c.Conn.Write(b)
}
