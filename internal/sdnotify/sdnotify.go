// Package sdnotify tells systemd about the service's state, as
// sd_notify(3) does: a datagram to the socket $NOTIFY_SOCKET names, when
// the unit is Type=notify. Without $NOTIFY_SOCKET it does nothing.
package sdnotify

import (
	"net"
	"os"
	"time"
)

// Messages.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
)

// Notify sends state (such as Ready) to systemd. It reports whether it
// was sent: false without $NOTIFY_SOCKET.
func Notify(state string) (bool, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return false, nil
	}
	if path[0] == '@' { // an abstract socket
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return false, err
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(state)); err != nil {
		return false, err
	}
	return true, nil
}
