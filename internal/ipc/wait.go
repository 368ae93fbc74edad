package ipc

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// WaitReadable waits up to d for c to have something to read (or to be
// closed or fail). It is how a reader of a shared-memory ring polls the
// ring while still answering the socket at once. It reports true when the
// socket is worth reading, including when it cannot tell.
func WaitReadable(c syscall.Conn, d time.Duration) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return true
	}
	ready := true
	cerr := rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		ts := unix.NsecToTimespec(d.Nanoseconds())
		n, err := unix.Ppoll(fds, &ts, nil)
		ready = err != nil && err != unix.EINTR || n > 0
	})
	return ready || cerr != nil
}
