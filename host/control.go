package host

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/pipeline"
)

// Controlling a running host: what an operator's status, restart, stop,
// start and scale do (cmd/logtk-host serves them on a control socket).
//
// Each instance's goroutine owns its process; an operator's request is a
// message to that goroutine (instance.ctl), answered once it is carried
// out, so that a request never races the restart policy. A restart or a
// stop the operator asks for is graceful (the stop signal, StopTimeout,
// then SIGKILL) and does not count towards the crash-loop limit. An
// instance the operator stopped stays stopped, its goroutine waiting,
// until it is started again or the host stops; it keeps the host
// running. An instance that ended by its restart policy or its
// crash-loop limit can be started again while the host runs.

// InstanceState is where a worker instance is in its life.
type InstanceState string

// Instance states.
const (
	StateRunning  InstanceState = "running"  // its process runs
	StateStopping InstanceState = "stopping" // asked to stop, by the operator or the host
	StateBackoff  InstanceState = "backoff"  // waiting to be restarted
	StateStopped  InstanceState = "stopped"  // stopped by the operator; StartInstance starts it
	StateExited   InstanceState = "exited"   // ended by its restart policy
	StateGaveUp   InstanceState = "gave-up"  // ended by its crash-loop limit
)

// InstanceStatus is what Status reports of one worker instance.
type InstanceStatus struct {
	ID    WorkerID      `json:"id"`
	State InstanceState `json:"state"`
	PID   int           `json:"pid,omitempty"` // of the running process
	// Started is when the current (or last) incarnation started.
	Started     time.Time `json:"started,omitzero"`
	Incarnation uint32    `json:"incarnation"`
	// Restarts counts the restarts made, whatever their cause.
	Restarts int `json:"restarts"`
	// LastExit says how the last incarnation ended ("exited with status
	// 1: panic: boom", "killed by SIGKILL"), empty before any ended.
	LastExit string `json:"last_exit,omitempty"`
	// Records is how many records the instance has produced (all
	// incarnations, its output lines and the host's records about it
	// included); RecordsPerSecond is their rate over the last second.
	Records          uint64  `json:"records"`
	RecordsPerSecond float64 `json:"records_per_second"`
}

// StageStatus is what Stages reports of one format or transport stage.
type StageStatus struct {
	Name      string `json:"name"`   // "format NAME" or "transport NAME"
	Plugin    string `json:"plugin"` // the module's path
	Instances int    `json:"instances"`
	// Queued is how many batches wait for the stage (all formats share
	// one queue).
	Queued       int   `json:"queued"`
	Delivered    int64 `json:"delivered,omitempty"`     // transport: records delivered
	SpoolBatches int   `json:"spool_batches,omitempty"` // transport with a spool
	SpoolBytes   int64 `json:"spool_bytes,omitempty"`
	DeadLettered int64 `json:"dead_lettered"` // records dead-lettered by the stage
}

// Stages reports the stages of the host's pipeline (none when it writes
// to the console, or to an Output given in code).
func (h *Host) Stages() []StageStatus {
	p, ok := h.currentOutput().(*pipeline.Pipeline)
	if !ok {
		return nil
	}
	h.outMu.Lock()
	past := maps.Clone(h.pastStages)
	h.outMu.Unlock()
	var out []StageStatus
	for _, s := range p.Status() {
		// A stage a reload replaced goes on counting under its name.
		out = append(out, StageStatus{Name: s.Name, Plugin: s.Plugin, Instances: s.Instances, Queued: s.Queued,
			Delivered: s.Delivered + past[s.Name].Delivered, SpoolBatches: s.SpoolBatches, SpoolBytes: s.SpoolBytes,
			DeadLettered: s.DeadLettered + past[s.Name].DeadLettered})
	}
	return out
}

// ctlOp is an operator's request to an instance.
type ctlOp int

const (
	opStart ctlOp = iota
	opStop
	opRestart
	opReplace // a reload changed the worker block: restart with cfg
)

