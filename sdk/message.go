package sdk

import "github.com/logtk/logtk/internal/ipc"

// Send sends a custom message to the host: the seed's process.send(data).
// The host hands payload to its message callback; it is not a log record.
// Send returns ErrNoHost when the program is not running under logtk-host.
// Like a log record, a message is with the host when Send returns nil.
func Send(payload []byte) error {
	c := theClient()
	return c.writeFrame(ipc.AppendFrame(make([]byte, 0, ipc.HeaderSize+len(payload)), ipc.TypeMessage, payload))
}

// OnMessage registers fn to receive the custom messages the host sends to
// this worker (host.Host.Send). fn runs on the SDK's reader goroutine, one
// message at a time, with a payload it may keep. Messages sent before the
// first OnMessage call wait in the channel and are delivered once it is
// made.
func OnMessage(fn func(payload []byte)) { theClient().onMessage(fn) }

// Connected reports whether records go to a logtk host (true) or to
// standard error (false).
func Connected() bool { return theClient().connected() }

// WorkerInfo identifies this process to the host.
type WorkerInfo struct {
	Name        string // worker block name in plugins.hcl
	Index       int    // instance index, 0..count-1
	Incarnation int    // restart count, 0 for the first start
}

// Worker returns this process's identity as the host announced it, and false
// when not running under logtk-host.
func Worker() (WorkerInfo, bool) {
	c := theClient()
	if c.welcome == nil {
		return WorkerInfo{}, false
	}
	w := c.welcome
	return WorkerInfo{Name: w.Worker, Index: int(w.WorkerIndex), Incarnation: int(w.Incarnation)}, true
}

// ChannelStats says how this process's records have travelled to the host.
type ChannelStats struct {
	// Connected is Connected().
	Connected bool
	// Ring is true when the host gave this process a shared-memory ring
	// and the SDK uses it.
	Ring bool
	// RingRecords went through the ring; SocketRecords through the socket
	// (all records without a ring; with one, those too large for it or
	// written while it stayed full).
	RingRecords, SocketRecords uint64
}

// Stats returns the process-wide channel's statistics.
func Stats() ChannelStats {
	c := theClient()
	s := ChannelStats{Connected: c.connected(), SocketRecords: c.sockRecords.Load()}
	if rw := c.ring; rw != nil {
		rw.mu.Lock()
		s.Ring = true
		s.RingRecords = rw.ringRecs
		s.SocketRecords += rw.sockRecs
		rw.mu.Unlock()
	}
	return s
}
