package host

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/logtk/logtk/config"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
	"github.com/logtk/logtk/record"
)

// readyOf matches the "ready" record of one incarnation of an instance.
func readyOf(name string, idx, inc uint32) func(*logtkv1.Record) bool {
	return func(r *logtkv1.Record) bool {
		return r.Message == "ready" && r.Worker == name && r.WorkerIndex == idx && r.Incarnation == inc
	}
}

func statusOf(t *testing.T, h *Host, name string, idx int) InstanceStatus {
	t.Helper()
	for _, st := range h.Status() {
		if st.ID == (WorkerID{name, idx}) {
			return st
		}
	}
	t.Fatalf("no instance %s#%d in status %+v", name, idx, h.Status())
	return InstanceStatus{}
}

// TestOperatorRestartStopStart: the operator restarts one instance while
// its sibling keeps its process, stops one (it stays stopped and the host
// runs on), starts it again; none of it counts towards the crash-loop
// limit, which still catches a real crash loop afterwards.
func TestOperatorRestartStopStart(t *testing.T) {
	w := testWorker("svc", "sleep", nil)
	w.Count = 2
	w.Restart = config.RestartOnFailure
	w.MaxRestarts = 2
	h, c := startHost(t, Options{}, w)
	wait := func(what string, pred func(*logtkv1.Record) bool) {
		t.Helper()
		c.waitFor(t, 30*time.Second, what, func(recs []*logtkv1.Record) bool { return find(recs, pred) != nil })
	}
	wait("svc#0 ready", readyOf("svc", 0, 0))
	wait("svc#1 ready", readyOf("svc", 1, 0))
	s0, s1 := statusOf(t, h, "svc", 0), statusOf(t, h, "svc", 1)
	if s0.State != StateRunning || s0.PID == 0 || s1.PID == 0 {
		t.Fatalf("before: %+v, %+v", s0, s1)
	}

	// Three restarts: more than max_restarts, none counted.
	for inc := uint32(1); inc <= 3; inc++ {
		if err := h.Restart(WorkerID{"svc", 1}); err != nil {
			t.Fatal(err)
		}
		wait("svc#1 restarted", readyOf("svc", 1, inc))
	}
	if alive(s1.PID) {
		t.Errorf("the restarted instance's first process %d is still alive", s1.PID)
	}
	n1 := statusOf(t, h, "svc", 1)
	if n1.State != StateRunning || n1.PID == s1.PID || n1.Incarnation != 3 || n1.Restarts != 3 || !strings.Contains(n1.LastExit, "SIGTERM") && !strings.Contains(n1.LastExit, "status") {
		t.Errorf("after three restarts: %+v", n1)
	}
	if got := statusOf(t, h, "svc", 0); got.PID != s0.PID || got.Incarnation != 0 {
		t.Errorf("the sibling was touched: %+v, was %+v", got, s0)
	}
	stopRec := find(c.snapshot(), func(r *logtkv1.Record) bool {
		return r.Worker == "svc" && r.WorkerIndex == 1 && strings.Contains(r.Message, "restarting: the operator asked")
	})
	if stopRec == nil || stopRec.Level != logtkv1.Level_LEVEL_INFO {
		t.Errorf("the operator's restart is not an info exit record: %v", stopRec)
	}

	// Stop: it stays stopped, the host runs on.
	if err := h.StopInstance(WorkerID{"svc", 0}); err != nil {
		t.Fatal(err)
	}
	if st := statusOf(t, h, "svc", 0); st.State != StateStopped || st.PID != 0 {
		t.Fatalf("after stop: %+v", st)
	}
	waitGone(t, s0.PID, 10*time.Second)
	select {
	case <-h.Done():
		t.Fatal("the host ended while an instance was stopped by the operator")
	default:
	}
	if err := h.StopInstance(WorkerID{"svc", 0}); err != nil {
		t.Errorf("stopping a stopped instance: %v", err)
	}
	if err := h.StartInstance(WorkerID{"svc", 0}); err != nil {
		t.Fatal(err)
	}
	wait("svc#0 started again", readyOf("svc", 0, 1))
	if err := h.StartInstance(WorkerID{"svc", 0}); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("starting a running instance: %v", err)
	}
	if err := h.Restart(WorkerID{"nope", 0}); err == nil {
		t.Error("restarting an unknown instance succeeded")
	}

	// The crash-loop limit still works: three crashes are one too many.
	for i := range 3 {
		pid := statusOf(t, h, "svc", 1).PID
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		wait("svc#1 after a crash", func(r *logtkv1.Record) bool {
			return r.Worker == "svc" && r.WorkerIndex == 1 && r.Incarnation == uint32(3+i) && strings.Contains(r.Message, "killed by SIGKILL")
		})
		if i < 2 {
			wait("svc#1 back", readyOf("svc", 1, uint32(4+i)))
		}
	}
	c.waitFor(t, 30*time.Second, "svc#1 given up", func([]*logtkv1.Record) bool { return statusOf(t, h, "svc", 1).State == StateGaveUp })
	if ids := h.GaveUp(); len(ids) != 1 || ids[0] != (WorkerID{"svc", 1}) {
		t.Errorf("GaveUp = %v", ids)
	}
	// An instance given up can be started again by hand.
	if err := h.StartInstance(WorkerID{"svc", 1}); err != nil {
		t.Fatal(err)
	}
	wait("svc#1 started by hand", readyOf("svc", 1, 6))
}