func (op ctlOp) String() string {
	return [...]string{"start", "stop", "restart", "replace"}[op]
}

type ctlRequest struct {
	op   ctlOp
	cfg  *config.WorkerConfig // opReplace's
	done chan error           // answered once carried out
}

// Status reports every worker instance, in name and index order.
func (h *Host) Status() []InstanceStatus {
	list := h.instanceList()
	out := make([]InstanceStatus, 0, len(list))
	for _, in := range list {
		recs := in.records.Load()
		in.mu.Lock()
		st := InstanceStatus{ID: in.id, State: in.state, Started: in.started, Incarnation: in.incarnation,
			Restarts: in.restartsMade, LastExit: in.lastExit, Records: recs, RecordsPerSecond: in.rate}
		if in.proc != nil {
			st.PID = in.proc.Pid()
		}
		in.mu.Unlock()
		out = append(out, st)
	}
	return out
}

// Restart restarts a running instance gracefully, or starts a stopped or
// ended one, or cuts short its backoff. It returns once the new process
// has started (or failed to).
func (h *Host) Restart(id WorkerID) error { return h.request(id, opRestart) }

// StopInstance stops an instance gracefully; it stays stopped until
// StartInstance or Restart. It returns once the process has ended.
func (h *Host) StopInstance(id WorkerID) error { return h.request(id, opStop) }

// StartInstance starts a stopped or ended instance, or cuts short its
// backoff, and returns once its process has started (or failed to). An
// instance that runs is left alone (an error says so).
func (h *Host) StartInstance(id WorkerID) error { return h.request(id, opStart) }

// Scale sets how many instances of the worker block name run. New
// instances take the next indexes and start at once; scaling down stops
// the highest indexes gracefully. Scale returns when the new instances'
// processes have started (or failed to) and the old ones have ended.
func (h *Host) Scale(name string, n int) error {
	if n < 0 || n > 1024 {
		return fmt.Errorf("host: scale %s to %d: the count must be from 0 to 1024", name, n)
	}
	h.instMu.Lock()
	w, ok := h.workers[name]
	if !ok {
		h.instMu.Unlock()
		return fmt.Errorf("host: no worker block named %q", name)
	}
	if h.ended || h.isStopping() {
		h.instMu.Unlock()
		return errors.New("host: stopping")
	}
	var gone []*instance
	var goneCh []chan struct{} // their goroutines' ends, taken under instMu
	var started []chan error
	for idx := w.Count; idx < n; idx++ {
		in := h.addInstance(w, idx)
		c := make(chan error, 1)
		in.waiting = []chan error{c} // answered once its process has started
		started = append(started, c)
		h.launchLocked(in)
	}
	for _, in := range slices.Clone(h.instances) {
		if in.id.Name != name || in.id.Index < n || in.removed {
			continue
		}
		in.removed = true
		if !in.alive { // ended already: only its entry is left
			h.instances = slices.DeleteFunc(h.instances, func(x *instance) bool { return x == in })
			delete(h.byID, in.id)
			continue
		}
		gone = append(gone, in)
		goneCh = append(goneCh, in.gone)
	}
	w.Count = n
	h.instMu.Unlock()
	var errs []error
	for _, c := range started {
		if err := <-c; err != nil {
			errs = append(errs, err)
		}
	}
	for i, in := range gone {
		if err := in.request(opStop); err != nil && !errors.Is(err, errNotRunning) {
			errs = append(errs, err)
		}
		// The stop is answered before the instance's goroutine sees it
		// was removed and ends; Scale returns once it has, and with it
		// the instance's entry.
		<-goneCh[i]
	}
	return errors.Join(errs...)
}

// Stopping reports whether the host is stopping or has ended.
func (h *Host) Stopping() bool {
	select {
	case <-h.done:
		return true
	default:
		return h.isStopping()
	}
}

// errNotRunning answers a stop of an instance whose goroutine has ended.
var errNotRunning = errors.New("not running")

