package file_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/logtk/logtk/internal/wasm"
	"github.com/logtk/logtk/plugins/file"
	"github.com/logtk/logtk/sdk/plugin"
)

func marked(t *testing.T, marks []plugin.Mark, entries ...string) *plugin.Batch {
	var b []byte
	for _, e := range entries {
		b = plugin.AppendEntry(b, []byte(e))
	}
	bt, err := plugin.NewMarkedBatch(1, marks, b)
	if err != nil {
		t.Fatal(err)
	}
	return bt
}

// keeping opens a transport on path and asks it for its marks, as a
// host with the durable ingest on does.
func keeping(t *testing.T, im impl, cfg map[string]any) (transport, []plugin.Mark) {
	t.Helper()
	tr := open(t, im, cfg)
	held, err := tr.Marks()
	if err != nil {
		t.Fatal(err)
	}
	return tr, held
}

func m(worker string, index uint32, seq uint64) plugin.Mark {
	return plugin.Mark{Worker: worker, Index: index, Seq: seq}
}

func marksFile(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".marks")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// appendEntry appends to path's marks log the entry a write makes
// before its batch: bytes [start, end), marks.
func appendEntry(t *testing.T, path string, start, end int64, marks ...plugin.Mark) {
	t.Helper()
	f, err := os.OpenFile(marksFile(path), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(file.AppendMarksEntry(nil, start, end, marks)); err != nil {
		t.Fatal(err)
	}
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(s)
}

// TestMarksCutAWriteThatNeverGotWhole: a process killed in the middle of
// a write leaves the batch's entry (written first) and part of the batch:
// the next Marks cuts the part off and leaves the entry's marks out, so
// the host sends the batch again; and a torn entry after it is skipped.
func TestMarksCutAWriteThatNeverGotWhole(t *testing.T) { each(t, testMarksCutAWriteThatNeverGotWhole) }

func testMarksCutAWriteThatNeverGotWhole(t *testing.T, im impl) {
	path := filepath.Join(t.TempDir(), "app.log")
	cfg := map[string]any{"path": path, "fsync": "never"}
	tr, held := keeping(t, im, cfg)
	if len(held) != 0 {
		t.Fatalf("a new file holds marks %v", held)
	}
	if err := tr.Write(marked(t, []plugin.Mark{m("web", 0, 3), m("web", 1, 2)}, "a\n", "b\n")); err != nil {
		t.Fatal(err)
	}
	if err := tr.Write(marked(t, []plugin.Mark{m("web", 0, 6)}, "c\n")); err != nil {
		t.Fatal(err)
	}
	// The crash: the entry of "d\ne\n", then "d\n" of it.
	appendEntry(t, path, 6, 10, m("web", 0, 8))
	appendTo(t, path, "d\n")
	tr2, held := keeping(t, im, cfg)
	if want := []plugin.Mark{m("web", 0, 6), m("web", 1, 2)}; !reflect.DeepEqual(held, want) {
		t.Fatalf("marks %v, want %v", held, want)
	}
	if got := readFile(t, path); got != "a\nb\nc\n" {
		t.Fatalf("after Marks the file holds %q", got)
	}
	if err := tr2.Write(marked(t, []plugin.Mark{m("web", 0, 8)}, "d\n", "e\n")); err != nil {
		t.Fatal(err)
	}
	tr2.Close()
	// A half-written entry, its batch not begun.
	f, _ := os.OpenFile(marksFile(path), os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{12, 10, 3, 'w', 'e'}) // an entry of 12 bytes cut after 4
	f.Close()
	_, held = keeping(t, im, cfg)
	if want := []plugin.Mark{m("web", 0, 8), m("web", 1, 2)}; !reflect.DeepEqual(held, want) {
		t.Fatalf("marks %v, want %v", held, want)
	}
	if got := readFile(t, path); got != "a\nb\nc\nd\ne\n" {
		t.Fatalf("the file holds %q", got)
	}
}

// TestDamagedMarksLogCutsNothing: a marks log cut short, or with its last
// entry damaged, names less than the file holds: nothing of the file is
// cut (its records may be written again after a host crash; none is
// lost), and the marks it still names stand.
func TestDamagedMarksLogCutsNothing(t *testing.T) { each(t, testDamagedMarksLogCutsNothing) }

func testDamagedMarksLogCutsNothing(t *testing.T, im impl) {
	for _, damage := range []string{"cut in half", "last byte flipped", "removed"} {
		t.Run(damage, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.log")
			cfg := map[string]any{"path": path, "fsync": "never"}
			tr, _ := keeping(t, im, cfg)
			var want string
			for i := range 50 {
				line := fmt.Sprintf("record %d\n", i)
				want += line
				if err := tr.Write(marked(t, []plugin.Mark{m("w", 0, uint64(i+1))}, line)); err != nil {
					t.Fatal(err)
				}
			}
			tr.Close()
			b, _ := os.ReadFile(marksFile(path))
			switch damage {
			case "cut in half":
				b = b[:len(b)/2]
			case "last byte flipped":
				b[len(b)-1] ^= 0xff
			case "removed":
				b = nil
			}
			os.WriteFile(marksFile(path), b, 0o644)
			_, held := keeping(t, im, cfg)
			if got := readFile(t, path); got != want {
				t.Fatalf("the file lost %d bytes to a damaged marks log", len(want)-len(got))
			}
			if len(held) > 1 || (len(held) == 1 && held[0].Seq > 50) {
				t.Fatalf("marks %v name more than the file holds", held)
			}
		})
	}
}

