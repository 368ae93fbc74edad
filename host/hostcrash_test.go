package host

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logtk/logtk/plugins/builtin"
	filetransport "github.com/logtk/logtk/plugins/file"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/entries"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
	"github.com/logtk/logtk/record"
	"github.com/logtk/logtk/sdk/plugintest"
)

// hostProcess runs a host as a child process (the test binary in
// runHostProcess), so that a test can SIGKILL it.
type hostProcess struct {
	t      *testing.T
	cfg    string // the configuration, as JSON
	cmd    *exec.Cmd
	exited chan error
	stderr *strings.Builder
	// all is every run's stderr, for what a failure after them needs.
	all strings.Builder
}

func newHostProcess(t *testing.T, cfg *config.Config) *hostProcess {
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "host.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return &hostProcess{t: t, cfg: path}
}

func (hp *hostProcess) start() {
	hp.t.Helper()
	hp.cmd = exec.Command(os.Args[0])
	hp.cmd.Env = append(os.Environ(), "LOGTK_TEST_HOST_CONFIG="+hp.cfg)
	if hp.stderr != nil {
		hp.all.WriteString(hp.stderr.String())
	}
	hp.stderr = &strings.Builder{}
	hp.cmd.Stderr = hp.stderr
	if err := hp.cmd.Start(); err != nil {
		hp.t.Fatal(err)
	}
	hp.exited = make(chan error, 1)
	cmd := hp.cmd
	go func() { hp.exited <- cmd.Wait() }()
	hp.t.Cleanup(func() { cmd.Process.Kill() })
}

// kill SIGKILLs the host and waits for it.
func (hp *hostProcess) kill() {
	hp.cmd.Process.Kill()
	<-hp.exited
}

// wait waits for the host to end by itself.
func (hp *hostProcess) wait(timeout time.Duration) {
	hp.t.Helper()
	select {
	case err := <-hp.exited:
		if err != nil {
			hp.t.Fatalf("host: %v\n%s", err, hp.stderr)
		}
	case <-time.After(timeout):
		hp.cmd.Process.Kill()
		hp.t.Fatalf("host not done after %s\n%s", timeout, hp.stderr)
	}
}

// counters reads the workers' counts of returned log calls.
func counters(t *testing.T, path string, n int) []uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[i*8:])
	}
	return out
}

// TestHostCrash: 4 workers log flat out on the ring through the network
// transport with a spool into a log server; the host is SIGKILLed 5 times
// at random points (every other one during its recovery) and started
// again. Every record whose log call returned (the workers count them in
// a file that outlives them) is stored exactly once, in per-worker order.
// A record whose call had not returned when its worker died may be
// stored too, once.
func TestHostCrash(t *testing.T) {
	ls := newLogServer(t, true)
	testHostCrash(t, func(w config.WorkerConfig) *config.Config {
		return spoolConfig(t, ls, filepath.Join(t.TempDir(), "spool"), 1<<30, "block", w)
	}, func() []record.Record { return ls.stored(t, "app") }, true)
}

// TestHostCrashNoSpool is TestHostCrash without a spool: exactly once
// too, through the marks the log server gives in its WELCOME (what it
// stored of each worker instance), by which the pipeline cuts the
// records routed again that the server has.
func TestHostCrashNoSpool(t *testing.T) {
	ls := newLogServer(t, true)
	testHostCrash(t, func(w config.WorkerConfig) *config.Config {
		return networkConfig(t, ls, w)
	}, func() []record.Record { return ls.stored(t, "app") }, true)
}

// TestHostCrashFile is TestHostCrash with the file transport, without a
// spool: exactly once too. A batch is settled once the plugin wrote it;
// a host killed between the write and the settlement's journal entry,
// or in the middle of the write, leaves records the next host routes
// again, and the plugin's marks (its log beside the file) tell the
// pipeline which of them the file already holds.
func TestHostCrashFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	testHostCrash(t, func(w config.WorkerConfig) *config.Config {
		return &config.Config{
			Workers: []config.WorkerConfig{w},
			Formats: []config.FormatConfig{{Name: "pb", Plugin: plugintest.Build(t, "../plugins/protobuf/plugin")}},
			Transports: []config.TransportConfig{{
				Name: "file", Plugin: builtin.Path("file"), Format: "pb",
				Config: []byte(fmt.Sprintf(`{"path":%q,"framing":"length-prefixed","fsync":"never"}`, filepath.Join(out, "records.pb"))),
				Allow:  config.Allow{Directories: []string{out}},
			}},
			DeadLetterDir: filepath.Join(t.TempDir(), "dead"),
		}
	}, func() []record.Record { return readLengthPrefixed(t, []string{filepath.Join(out, "records.pb")}) }, true)
}

