package host

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/entries"
	logtkv1 "github.com/logtk/logtk/proto/logtk/v1"
	"github.com/logtk/logtk/sdk/plugintest"
)

// TestReloadUnderLoad: four workers log flat out through json -> file
// while a reload changes one sleeping worker, removes one, adds one and
// changes the formatter's configuration. Every record of every instance
// is in the file exactly once, each instance's seq gap-free; the
// flooding workers, unchanged, keep their processes; the records after
// the switch are formatted by the new configuration.
func TestReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "logs", "app.log")
	jsonPlugin := plugintest.Build(t, "../plugins/json/plugin")
	filePlugin := plugintest.Build(t, "../plugins/file/plugin")
	const perWorker = 30000
	flood := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": fmt.Sprint(perWorker)})
	flood.Count = 4
	changed := testWorker("changed", "sleep", map[string]string{"GENERATION": "1"})
	changed.Count = 2
	removed := testWorker("removed", "sleep", nil)
	cfg := func(timeFormat string, workers ...config.WorkerConfig) *config.Config {
		return &config.Config{
			Workers: workers,
			Formats: []config.FormatConfig{{Name: "json", Plugin: jsonPlugin, Config: []byte(fmt.Sprintf(`{"time_format":%q}`, timeFormat))}},
			Transports: []config.TransportConfig{{
				Name: "file", Plugin: filePlugin, Format: "json",
				Config: []byte(fmt.Sprintf(`{"path":%q}`, out)),
				Allow:  config.Allow{Directories: []string{filepath.Dir(out)}},
			}},
			DeadLetterDir: filepath.Join(dir, "dead"),
		}
	}
	c := newCollector() // the records the host routes, through a tap
	// Large batches: the host holds records back between batches, which
	// the switch must not come between.
	h, err := New(cfg("rfc3339", flood, changed, removed), Options{Logger: testLogger(t), BatchSize: 8192, QueueSize: 1 << 17})
	if err != nil {
		t.Fatal(err)
	}
	batches, stopTap := h.Tap(1 << 16)
	defer stopTap()
	go func() {
		for b := range batches {
			var recs [][]byte
			entries.Each(b.Entries, func(e []byte) { recs = append(recs, e) })
			c.WriteBatch(recs)
		}
	}()
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	defer h.Stop(t.Context())
	c.waitFor(t, time.Minute, "the sleepers ready and the floods under way", func(recs []*logtkv1.Record) bool {
		return count(recs, msgIs("ready")) == 3 && count(recs, msgIs("rec")) > 2000
	})
	pids := map[string]int{}
	for _, st := range h.Status() {
		pids[st.ID.String()] = st.PID
	}

	changed2 := changed
	changed2.Env = map[string]string{workerEnv: "sleep", "GENERATION": "2"}
	added := testWorker("added", "sleep", nil)
	res, err := h.Reload(cfg("unix_nano", flood, changed2, added))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Added, res.Removed, res.Changed, res.Unchanged, res.StagesReplaced) != "[added] [removed] [changed] [flood] true" {
		t.Fatalf("reload result %+v", res)
	}
	st := map[string]InstanceStatus{}
	for _, s := range h.Status() {
		st[s.ID.String()] = s
	}
	for i := range 4 {
		id := fmt.Sprintf("flood#%d", i)
		if s, ok := st[id]; ok && s.PID != 0 && s.PID != pids[id] {
			t.Errorf("%s was restarted by the reload: pid %d, was %d", id, s.PID, pids[id])
		}
	}
	for i := range 2 {
		id := fmt.Sprintf("changed#%d", i)
		if s := st[id]; s.PID == pids[id] || s.Incarnation != 1 {
			t.Errorf("%s was not restarted with its new configuration: %+v (pid was %d)", id, s, pids[id])
		}
	}
	if _, ok := st["removed#0"]; ok {
		t.Errorf("removed#0 is still there: %+v", st["removed#0"])
	}
	if s := st["added#0"]; s.State != StateRunning {
		t.Errorf("added#0: %+v", s)
	}
	// More switches while the floods go on.
	for i := range 8 {
		format := []string{"rfc3339", "unix_nano"}[i%2]
		if res, err := h.Reload(cfg(format, flood, changed2, added)); err != nil || !res.StagesReplaced || len(res.Changed) > 0 {
			t.Fatalf("reload %d: %+v, %v", i, res, err)
		}
	}
	c.waitFor(t, 2*time.Minute, "the floods done", func(recs []*logtkv1.Record) bool {
		return count(recs, msgHas("worker exited with status 0")) == 4
	})
	if err := h.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}

	// The file: every record of every instance once, seq gap-free, and
	// both time formats (before and after the switch).
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type line struct {
		Worker string          `json:"worker"`
		Index  int             `json:"worker_index"`
		Seq    uint64          `json:"seq"`
		Msg    string          `json:"msg"`
		Time   json.RawMessage `json:"time"`
	}
	seqs := map[string][]uint64{}
	floodRecs, rfc, nano := 0, 0, 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%v: %s", err, sc.Text())
		}
		id := fmt.Sprintf("%s#%d", l.Worker, l.Index)
		seqs[id] = append(seqs[id], l.Seq)
		if l.Msg == "rec" {
			floodRecs++
		}
		if strings.HasPrefix(string(l.Time), `"`) {
			rfc++
		} else {
			nano++
		}
	}
	if floodRecs != 4*perWorker {
		t.Errorf("%d flood records in the file, want %d", floodRecs, 4*perWorker)
	}
	// What status says the transport delivered goes on across the nine
	// replacements of its stage (it said what the last one had).
	lines := 0
	for _, s := range seqs {
		lines += len(s)
	}
	if st := stageNamed(h.Stages(), "transport file"); st == nil || st.Delivered != int64(lines) {
		t.Errorf("status says %+v delivered; the file has %d records", st, lines)
	}
	for id, s := range seqs {
		if id == "#0" {
			continue // the host's own records, which never wait for room in the queue (past 4,096 waiting, they are in its log only)
		}
		for i, seq := range s {
			if seq != uint64(i+1) {
				t.Fatalf("%s: record %d has seq %d: lost or duplicated around the reload", id, i, seq)
			}
		}
	}
	if rfc == 0 || nano == 0 {
		t.Errorf("%d records in the old time format, %d in the new: the formatter's new configuration was not applied after the switch", rfc, nano)
	}
	if _, err := os.Stat(filepath.Join(dir, "dead")); err == nil {
		t.Error("something was dead-lettered")
	}
}

