package host

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/ipc"
	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/shmring"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
	"github.com/logtk/logtk/record"
)

// TestDurableCleanStop: with a runtime directory, a host that stops
// cleanly routes everything and leaves only the journals, compacted to
// their header (the next host goes on counting seqs from there).
func TestDurableCleanStop(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": "20000"})
	w.Count = 2
	c := newCollector()
	h, err := New(&config.Config{Workers: []config.WorkerConfig{w}, RuntimeDir: dir}, Options{Output: c})
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	waitDone(t, h, time.Minute)
	for i := range 2 {
		checkSequence(t, c.snapshot(), "flood", uint32(i))
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, n := range names {
		switch filepath.Base(n) {
		case "lock", "flood.0.journal", "flood.1.journal":
		default:
			t.Errorf("%s left behind", n)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "flood.0.journal"))
	j, err := parseJournal(b)
	if err != nil || len(j.chunks) != 0 || j.lastSeq < 20000 {
		t.Fatalf("journal after a clean stop: %+v, %v", j, err)
	}
}

// TestRecoverNumbering: a dead host's journal and ring give the next
// host every record past the settled seq with the seq it had: a chunk's
// records from its first seq until a seq something else took, the
// records journaled whole with theirs, and the entries no host read after
// everything, the same way again if the next host dies in its recovery.
func TestRecoverNumbering(t *testing.T) {
	t.Run("as written", func(t *testing.T) { testRecoverNumbering(t, false) })
	// Compacted: the settled chunks and records left out, the rest kept.
	t.Run("compacted", func(t *testing.T) { testRecoverNumbering(t, true) })
}

func testRecoverNumbering(t *testing.T, compact bool) {
	sd, err := openStateDir(t.TempDir(), tlog(t))
	if err != nil {
		t.Fatal(err)
	}
	id := WorkerID{"w/eird name", 3}
	st, rep, err := openStream(sd, id)
	if err != nil || len(rep) != 0 {
		t.Fatalf("a new stream: %v, %d replayed", err, len(rep))
	}
	rf, f, err := st.newRing(4096)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	rf.incarnation, rf.pid = 7, 4242 // not started(): it would look for a process 4242 to kill
	st.append(appendRingEntry(nil, rf), 0)
	entry := func(msg string) []byte {
		return append([]byte{byte(ipc.TypeRecord)}, irecord.AppendHead(nil, time.Unix(1, 0), record.LevelInfo, msg, "")...)
	}
	write := func(msgs ...string) {
		for _, m := range msgs {
			if _, err := rf.ring.Write(entry(m)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// seq 8 (a host record), 9 and 10: settled and released; a ring read from there took
	// "a", "b" as 11, 12; then a stdout line took 13; the next read took
	// "c" as 14 and was queued, then the host's record 15, before the
	// death; "d", "e" were never read: not 15 and 16, which "c"'s chunk
	// would give them, but after everything the journal names.
	write("old1", "old2")
	read := func() uint64 {
		at := rf.ring.Next()
		rf.ring.Read(shmring.NoLimit, func([]byte) bool { return true })
		return at
	}
	st.side(8, irecord.AppendStamp(irecord.AppendHead(nil, time.Unix(0, 0), record.LevelInfo, "started", ""), &irecord.Stamp{Seq: 8, Source: record.SourceHost}))
	st.chunk(rf, read(), 9)
	st.writeBuf(10)
	st.settle(10)
	rf.ring.Release(rf.ring.Next())
	write("a", "b")
	st.chunk(rf, read(), 11)
	st.side(13, irecord.AppendStamp(irecord.AppendHead(nil, time.Unix(2, 0), record.LevelInfo, "line", ""), &irecord.Stamp{Seq: 13, Source: record.SourceStdout}))
	write("c")
	st.chunk(rf, read(), 14)
	st.side(15, irecord.AppendStamp(irecord.AppendHead(nil, time.Unix(3, 0), record.LevelInfo, "exit", ""), &irecord.Stamp{Seq: 15, Source: record.SourceHost}))
	write("d", "e")
	st.writeBuf(15)
	if compact {
		st.mu.Lock()
		before := st.size
		st.compactLocked()
		if st.size >= before {
			t.Errorf("compacting: %d bytes, was %d", st.size, before)
		}
		st.mu.Unlock()
	}
	st.f.Close()
	rf.ring.Close()

	want := []string{"11 a", "12 b", "13 line", "14 c", "15 exit", "16 d", "17 e"}
	for round := range 2 { // the second: the recovering host died too
		sd2 := &stateDir{dir: sd.dir, log: tlog(t), streams: map[WorkerID]*stream{}}
		st2, rep, err := openStream(sd2, id)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rep {
			var v record.Record
			if !v.Parse(r.rec) {
				t.Fatalf("replayed record does not parse: %x", r.rec)
			}
			if v.Seq != r.seq {
				t.Fatalf("record seq %d, replayed as %d", v.Seq, r.seq)
			}
			if v.Source == record.SourceSDK && (string(v.Worker) != id.Name || v.WorkerIndex != 3 || v.PID != 4242 || v.Incarnation != 7) {
				t.Fatalf("a ring record stamped %s#%d pid %d incarnation %d", v.Worker, v.WorkerIndex, v.PID, v.Incarnation)
			}
			got = append(got, fmt.Sprintf("%d %s", v.Seq, v.Message))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: replayed %v, want %v", round, got, want)
		}
		if st2.lastSeq != 17 {
			t.Fatalf("round %d: the stream goes on from seq %d, want 17", round, st2.lastSeq)
		}
		st2.f.Close()
		for _, r := range st2.rings {
			r.ring.Close()
		}
	}
}

// TestJournalTornTail: a journal cut inside an entry (the host died
// writing it) is read up to the entry before, and the next entries are
// written after that one, not after the torn bytes.
func TestJournalTornTail(t *testing.T) {
	sd, err := openStateDir(t.TempDir(), tlog(t))
	if err != nil {
		t.Fatal(err)
	}
	id := WorkerID{"w", 0}
	st, _, _ := openStream(sd, id)
	st.side(1, []byte("one"))
	st.side(2, []byte("two"))
	st.writeBuf(2)
	st.f.Write([]byte{200, 0, 0, 0, jSide, 3}) // torn
	st.f.Close()
	st2, rep, err := openStream(&stateDir{dir: sd.dir, log: tlog(t), streams: map[WorkerID]*stream{}}, id)
	if err != nil || len(rep) != 2 || string(rep[1].rec) != "two" {
		t.Fatalf("after a torn entry: %v, %d replayed", err, len(rep))
	}
	st2.side(3, []byte("three"))
	st2.writeBuf(3)
	st2.f.Close()
	b, _ := os.ReadFile(sd.base(id) + ".journal")
	j, err := parseJournal(b)
	if err != nil || string(j.side[3]) != "three" || len(j.side) != 3 {
		t.Fatalf("journal after a torn tail: %v, sides %d", err, len(j.side))
	}
}

// TestStateDirLocked: two hosts never share a runtime directory.
func TestStateDirLocked(t *testing.T) {
	dir := t.TempDir()
	sd, err := openStateDir(dir, tlog(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openStateDir(dir, tlog(t)); err == nil || !strings.Contains(err.Error(), "runs already") {
		t.Fatalf("a second host: %v", err)
	}
	sd.close()
	sd, err = openStateDir(dir, tlog(t))
	if err != nil {
		t.Fatalf("after the first let go: %v", err)
	}
	sd.close()
}

// tlog is a stateDir's log on a test's.
func tlog(t *testing.T) func(string, ...any) {
	return func(msg string, args ...any) { t.Log(append([]any{msg}, args...)...) }
}

// TestJournalStaysBounded: under a load that never lets everything
// settle, the journal is rewritten with what is not settled, and its
// size stays bounded; what it keeps is what a recovery needs.
func TestJournalStaysBounded(t *testing.T) {
	defer func(old int64) { compactAt = old }(compactAt)
	compactAt = 64 << 10
	sd, err := openStateDir(t.TempDir(), tlog(t))
	if err != nil {
		t.Fatal(err)
	}
	st, _, _ := openStream(sd, WorkerID{"w", 0})
	rec := bytes.Repeat([]byte("x"), 100)
	var largest int64
	for seq := uint64(1); seq <= 20000; seq++ {
		st.side(seq, rec)
		st.writeBuf(seq)
		if seq > 300 {
			st.settle(seq - 300) // 300 records always on their way
		}
		largest = max(largest, st.size)
	}
	if largest > 3*compactAt {
		t.Fatalf("the journal grew to %d bytes (compacting at %d)", largest, compactAt)
	}
	st.f.Close()
	_, rep, err := openStream(&stateDir{dir: sd.dir, log: tlog(t), streams: map[WorkerID]*stream{}}, WorkerID{"w", 0})
	if err != nil || len(rep) != 300 || rep[0].seq != 19701 || rep[299].seq != 20000 {
		t.Fatalf("recovered %d records (%v), want seq 19701..20000", len(rep), err)
	}
}

// TestRecoverDamagedRing: a ring a dead host left that its worker broke
// gives back the records before the damage; a record in the stream,
// after them, says what is lost, and the host counts the ring as one it
// abandoned.
func TestRecoverDamagedRing(t *testing.T) {
	sd, err := openStateDir(t.TempDir(), tlog(t))
	if err != nil {
		t.Fatal(err)
	}
	id := WorkerID{"w", 0}
	st, _, _ := openStream(sd, id)
	rf, f, err := st.newRing(4096)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	rf.pid = 99 // not started(): it would look for a process 99 to kill
	st.append(appendRingEntry(nil, rf), 0)
	third := int64(0)
	for i, m := range []string{"a", "b", "c"} {
		e := append([]byte{byte(ipc.TypeRecord)}, irecord.AppendHead(nil, time.Unix(1, 0), record.LevelInfo, m, "")...)
		rf.ring.Write(e)
		if i < 2 {
			third += int64(len(e)+4+7) &^ 7
		}
	}
	st.chunk(rf, 0, 1) // the dead host read all three as 1, 2, 3
	st.writeBuf(3)
	st.f.Close()
	rf.ring.Close()
	// The worker then wrote a length running past the ring over "c".
	rfile, err := os.OpenFile(rf.path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	rfile.WriteAt([]byte{0xff, 0xff, 0xff, 0x7f}, shmring.HeaderLen+third)
	rfile.Close()

	h := &Host{state: &stateDir{dir: sd.dir, log: tlog(t), streams: map[WorkerID]*stream{}}}
	st2, rep, err := h.state.stream(id)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rep {
		var v record.Record
		v.Parse(r.rec)
		got = append(got, fmt.Sprintf("%d %s", v.Seq, v.Message))
	}
	// Up to 4096/8 seqs from 3 on may have been given: the record after.
	if len(got) != 3 || got[0] != "1 a" || got[1] != "2 b" || !strings.HasPrefix(got[2], "515 the shared-memory ring a host that died left for this worker is damaged") || !strings.Contains(got[2], "seqs from 3, which are missing (the seqs up to 514 are not given again)") {
		t.Fatalf("replayed %q", got)
	}
	if st2.damaged != 1 {
		t.Fatalf("%d damaged rings counted, want 1", st2.damaged)
	}
}

// TestDurableRingHolds: with the durable ingest, a worker whose ring
// stays full (the output held up for longer than the SDK's patience with
// a memfd ring) waits for room instead of sending through the socket,
// where a host crash would lose what the socket buffer held: every
// record arrives through the ring, in order.
func TestDurableRingHolds(t *testing.T) {
	w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": "3000", "LOGTK_TEST_END": "stats"})
	w.RingBytes = 8192
	g := gatedOutput{open: make(chan struct{}), collector: newCollector()}
	h, err := New(&config.Config{Workers: []config.WorkerConfig{w}, RuntimeDir: filepath.Join(t.TempDir(), "run")}, Options{Output: g, QueueSize: 16, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	// Held up for twice the SDK's patience: TestRingStaysFull shows a
	// memfd ring's worker falls back to the socket after it.
	opened := time.AfterFunc(2*time.Second, func() { close(g.open) })
	defer opened.Stop()
	waitDone(t, h, time.Minute)
	recs := sdkRecords(t, g.collector, "flood")
	checkOrder(t, recs, 3000)
	stats := recs[len(recs)-1]
	if attr(stats, "ring_records").GetUint() == 0 || attr(stats, "socket_records").GetUint() != 0 {
		t.Fatalf("stats %v: want every record through the ring", stats.Attrs)
	}
}

// TestRecoverUnfinishedRing: a ring file its maker died making (before
// it was formatted and named) reached no worker: it is removed, and
// counts as no damage.
func TestRecoverUnfinishedRing(t *testing.T) {
	sd, err := openStateDir(t.TempDir(), tlog(t))
	if err != nil {
		t.Fatal(err)
	}
	id := WorkerID{"w", 0}
	unfinished := sd.base(id) + ".3.ring" + shmring.TempSuffix
	if err := os.WriteFile(unfinished, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	st, rep, err := openStream(sd, id)
	if err != nil || len(rep) != 0 || st.damaged != 0 {
		t.Fatalf("recovered %d records, %d damaged rings (%v)", len(rep), st.damaged, err)
	}
	if _, err := os.Stat(unfinished); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the unfinished ring is still there: %v", err)
	}
}

// TestRecordCountsAreThisHosts: an instance's record count (status, the
// worker records metric) is what this host routed of it, not its seq,
// which goes on from the host before (an outsider's second run showed
// 23 records for 11 routed, breaking the metrics' sum).
func TestRecordCountsAreThisHosts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": "300"})
	for run := range 2 {
		c := newCollector()
		h, err := New(&config.Config{Workers: []config.WorkerConfig{w}, RuntimeDir: dir}, Options{Output: c})
		if err != nil {
			t.Fatal(err)
		}
		h.Start()
		waitDone(t, h, time.Minute)
		mine, maxSeq := 0, uint64(0)
		for _, r := range c.snapshot() {
			if r.Worker == "flood" {
				mine++
				maxSeq = max(maxSeq, r.Seq)
			}
		}
		st := h.Status()
		if len(st) != 1 || st[0].Records != uint64(mine) {
			t.Fatalf("run %d: status counts %+v; %d records of the instance were routed", run, st, mine)
		}
		if run == 1 && maxSeq <= uint64(mine) {
			t.Fatalf("run %d: seqs up to %d for %d records: the seq did not go on from the first run", run, maxSeq, mine)
		}
	}
}

// TestFullRuntimeDirFallsBackToTheSocket: with the runtime directory on
// a file system too full for a ring, the worker starts without one and
// logs through the socket, the host says so in a warning record, and no
// record is lost (an outsider's workers were killed by SIGBUS writing
// into sparse ring files). It needs a small tmpfs, so root (as CI runs).
func TestFullRuntimeDirFallsBackToTheSocket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	os.Mkdir(dir, 0o700)
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=512k,mode=0700"); err != nil {
		if os.Geteuid() != 0 && errors.Is(err, unix.EPERM) {
			t.Skip("mounting a small tmpfs needs root")
		}
		t.Fatalf("mounting a 512 KiB tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	const n = 30000 // more bytes than the file system holds: a sparse ring's every page is written
	w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": fmt.Sprint(n)})
	w.RingBytes = 1 << 20 // more than the file system holds
	c := newCollector()
	h, err := New(&config.Config{Workers: []config.WorkerConfig{w}, RuntimeDir: dir}, Options{Output: c, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	waitDone(t, h, time.Minute)
	recs := c.snapshot()
	mine := checkSequence(t, recs, "flood", 0)
	if got := count(mine, func(r *logtkv1.Record) bool { return r.Message == "rec" }); got != n {
		t.Errorf("%d of %d records arrived", got, n)
	}
	if count(mine, msgHas("no shared-memory ring for this worker")) != 1 {
		t.Error("no warning record about the missing ring")
	}
	if count(mine, msgHas("worker exited with status 0")) != 1 {
		t.Errorf("the worker did not exit 0: %v", mine[len(mine)-1].Message)
	}
}