// TestMarksHeldBatchNotWrittenAgain: a batch whose every mark the log
// holds is in the file already (its write failed after the entry was
// durable): it is acknowledged without being written again.
func TestMarksHeldBatchNotWrittenAgain(t *testing.T) { each(t, testMarksHeldBatchNotWrittenAgain) }

func testMarksHeldBatchNotWrittenAgain(t *testing.T, im impl) {
	path := filepath.Join(t.TempDir(), "app.log")
	tr, _ := keeping(t, im, map[string]any{"path": path})
	b := marked(t, []plugin.Mark{m("web", 0, 3)}, "a\n")
	for range 2 {
		if err := tr.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if got := readFile(t, path); got != "a\n" {
		t.Fatalf("the file holds %q", got)
	}
	// A batch without marks (the host's own records) is always written.
	for range 2 {
		if err := tr.Write(marked(t, nil, "h\n")); err != nil {
			t.Fatal(err)
		}
	}
	if got := readFile(t, path); got != "a\nh\nh\n" {
		t.Fatalf("the file holds %q", got)
	}
}

// TestMarksRotation: a rotated file keeps what its entries named; a
// batch the new file got only part of is cut off, and the marks name
// everything held across the files.
func TestMarksRotation(t *testing.T) { each(t, testMarksRotation) }

func testMarksRotation(t *testing.T, im impl) {
	path := filepath.Join(t.TempDir(), "app.log")
	cfg := map[string]any{"path": path, "max_bytes": 8, "fsync": "never"}
	tr, _ := keeping(t, im, cfg)
	for i, e := range []string{"one\n", "two\n", "three\n"} {
		if err := tr.Write(marked(t, []plugin.Mark{m("w", 0, uint64(i+1))}, e)); err != nil {
			t.Fatal(err)
		}
	}
	// Killed in the middle of a write to the file: its entry, part of it.
	appendEntry(t, path, 6, 11, m("w", 0, 4))
	appendTo(t, path, "fo")
	tr2, held := keeping(t, im, cfg)
	if want := []plugin.Mark{m("w", 0, 3)}; !reflect.DeepEqual(held, want) {
		t.Fatalf("marks %v, want %v", held, want)
	}
	if got := readFile(t, path); got != "three\n" {
		t.Fatalf("the current file holds %q", got)
	}
	rotated, _ := file.Rotated(path)
	var all []string
	for _, p := range rotated {
		all = append(all, readFile(t, p))
	}
	if strings.Join(all, "") != "one\ntwo\n" {
		t.Fatalf("rotated files hold %q", all)
	}
	tr2.Close()
	// Killed right after a rotation's rename, before the new file's first
	// entry: the log's last entry names bytes of the rotated file, the new
	// file is shorter, and what was rotated stands.
	path2 := filepath.Join(t.TempDir(), "app.log")
	cfg2 := map[string]any{"path": path2, "max_bytes": 12, "fsync": "never"}
	tr3, _ := keeping(t, im, cfg2)
	for i, e := range []string{"one\n", "two\n"} {
		if err := tr3.Write(marked(t, []plugin.Mark{m("w", 0, uint64(i+1))}, e)); err != nil {
			t.Fatal(err)
		}
	}
	tr3.Close()
	if err := os.Rename(path2, path2+".20261206T000000.000000000Z"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path2, nil, 0o644)
	_, held = keeping(t, im, cfg2)
	if want := []plugin.Mark{m("w", 0, 2)}; !reflect.DeepEqual(held, want) {
		t.Fatalf("marks %v, want %v", held, want)
	}
}

// TestMarksWriteFailure: when the marks log cannot take a batch's entry
// (a full disk), the batch is cut off the file again and the write is
// retried: once there is room it is in the file once, named once.
func TestMarksWriteFailure(t *testing.T) { each(t, testMarksWriteFailure) }

func testMarksWriteFailure(t *testing.T, im impl) {
	path := filepath.Join(t.TempDir(), "app.log")
	log := &disk{match: isMarksLog}
	log.room.Store(1 << 20)
	tr := im.open(t, map[string]any{"path": path}, log)
	if _, err := tr.Marks(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Write(marked(t, []plugin.Mark{m("w", 0, 1)}, "one\n")); err != nil {
		t.Fatal(err)
	}
	log.room.Store(3)
	err := tr.Write(marked(t, []plugin.Mark{m("w", 0, 2)}, "two\n"))
	if !plugin.IsRetry(err) || !strings.Contains(err.Error(), ".marks") {
		t.Fatalf("writing with a full disk under the log: %v, want a retry", err)
	}
	if got := readFile(t, path); got != "one\n" {
		t.Fatalf("after the failed write the file holds %q", got)
	}
	log.room.Store(1 << 20)
	if err := tr.Write(marked(t, []plugin.Mark{m("w", 0, 2)}, "two\n")); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	_, held := keeping(t, im, map[string]any{"path": path})
	if want := []plugin.Mark{m("w", 0, 2)}; !reflect.DeepEqual(held, want) {
		t.Fatalf("marks %v, want %v", held, want)
	}
	if got := readFile(t, path); got != "one\ntwo\n" {
		t.Fatalf("the file holds %q", got)
	}
}

// TestRunWithoutMarksCutsNothing: a run that was not asked for marks
// (the durable ingest off) writes without entries; a later run with
// marks keeps what it wrote (the log names less than the file holds),
// and the marks from before stand.
func TestRunWithoutMarksCutsNothing(t *testing.T) { each(t, testRunWithoutMarksCutsNothing) }

func testRunWithoutMarksCutsNothing(t *testing.T, im impl) {
	path := filepath.Join(t.TempDir(), "app.log")
	tr, _ := keeping(t, im, map[string]any{"path": path})
	if err := tr.Write(marked(t, []plugin.Mark{m("w", 0, 1)}, "one\n")); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	plain := open(t, im, map[string]any{"path": path})
	if err := plain.Write(batch(t, "two\n")); err != nil {
		t.Fatal(err)
	}
	plain.Close()
	_, held := keeping(t, im, map[string]any{"path": path})
	if want := []plugin.Mark{m("w", 0, 1)}; !reflect.DeepEqual(held, want) {
		t.Fatalf("marks %v, want %v", held, want)
	}
	if got := readFile(t, path); got != "one\ntwo\n" {
		t.Fatalf("the file holds %q", got)
	}
}

// TestMarksLogCompacted: the log of a long run is rewritten as one
// entry, and keeps naming what it named.
func TestMarksLogCompacted(t *testing.T) { each(t, testMarksLogCompacted) }

func testMarksLogCompacted(t *testing.T, im impl) {
	path := filepath.Join(t.TempDir(), "app.log")
	tr, _ := keeping(t, im, map[string]any{"path": path, "fsync": "never"})
	const batches = 80_000 // entries of ~20 bytes: past the 1 MiB threshold
	for i := range batches {
		if err := tr.Write(marked(t, []plugin.Mark{m("worker", uint32(i%3), uint64(i+1))}, "x")); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(marksFile(path))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 1<<20 {
		t.Fatalf("the marks log is %d bytes", st.Size())
	}
	tr.Close()
	_, held := keeping(t, im, map[string]any{"path": path})
	// Batch i (from 0) is instance i%3's seq i+1.
	want := []plugin.Mark{m("worker", 0, batches-1), m("worker", 1, batches), m("worker", 2, batches-2)}
	if !reflect.DeepEqual(held, want) {
		t.Fatalf("marks %v, want %v", held, want)
	}
	if st, _ := os.Stat(path); st.Size() != batches {
		t.Fatalf("the file is %d bytes, want %d", st.Size(), batches)
	}
}

// TestMarksInSandbox: through the ABI (logtk_marks, and write inputs
// carrying marks), the plugin in its sandbox keeps marks across
// instances, as the host uses it.
func TestMarksInSandbox(t *testing.T) { inSandbox(t, testMarksInSandbox) }

func testMarksInSandbox(t *testing.T, b []byte) {
	ctx := context.Background()
	dir := t.TempDir()
	mod, err := wasm.Load(ctx, b, wasm.Options{Name: "file", Grants: wasm.Grants{Dirs: []wasm.Dir{{Host: dir}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer mod.Close(ctx)
	path := filepath.Join(dir, "app.log")
	cfg, _ := json.Marshal(map[string]any{"path": path, "framing": "newline"})
	instance := func() (*wasm.Instance, []plugin.Mark) {
		inst, err := mod.NewInstance(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { inst.Close(ctx) })
		if err := inst.Configure(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		if err := inst.Open(ctx); err != nil {
			t.Fatal(err)
		}
		enc, keeps, err := inst.KeepMarks(ctx)
		if err != nil || !keeps {
			t.Fatalf("KeepMarks: %v, %v", keeps, err)
		}
		held, err := plugin.ParseMarks(nil, enc)
		if err != nil {
			t.Fatal(err)
		}
		return inst, held
	}
	inst, held := instance()
	if len(held) != 0 {
		t.Fatalf("marks %v", held)
	}
	for i, w := range []string{"api", "db", "api"} {
		marks := plugin.AppendMarks(nil, []plugin.Mark{m(w, 0, uint64(10+i))})
		if _, err := inst.WriteMarked(ctx, uint64(i+1), marks, plugin.AppendEntry(nil, []byte(w))); err != nil {
			t.Fatal(err)
		}
	}
	_, held = instance()
	if want := []plugin.Mark{m("api", 0, 12), m("db", 0, 11)}; !reflect.DeepEqual(held, want) {
		t.Fatalf("marks %v, want %v", held, want)
	}
	if got := readFile(t, path); got != "api\ndb\napi\n" {
		t.Fatalf("the file holds %q", got)
	}
}