// With exact, no record may be stored twice.
func testHostCrash(t *testing.T, configure func(config.WorkerConfig) *config.Config, stored func() []record.Record, exact bool) {
	perWorker := 200_000
	if raceEnabled {
		perWorker = 20_000
	}
	const workers, kills = 4, 5
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("seed %d", seed)

	counter := filepath.Join(t.TempDir(), "counters")
	if err := os.WriteFile(counter, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	w := testWorker("flood", "counted", map[string]string{"LOGTK_TEST_N": itoa(perWorker), "LOGTK_TEST_COUNTER": counter})
	w.Count = workers
	cfg := configure(w)
	cfg.RuntimeDir = filepath.Join(t.TempDir(), "run")
	hp := newHostProcess(t, cfg)
	var at [][]uint64 // the counts at each kill
	sum := func() (n uint64) {
		for _, c := range counters(t, counter, workers) {
			n += c
		}
		return n
	}
kills:
	for k := range kills {
		before := sum()
		hp.start()
		if k%2 == 1 {
			// During its start and recovery: before the workers log.
			select {
			case err := <-hp.exited:
				if err != nil || sum() < workers*uint64(perWorker) {
					t.Fatalf("host ended before it was killed: %v\n%s", err, hp.stderr)
				}
				// The workers logged their last records and the host ended
				// before the kill came (a fast pipeline can deliver what is
				// left within the wait above): the run is over, with the
				// kills so far; what it stored is checked below.
				t.Logf("the run ended before kill %d", k+1)
				break kills
			case <-time.After(time.Duration(rng.IntN(300)) * time.Millisecond):
			}
		} else {
			// While the workers log: once they have logged a while.
			deadline := time.Now().Add(time.Minute)
			for sum() < before+uint64(1000+rng.IntN(workers*perWorker/5)) && sum() < workers*uint64(perWorker)*9/10 {
				if time.Now().After(deadline) {
					t.Fatalf("no progress after a minute\n%s", hp.stderr)
				}
				time.Sleep(time.Millisecond) // polling the workers' counters: no event to wait on
			}
		}
		hp.kill()
		at = append(at, counters(t, counter, workers))
	}
	hp.start()
	hp.wait(3 * time.Minute)
	t.Logf("counts at the kills: %v", at)
	final := counters(t, counter, workers)
	for i, c := range final {
		if c != uint64(perWorker) {
			t.Fatalf("worker %d counted %d of %d records: it did not finish", i, c, perWorker)
		}
	}
	if resent := checkCrashRun(t, stored(), workers, perWorker); exact && resent > 0 {
		// What the hosts said about the transports' marks.
		var said []string
		for _, l := range strings.Split(hp.all.String()+hp.stderr.String(), "\n") {
			if strings.Contains(l, "transport") || strings.Contains(l, "routing again") {
				said = append(said, l)
			}
		}
		t.Fatalf("%d records stored twice; the hosts said:\n%s", resent, strings.Join(said, "\n"))
	}
}

// checkCrashRun checks each worker's records i = 0..perWorker-1: all
// there, in order of seq; one i twice only as a record the host settled
// just before a kill (the same seq both times) or one whose log call had
// not returned when the worker died (the same i again from the next
// process, with a later seq).
func checkCrashRun(t *testing.T, recs []record.Record, workers, perWorker int) (resent int) {
	t.Helper()
	type key struct {
		index uint32
		seq   uint64
	}
	seen := map[key]int64{} // seq -> i
	next := make([]int64, workers)
	lastSeq := make([]uint64, workers)
	lastPID := make([]int64, workers)
	unreturned := 0
	for _, v := range recs {
		if string(v.Worker) != "flood" || v.Source != record.SourceSDK {
			continue
		}
		w := v.WorkerIndex
		var i int64 = -1
		var a record.Attr
		for it := v.Attrs(); it.Next(&a); {
			if string(a.Key) == "i" {
				i = a.Int()
			}
		}
		if prev, ok := seen[key{w, v.Seq}]; ok {
			if prev != i {
				t.Fatalf("worker %d: seq %d is i=%d and i=%d", w, v.Seq, prev, i)
			}
			resent++
			continue
		}
		seen[key{w, v.Seq}] = i
		if v.Seq <= lastSeq[w] {
			t.Fatalf("worker %d: seq %d (i=%d) stored after seq %d", w, v.Seq, i, lastSeq[w])
		}
		lastSeq[w] = v.Seq
		switch {
		case i == next[w]:
			next[w]++
		case i == next[w]-1 && v.PID != lastPID[w]:
			unreturned++ // its call had not returned when the worker died
		default:
			t.Fatalf("worker %d: i=%d (seq %d, pid %d), want %d: a record lost or out of order", w, i, v.Seq, v.PID, next[w])
		}
		lastPID[w] = v.PID
	}
	for w := range workers {
		if next[w] != int64(perWorker) {
			t.Fatalf("worker %d: %d of %d records stored", w, next[w], perWorker)
		}
	}
	t.Logf("%d records stored again with their seq (settled in the instant before a kill), %d logged again by a worker whose call had not returned", resent, unreturned)
	return resent
}

// TestMarksOutliveTheJournals: the runtime directory is in memory, so a
// reboot takes the journals while the file transport's file and marks
// stay. The next host numbers its records above what the file holds
// (else the pipeline, and the plugin, would take the new records for
// ones it has and drop them): both runs' records are in the file, once.
func TestMarksOutliveTheJournals(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	run := filepath.Join(t.TempDir(), "run")
	cfg := &config.Config{
		Workers: []config.WorkerConfig{testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": "3000"})},
		Formats: []config.FormatConfig{{Name: "pb", Plugin: plugintest.Build(t, "../plugins/protobuf/plugin")}},
		Transports: []config.TransportConfig{{
			Name: "file", Plugin: builtin.Path("file"), Format: "pb",
			Config: []byte(fmt.Sprintf(`{"path":%q,"framing":"length-prefixed","fsync":"never"}`, filepath.Join(out, "records.pb"))),
			Allow:  config.Allow{Directories: []string{out}},
		}},
		DeadLetterDir: filepath.Join(t.TempDir(), "dead"),
		RuntimeDir:    run,
	}
	for boot := range 2 {
		if err := os.RemoveAll(run); err != nil { // the reboot
			t.Fatal(err)
		}
		h, err := New(cfg, Options{})
		if err != nil {
			t.Fatal(err)
		}
		h.Start()
		waitDone(t, h, time.Minute)
		var n int
		var last uint64
		for _, r := range readLengthPrefixed(t, []string{filepath.Join(out, "records.pb")}) {
			if string(r.Worker) != "flood" || r.Source != record.SourceSDK {
				continue
			}
			n++
			if r.Seq <= last {
				t.Fatalf("boot %d: seq %d after %d", boot, r.Seq, last)
			}
			last = r.Seq
		}
		if want := 3000 * (boot + 1); n != want {
			t.Fatalf("after boot %d the file holds %d of the worker's records, want %d", boot, n, want)
		}
	}
}

// TestReloadedMarksOutliveTheJournals: stages a reload brings keep marks
// too, so that records written through them count when the journals are
// gone: a reload, then a reboot, and the seqs go on above what the
// reloaded file transport wrote (before, the reload's stages ran without
// marks, and the next boot numbered from 1 again: one seq, two records).
func TestReloadedMarksOutliveTheJournals(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	run := filepath.Join(t.TempDir(), "run")
	file := filepath.Join(out, "records.pb")
	configure := func(maxBytes int, workers ...config.WorkerConfig) *config.Config {
		return &config.Config{
			Workers: workers,
			Formats: []config.FormatConfig{{Name: "pb", Plugin: plugintest.Build(t, "../plugins/protobuf/plugin")}},
			Transports: []config.TransportConfig{{
				Name: "file", Plugin: builtin.Path("file"), Format: "pb",
				Config: []byte(fmt.Sprintf(`{"path":%q,"framing":"length-prefixed","fsync":"never","max_bytes":%d}`, file, maxBytes)),
				Allow:  config.Allow{Directories: []string{out}},
			}},
			DeadLetterDir: filepath.Join(t.TempDir(), "dead"),
			RuntimeDir:    run,
		}
	}
	flood := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": "3000"})
	keep := testWorker("keep", "sleep", nil) // keeps the host running
	floodSeqs := func() []uint64 {
		files, _ := filetransport.Rotated(file)
		var seqs []uint64
		for _, r := range readLengthPrefixed(t, append(files, file)) {
			if string(r.Worker) == "flood" && r.Source == record.SourceSDK {
				seqs = append(seqs, r.Seq)
			}
		}
		return seqs
	}
	boot := func(cfg *config.Config, reload *config.Config, want int) {
		t.Helper()
		if err := os.RemoveAll(run); err != nil { // the reboot
			t.Fatal(err)
		}
		h, err := New(cfg, Options{Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		c := newCollector()
		batches, stopTap := h.Tap(1 << 12)
		defer stopTap()
		go func() {
			for b := range batches {
				var recs [][]byte
				entries.Each(b.Entries, func(e []byte) { recs = append(recs, e) })
				c.WriteBatch(recs)
			}
		}()
		h.Start()
		if reload != nil {
			c.waitFor(t, time.Minute, "the keeper ready", func(recs []*logtkv1.Record) bool { return count(recs, msgHas("ready")) == 1 })
			if res, err := h.Reload(reload); err != nil || !res.StagesReplaced {
				t.Fatalf("reload: %+v, %v", res, err)
			}
		}
		c.waitFor(t, time.Minute, "the flood done", func(recs []*logtkv1.Record) bool {
			return count(recs, msgHas("worker exited with status 0")) == 1
		})
		if err := h.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		seqs := floodSeqs()
		if len(seqs) != want {
			t.Fatalf("%d of the flood's records in the file, want %d", len(seqs), want)
		}
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				t.Fatalf("seq %d after %d: a seq given twice", seqs[i], seqs[i-1])
			}
		}
	}
	boot(configure(1<<30, keep), configure(1<<29, keep, flood), 3000)
	boot(configure(1<<29, flood), nil, 6000)
}
