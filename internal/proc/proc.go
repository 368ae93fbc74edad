// Package proc starts and reaps supervised processes so that they never
// outlive the host and signals never reach a recycled pid.
//
//   - Every process leads its own process group; Kill and Signal address the
//     group, so a worker's children go with it.
//   - The kernel sends SIGKILL to a process when the thread that started it
//     dies (PR_SET_PDEATHSIG). The Go runtime may retire any thread, so all
//     processes are started from one goroutine locked to its OS thread for
//     the life of the program.
//   - Wait observes the exit without reaping (waitid WNOWAIT), kills what is
//     left of the group while the leader's pid still pins the group id, and
//     only then reaps.
package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

type startReq struct {
	cmd  *exec.Cmd
	done chan error
}

var (
	spawnOnce sync.Once
	spawnCh   chan startReq
)

func spawner() {
	runtime.LockOSThread() // never unlocked: this thread is every child's parent
	for req := range spawnCh {
		req.done <- req.cmd.Start()
	}
}

// Start starts cmd in a new process group with SIGKILL as its parent-death
// signal. cmd.SysProcAttr may carry credentials; Setpgid and Pdeathsig are
// set here.
func Start(cmd *exec.Cmd) (*Process, error) {
	spawnOnce.Do(func() {
		spawnCh = make(chan startReq)
		go spawner()
	})
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	done := make(chan error, 1)
	spawnCh <- startReq{cmd, done}
	if err := <-done; err != nil {
		return nil, err
	}
	return &Process{cmd: cmd, pid: cmd.Process.Pid}, nil
}

// Process is a started process. Its methods are safe for concurrent use;
// Signal and Kill after the process was reaped do nothing.
type Process struct {
	cmd *exec.Cmd
	pid int

	mu     sync.Mutex
	reaped bool
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.pid }

// Signal sends sig to the process's group. It is a no-op once the process
// has been reaped, so it never reaches a recycled pid.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return nil
	}
	err := unix.Kill(-p.pid, sig)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

// Kill sends SIGKILL to the process's group. It is idempotent.
func (p *Process) Kill() error { return p.Signal(syscall.SIGKILL) }

// Wait blocks until the process exits, kills whatever else is left in its
// process group, reaps it and returns its state.
func (p *Process) Wait() (*os.ProcessState, error) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil && !errors.Is(err, unix.ECHILD) {
			return nil, fmt.Errorf("waitid %d: %w", p.pid, err)
		}
		break
	}
	// The leader is a zombie: its pid and so the group id cannot be
	// reused yet. Take the rest of the group down with it.
	p.Kill()
	p.mu.Lock()
	p.reaped = true
	p.mu.Unlock()
	err := p.cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return p.cmd.ProcessState, err
	}
	return p.cmd.ProcessState, nil
}

// ExitDescription describes how a process ended: its exit code, or the
// signal that killed it (with the code -1).
func ExitDescription(st *os.ProcessState) (code int, sig syscall.Signal, signaled bool) {
	ws, ok := st.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return -1, ws.Signal(), true
	}
	return st.ExitCode(), 0, false
}

// SignalName returns "SIGKILL" style names.
func SignalName(s syscall.Signal) string {
	if n := unix.SignalName(s); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(s))
}