// TestScale: scaling up starts instances at the next indexes; scaling
// down stops the highest ones gracefully and leaves the others alone.
func TestScale(t *testing.T) {
	w := testWorker("svc", "sleep", nil)
	h, c := startHost(t, Options{}, w)
	wait := func(what string, pred func(*logtkv1.Record) bool) {
		t.Helper()
		c.waitFor(t, 30*time.Second, what, func(recs []*logtkv1.Record) bool { return find(recs, pred) != nil })
	}
	wait("svc#0 ready", readyOf("svc", 0, 0))
	pid0 := statusOf(t, h, "svc", 0).PID
	if err := h.Scale("svc", 4); err != nil {
		t.Fatal(err)
	}
	for i := range uint32(4) {
		wait("scaled up", readyOf("svc", i, 0))
	}
	st := h.Status()
	if len(st) != 4 {
		t.Fatalf("status after scaling to 4: %+v", st)
	}
	var gone []int
	for _, s := range st[1:] {
		gone = append(gone, s.PID)
	}
	if err := h.Scale("svc", 1); err != nil {
		t.Fatal(err)
	}
	if st := h.Status(); len(st) != 1 || st[0].PID != pid0 {
		t.Fatalf("status after scaling to 1: %+v (svc#0 had pid %d)", st, pid0)
	}
	for _, pid := range gone {
		waitGone(t, pid, 10*time.Second)
	}
	c.waitFor(t, 30*time.Second, "3 graceful stop records", func(recs []*logtkv1.Record) bool {
		return count(recs, msgHas("; stopped by the operator")) == 3
	})
	if err := h.Scale("nope", 2); err == nil {
		t.Error("scaling an unknown worker succeeded")
	}
	if err := h.Scale("svc", 2); err != nil {
		t.Fatal(err)
	}
	wait("scaled up again", readyOf("svc", 1, 0))
}

// TestStartEndedInstance: an instance that ended by its restart policy
// can be started again while the host runs.
func TestStartEndedInstance(t *testing.T) {
	keep := testWorker("svc", "sleep", nil)
	job := testWorker("job", "exit", nil)
	h, c := startHost(t, Options{}, keep, job)
	c.waitFor(t, 30*time.Second, "job ended", func(recs []*logtkv1.Record) bool {
		return find(recs, msgHas("worker exited with status 0")) != nil && statusOf(t, h, "job", 0).State == StateExited
	})
	if err := h.StartInstance(WorkerID{"job", 0}); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, 30*time.Second, "job ran again", func(recs []*logtkv1.Record) bool {
		return count(recs, msgHas("worker exited with status 0")) == 2
	})
}

// TestOverlappingRequests: requests that overlap on one instance are all
// answered (a restart overtaken by a stop says so), the host then stops
// at once, and a restart racing a scale-down never brings back an
// instance scaled away.
func TestOverlappingRequests(t *testing.T) {
	w := testWorker("slow", "ignore-term", nil)
	w.Count = 3
	w.StopTimeout = 300 * time.Millisecond // ignores SIGTERM: killed after this
	h, c := startHost(t, Options{}, w)
	for i := range uint32(3) {
		c.waitFor(t, 30*time.Second, "ready", func(recs []*logtkv1.Record) bool { return find(recs, readyOf("slow", i, 0)) != nil })
	}
	answered := make(chan error, 8)
	for range 3 {
		go func() { answered <- h.Restart(WorkerID{"slow", 0}) }()
		go func() { answered <- h.StopInstance(WorkerID{"slow", 0}) }()
	}
	for range 6 {
		select {
		case <-answered:
		case <-time.After(time.Minute):
			t.Fatal("a request overlapping others was never answered")
		}
	}
	// Scale down while restarting the block: slow#1 and #2 stay gone.
	var pids []int
	for _, st := range h.Status() {
		if st.ID.Index > 0 {
			pids = append(pids, st.PID)
		}
	}
	go func() { answered <- h.Scale("slow", 1) }()
	go func() {
		for i := 1; i < 3; i++ {
			h.Restart(WorkerID{"slow", i})
		}
		answered <- nil
	}()
	for range 2 {
		select {
		case <-answered:
		case <-time.After(time.Minute):
			t.Fatal("scale and restart did not both return")
		}
	}
	for _, st := range h.Status() {
		if st.ID.Index > 0 {
			t.Errorf("an instance scaled away is back: %+v", st)
		}
	}
	for _, pid := range pids {
		waitGone(t, pid, 10*time.Second)
	}
	if n := children(t); n > 1 {
		t.Errorf("%d worker processes after scaling to 1", n)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- h.Stop(t.Context()) }()
	select {
	case <-stopped:
	case <-time.After(time.Minute):
		t.Fatal("the host did not stop after overlapping requests")
	}
}

