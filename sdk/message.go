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
