package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/entries"
	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/spool"
	"github.com/logtk/logtk/plugins/builtin"
	"github.com/logtk/logtk/record"
	"github.com/logtk/logtk/sdk/plugintest"
)

// numberedNone is an owner's count that knows no worker instance.
func numberedNone(string, uint32) (uint64, bool) { return 0, false }

// stamped is a record of worker instance w/index with seq, its message
// "w/index#seq".
func stamped(w string, index uint32, seq uint64) []byte {
	b := irecord.AppendHead(nil, time.Unix(1, 0), record.LevelInfo, fmt.Sprintf("%s/%d#%d", w, index, seq), "")
	b = append(b, irecord.AppendStampOrigin(nil, w, index, 42, 0)...)
	return irecord.AppendStampArrival(b, seq, record.SourceSDK, 1)
}

// TestKeepMarksSkipsWhatTheTransportHolds: with KeepMarks, a transport
// that keeps marks (the file transport) tells a new pipeline what it
// holds, and records routed again after a crash reach it once: those it
// holds are cut from their batches (a batch of nothing else is not
// written at all), the rest, and records of no worker, are written.
func TestKeepMarksSkipsWhatTheTransportHolds(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	path := filepath.Join(out, "got.log")
	opts := Options{
		Formats: []config.FormatConfig{{Name: "plain", Plugin: plugintest.Build(t, "../wasm/testdata/hostile")}},
		Transports: []config.TransportConfig{{Name: "file", Plugin: builtin.Path("file"), Format: "plain",
			Config: []byte(fmt.Sprintf(`{"path":%q}`, path)), Allow: config.Allow{Directories: []string{out}}}},
		DeadLetterDir: filepath.Join(dir, "dead"),
		Logger:        testLogger(t),
		KeepMarks:     true,
	}
	write := func(p *Pipeline, w string, index uint32, from, to uint64, extra ...[]byte) {
		t.Helper()
		var recs [][]byte
		for s := from; s <= to; s++ {
			recs = append(recs, stamped(w, index, s))
		}
		recs = append(recs, extra...)
		if err := p.WriteBatchMarked(recs, []Mark{{Worker: w, Index: index, Seq: to}}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	p.Vouch(numberedNone)
	write(p, "api", 0, 1, 5)
	write(p, "api", 0, 6, 10)
	write(p, "db", 0, 1, 3)
	write(p, "", 0, 1, 5) // the host's own records, numbered per run
	p.Close()

	// A host that died after these were written, before it journaled
	// them settled, routes them again, and what came after.
	p, err = New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	p.Vouch(numberedNone)
	write(p, "api", 0, 4, 12, irecord.AppendHead(nil, time.Unix(1, 0), record.LevelWarn, "host", ""))
	write(p, "db", 0, 1, 3) // all held: not written
	// All held but a record of no worker: that one is written (the
	// plugin must not take the batch for one it holds by its marks).
	write(p, "db", 0, 2, 3, irecord.AppendHead(nil, time.Unix(1, 0), record.LevelWarn, "host2", ""))
	write(p, "db", 0, 4, 4)
	write(p, "api", 1, 1, 2) // an instance the file holds nothing of
	write(p, "api", 0, 13, 13)
	write(p, "", 0, 1, 2) // the next run's own records: never held
	p.Close()

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for s := 1; s <= 10; s++ {
		want = append(want, fmt.Sprintf("api/0#%d", s))
	}
	want = append(want, "db/0#1", "db/0#2", "db/0#3", "/0#1", "/0#2", "/0#3", "/0#4", "/0#5",
		"api/0#11", "api/0#12", "host", "host2", "db/0#4", "api/1#1", "api/1#2", "api/0#13", "/0#1", "/0#2")
	if got := strings.Fields(string(b)); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("the file holds\n%v\nwant\n%v", got, want)
	}
}

// TestKeepMarksSpooledBatchHeld: a spooled batch the file transport
// already holds (delivered, then the host killed before the spool let it
// go) is not written again when the spool sends it; its marks come from
// the spool's meta.
func TestKeepMarksSpooledBatchHeld(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	path := filepath.Join(out, "got.log")
	transport := config.TransportConfig{Name: "file", Plugin: builtin.Path("file"), Format: "plain",
		Config: []byte(fmt.Sprintf(`{"path":%q}`, path)), Allow: config.Allow{Directories: []string{out}}}
	opts := Options{
		Formats:       []config.FormatConfig{{Name: "plain", Plugin: plugintest.Build(t, "../wasm/testdata/hostile")}},
		Transports:    []config.TransportConfig{transport},
		DeadLetterDir: filepath.Join(dir, "dead"),
		Logger:        testLogger(t),
		KeepMarks:     true,
	}
	p, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	p.Vouch(numberedNone)
	if err := p.WriteBatchMarked([][]byte{stamped("api", 0, 1), stamped("api", 0, 2)}, []Mark{{"api", 0, 2}}); err != nil {
		t.Fatal(err)
	}
	p.Close()

	// What the spool still held when the host died: that same batch.
	spoolDir := filepath.Join(dir, "spool")
	sp, err := spool.Open(spoolDir, spool.Options{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var batch []byte
	batch = entries.Append(batch, []byte("api/0#1\n"))
	batch = entries.Append(batch, []byte("api/0#2\n"))
	if err := sp.PutNotify(1, batch, encodeMarks([]Mark{{"api", 0, 2}}), nil); err != nil {
		t.Fatal(err)
	}
	sp.CloseInput()
	sp.Close()

	transport.Spool = &config.SpoolConfig{Dir: spoolDir, MaxBytes: 1 << 20}
	opts.Transports = []config.TransportConfig{transport}
	p, err = New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	p.Vouch(numberedNone)
	if err := p.WriteBatchMarked([][]byte{stamped("api", 0, 3)}, []Mark{{"api", 0, 3}}); err != nil {
		t.Fatal(err)
	}
	p.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(strings.Fields(string(b)), " "); got != "api/0#1 api/0#2 api/0#3" {
		t.Fatalf("the file holds %q", got)
	}
}

// TestHeldDoesNotWaitForAFailingTransport: Held gives the marks of the
// transports that opened and does not keep the owner (and its workers)
// waiting for one whose open fails; that one is checked against the
// floor Held gave when it opens.
func TestHeldDoesNotWaitForAFailingTransport(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	file := builtin.Path("file")
	good := config.TransportConfig{Name: "good", Plugin: file, Format: "plain",
		Config: []byte(fmt.Sprintf(`{"path":%q}`, filepath.Join(out, "got.log"))), Allow: config.Allow{Directories: []string{out}}}
	opts := Options{
		Formats:       []config.FormatConfig{{Name: "plain", Plugin: plugintest.Build(t, "../wasm/testdata/hostile")}},
		Transports:    []config.TransportConfig{good},
		DeadLetterDir: filepath.Join(dir, "dead"),
		Logger:        testLogger(t),
		KeepMarks:     true,
	}
	p, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	p.Vouch(numberedNone)
	p.WriteBatchMarked([][]byte{stamped("api", 0, 7)}, []Mark{{"api", 0, 7}})
	p.Close()

	// Its file is in a directory it was not granted: every open fails.
	bad := config.TransportConfig{Name: "bad", Plugin: file, Format: "plain", Config: []byte(`{"path":"/nonexistent/got.log"}`)}
	opts.Transports = []config.TransportConfig{bad, good}
	p, err = New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	p.Vouch(numberedNone)
	defer p.Close()
	got := make(chan map[Mark]uint64, 1)
	go func() { got <- p.Held(time.Hour) }()
	select {
	case held := <-got:
		if len(held) != 1 || held[Mark{Worker: "api"}] != 7 {
			t.Fatalf("Held = %v, want api#0 at 7", held)
		}
	case <-time.After(time.Minute):
		t.Fatal("Held still waits for a transport whose open fails")
	}
	p.heldMu.Lock()
	defer p.heldMu.Unlock()
	if p.trans[0].inFloor || !p.trans[1].inFloor || !p.heldDone {
		t.Fatalf("in the floor: bad %v, good %v; want false, true (the bad one is checked against the floor when it opens)", p.trans[0].inFloor, p.trans[1].inFloor)
	}
}

// TestMarksOfAnotherNumbering: a transport whose marks go beyond what the
// owner numbered holds records of another numbering (its file outlived
// the journals): Held leaves it out, and it is neither cut by its marks
// nor given any, so its new records, numbered below them, are written.
func TestMarksOfAnotherNumbering(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	path := filepath.Join(out, "got.log")
	opts := Options{
		Formats: []config.FormatConfig{{Name: "plain", Plugin: plugintest.Build(t, "../wasm/testdata/hostile")}},
		Transports: []config.TransportConfig{{Name: "file", Plugin: builtin.Path("file"), Format: "plain",
			Config: []byte(fmt.Sprintf(`{"path":%q}`, path)), Allow: config.Allow{Directories: []string{out}}}},
		DeadLetterDir: filepath.Join(dir, "dead"),
		Logger:        testLogger(t),
		KeepMarks:     true,
	}
	p, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	p.Vouch(numberedNone)
	p.WriteBatchMarked([][]byte{stamped("api", 0, 9), stamped("api", 0, 10)}, []Mark{{"api", 0, 10}})
	p.Close()

	p, err = New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	p.Vouch(func(w string, index uint32) (uint64, bool) { return 5, w == "api" && index == 0 })
	held := p.Held(time.Minute)
	if len(held) != 0 {
		t.Fatalf("Held = %v from a transport of another numbering", held)
	}
	p.WriteBatchMarked([][]byte{stamped("api", 0, 6), stamped("api", 0, 7)}, []Mark{{"api", 0, 7}})
	p.WriteBatchMarked([][]byte{stamped("api", 0, 6), stamped("api", 0, 7)}, []Mark{{"api", 0, 7}}) // as the plugin sees a retry
	p.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(strings.Fields(string(b)), " "); got != "api/0#9 api/0#10 api/0#6 api/0#7 api/0#6 api/0#7" {
		t.Fatalf("the file holds %q", got)
	}
}

// TestLateTransportCheckedAgainstTheFloor: a transport that opens after
// Held gave the floor, for an instance the owner's count does not know
// (its journal was lost), is unvouched when it holds more than the floor
// its seqs now go on from, and vouched when it does not.
func TestLateTransportCheckedAgainstTheFloor(t *testing.T) {
	for _, tc := range []struct {
		held      uint64
		unvouched bool
	}{{7, true}, {5, false}, {3, false}} {
		p := &Pipeline{log: hclog.NewNullLogger(), numbered: numberedNone, heldDone: true,
			floor: map[Mark]uint64{{Worker: "api"}: 5}}
		ts := &transportStage{name: "late", held: map[Mark]uint64{{Worker: "api"}: tc.held}}
		p.vouch(ts)
		if ts.unvouched.Load() != tc.unvouched {
			t.Errorf("holding seq %d over a floor of 5: unvouched %v, want %v", tc.held, ts.unvouched.Load(), tc.unvouched)
		}
	}
}

// BenchmarkUnheld: what cutting costs per batch of 512 records for a
// transport with marks whose records are all past them (every batch of
// a run after the first): "walk" while its marks still name the batch's
// instance, "past" once a delivered batch showed its seqs went past.
func BenchmarkUnheld(b *testing.B) {
	recs := make([][]byte, 512)
	var batch, out []byte
	for i := range recs {
		recs[i] = stamped("api", 0, uint64(1000+i))
		batch = entries.Append(batch, recs[i])
		out = entries.Append(out, []byte("formatted line\n"))
	}
	j := &job{batch: batch, count: 512, out: map[string][]byte{"f": out}, marks: encodeMarks([]Mark{{"api", 0, 1511}})}
	p := &Pipeline{log: hclog.NewNullLogger()}
	for _, name := range []string{"walk", "past"} {
		b.Run(name, func(b *testing.B) {
			t := &transportStage{format: "f", held: map[Mark]uint64{{Worker: "api"}: 10, {Worker: "db"}: 5}}
			if name == "past" {
				delete(t.held, Mark{Worker: "api"})
			}
			b.ReportAllocs()
			for b.Loop() {
				it := item{job: j}
				p.unheld(t, &it)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/512, "ns/record")
		})
	}
}

// TestUnheldForgetsPassedMarks: a batch whose records of an instance are
// all past the transport's mark is written whole, and says so (past), so
// that once it is delivered later batches are not read record by record.
func TestUnheldForgetsPassedMarks(t *testing.T) {
	var batch, out []byte
	for s := uint64(20); s < 25; s++ {
		batch = entries.Append(batch, stamped("api", 0, s))
		out = entries.Append(out, []byte("line\n"))
	}
	j := &job{batch: batch, count: 5, out: map[string][]byte{"f": out}, marks: encodeMarks([]Mark{{"api", 0, 24}})}
	ts := &transportStage{format: "f", held: map[Mark]uint64{{Worker: "api"}: 10}}
	it := item{job: j}
	if !(&Pipeline{log: hclog.NewNullLogger()}).unheld(ts, &it) || !bytes.Equal(it.data, out) {
		t.Fatalf("a batch past the marks was not written whole")
	}
	if len(it.past) != 1 || it.past[0] != (Mark{Worker: "api"}) {
		t.Fatalf("past = %v, want api#0", it.past)
	}
}