// children counts this process's child processes that are not zombies.
func children(t *testing.T) int {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range dirs {
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces; fields follow the last ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 && f[0] != "Z" && f[1] == strconv.Itoa(os.Getpid()) {
			n++
		}
	}
	return n
}

// stuckOutput takes nothing until released, as a pipeline whose
// transport fails on a full disk does; then it keeps what it is given.
type stuckOutput struct {
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	got     [][]byte
}

func newStuckOutput() *stuckOutput {
	return &stuckOutput{entered: make(chan struct{}, 1), release: make(chan struct{})}
}

func (o *stuckOutput) WriteBatch(recs [][]byte) error {
	select {
	case o.entered <- struct{}{}:
	default:
	}
	<-o.release
	o.mu.Lock()
	for _, r := range recs {
		o.got = append(o.got, slices.Clone(r))
	}
	o.mu.Unlock()
	return nil
}

func (o *stuckOutput) Close() error { return nil }

// stuck starts a flooding worker into a stuck output and returns once
// the queue is full (the worker's record count stops moving), checking
// that Status answers all along.
func stuck(t *testing.T) (*Host, *stuckOutput) {
	t.Helper()
	out := newStuckOutput()
	h, _ := startHost(t, Options{Output: out}, testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": "200000"}))
	t.Cleanup(func() {
		select {
		case <-out.release:
		default:
			close(out.release) // before startHost's cleanup stops the host
		}
	})
	select {
	case <-out.entered:
	case <-time.After(time.Minute):
		t.Fatal("no batch reached the output within a minute")
	}
	status := func() uint64 {
		t.Helper()
		ch := make(chan []InstanceStatus, 1)
		go func() { ch <- h.Status() }()
		select {
		case st := <-ch:
			return st[0].Records
		case <-time.After(10 * time.Second):
			t.Fatal("Status did not answer within 10s while the output was stuck")
			return 0
		}
	}
	// Full queue first; then the worker's next batch waits for room,
	// holding the instance's emit lock, and its count stops moving.
	last := status()
	deadline := time.Now().Add(time.Minute)
	for stable := 0; len(h.queue) < cap(h.queue) || stable < 5; {
		if time.Now().After(deadline) {
			t.Fatalf("the queue (%d of %d) or the record count never settled with the output stuck", len(h.queue), cap(h.queue))
		}
		<-time.After(20 * time.Millisecond) // polling the queue and the count
		n := status()
		if n == last && len(h.queue) == cap(h.queue) {
			stable++
		} else {
			stable = 0
		}
		last = n
	}
	if last == 0 || last >= 200000 {
		t.Fatalf("%d records counted with the output stuck; want some, not all", last)
	}
	return h, out
}

// TestStatusAnswersWhileTheOutputIsStuck: status answers while the
// output takes nothing and a worker's records wait for room (an
// outsider's `logtk-host status` hung for as long as a transport failed
// on a full disk: it waited for the lock a blocked emit holds).
func TestStatusAnswersWhileTheOutputIsStuck(t *testing.T) { stuck(t) }

// TestHostRecordsWaitForRoom: the host's own records made while the
// queue is full (a transport's "delivers again" comes just then) are
// delivered after it, in their order, not dropped and counted as
// undelivered (an outsider's host exited 3 after a disk-full episode it
// had recovered from, its "delivers again" record lost).
func TestHostRecordsWaitForRoom(t *testing.T) {
	h, out := stuck(t)
	if len(h.queue) < cap(h.queue) {
		t.Fatal("the queue has room: the records would not wait")
	}
	for i := range 3 {
		h.selfRecord(record.LevelInfo, fmt.Sprintf("report %d while the queue is full", i))
	}
	close(out.release)
	waitDone(t, h, 2*time.Minute)
	var got []string
	out.mu.Lock()
	for _, b := range out.got {
		var r record.Record
		if r.Parse(b) && strings.HasPrefix(string(r.Message), "report ") {
			got = append(got, string(r.Message))
		}
	}
	out.mu.Unlock()
	want := []string{"report 0 while the queue is full", "report 1 while the queue is full", "report 2 while the queue is full"}
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %q, want %q", got, want)
	}
	if u := h.Undelivered(); u.Any() {
		t.Fatalf("undelivered: %+v", u)
	}
}
