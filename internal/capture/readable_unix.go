//go:build unix

package capture

import (
	"io"
	"syscall"

	"golang.org/x/sys/unix"
)

// readable reports whether r, a file, has something to read right now:
// data, or its end (every writer of a pipe gone). It reports false for a
// reader that is not a file.
func readable(r io.Reader) bool {
	sc, ok := r.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ready := false
	rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		ready = err == nil && n > 0 && fds[0].Revents != 0
	})
	return ready
}