// TestReloadSpoolCarriesOver: records spooled while the log server is
// down, then a reload that changes the transport: the old pipeline
// leaves its batches in the spool, the new one sends them once the
// server is up; each record is stored exactly once.
func TestReloadSpoolCarriesOver(t *testing.T) {
	t.Parallel() // waits on backoffs and timeouts, not the CPU
	ls := newLogServer(t, false)
	dir := filepath.Join(t.TempDir(), "spool")
	w := testWorker("flood", "flood", map[string]string{"LOGTK_TEST_N": "3000"})
	w.Count = 2
	keep := testWorker("keep", "sleep", nil) // keeps the host running
	cfg := spoolConfig(t, ls, dir, 1<<30, "block", w, keep)
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
	defer h.Stop(t.Context())
	c.waitFor(t, time.Minute, "the floods done", func(recs []*logtkv1.Record) bool {
		return count(recs, msgHas("worker exited with status 0")) == 2
	})
	if spooled(dir) == 0 {
		t.Fatal("nothing spooled while the server was down")
	}
	next := spoolConfig(t, ls, dir, 1<<30, "block", w, keep)
	next.Transports[0].Config = []byte(`{"endpoint":"logserver","token":"tok","sender":"test-host","application":"app","ack_timeout":"3s"}`)
	res, err := h.Reload(next)
	if err != nil || !res.StagesReplaced {
		t.Fatalf("reload: %+v, %v", res, err)
	}
	ls.start()
	deadline := time.Now().Add(time.Minute)
	for spooled(dir) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d batches still spooled a minute after the server came up", spooled(dir))
		}
		select {
		case <-c.changed:
		case <-time.After(100 * time.Millisecond): // polling the spool directory
		}
	}
	if err := h.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, ls.stored(t, "app"), 2, 3000)
}

func stageNamed(stages []StageStatus, name string) *StageStatus {
	for i := range stages {
		if stages[i].Name == name {
			return &stages[i]
		}
	}
	return nil
}