func (h *Host) request(id WorkerID, op ctlOp) error {
	if !h.started.Load() {
		return errors.New("host: not started")
	}
	in, err := h.instance(id)
	if err != nil {
		return err
	}
	err = in.request(op)
	if errors.Is(err, errNotRunning) {
		if op == opStop {
			return nil // it has ended: stopped already
		}
		// Ended by its policy or crash-loop limit: run it again.
		h.instMu.Lock()
		if h.ended || h.isStopping() {
			h.instMu.Unlock()
			return errors.New("host: stopping")
		}
		if in.alive { // started meanwhile by another request
			h.instMu.Unlock()
			return nil
		}
		if in.removed { // scaled away meanwhile
			h.instMu.Unlock()
			return fmt.Errorf("host: no worker instance %s", id)
		}
		in.mu.Lock()
		in.incarnation++
		in.restartsMade++
		in.gaveUp = false
		in.restarts = nil
		in.mu.Unlock()
		started := make(chan error, 1)
		in.waiting = append(in.waiting, started) // the goroutine is not running: ours to set
		h.launchLocked(in)
		h.instMu.Unlock()
		return <-started
	}
	if err != nil {
		return fmt.Errorf("host: %s %s: %w", op, id, err)
	}
	return nil
}

// request hands op to the instance's goroutine and waits for its answer.
func (in *instance) request(op ctlOp) error { return in.sendReq(ctlRequest{op: op}) }

// sendReq hands req to the instance's goroutine and waits for its answer.
func (in *instance) sendReq(req ctlRequest) error {
	req.done = make(chan error, 1)
	select {
	case in.ctl <- req:
		return <-req.done
	case <-in.gone:
		return errNotRunning
	}
}

// addInstance makes an instance of w (not started); instMu is held or
// the host not yet started.
func (h *Host) addInstance(w *config.WorkerConfig, idx int) *instance {
	in := &instance{h: h, cfg: w, id: WorkerID{w.Name, idx}, ctl: make(chan ctlRequest), state: StateRunning}
	h.instances = append(h.instances, in)
	sort.SliceStable(h.instances, func(i, j int) bool {
		a, b := h.instances[i].id, h.instances[j].id
		return a.Name < b.Name || a.Name == b.Name && a.Index < b.Index
	})
	h.byID[in.id] = in
	return in
}

// launchLocked starts the instance's goroutine; instMu is held.
func (h *Host) launchLocked(in *instance) {
	h.live++
	in.alive = true
	in.gone = make(chan struct{})
	go in.run()
}

// instanceEnded is called by an instance's goroutine as it returns.
func (h *Host) instanceEnded(in *instance) {
	h.instMu.Lock()
	defer h.instMu.Unlock()
	in.alive = false
	close(in.gone)
	if in.removed {
		h.instances = slices.DeleteFunc(h.instances, func(x *instance) bool { return x == in })
		delete(h.byID, in.id)
	}
	if h.live--; h.live == 0 && !h.ended {
		h.ended = true
		close(h.allEnded)
	}
}

func (h *Host) instanceList() []*instance {
	h.instMu.Lock()
	defer h.instMu.Unlock()
	return slices.Clone(h.instances)
}

func (h *Host) instance(id WorkerID) (*instance, error) {
	h.instMu.Lock()
	defer h.instMu.Unlock()
	in, ok := h.byID[id]
	if !ok {
		return nil, fmt.Errorf("host: no worker instance %s", id)
	}
	return in, nil
}

// sampleRates updates each instance's records per second once a second
// until the host is done.
func (h *Host) sampleRates() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := map[*instance]uint64{}
	for {
		select {
		case <-h.done:
			return
		case <-t.C:
		}
		for _, in := range h.instanceList() {
			n := in.records.Load()
			in.mu.Lock()
			in.rate = float64(n - last[in])
			in.mu.Unlock()
			last[in] = n
		}
	}
}
