package file_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logtk/logtk/internal/wasm"
	"github.com/logtk/logtk/plugins/file"
	"github.com/logtk/logtk/sdk/plugin"
)

func batch(t *testing.T, entries ...string) *plugin.Batch {
	var b []byte
	for _, e := range entries {
		b = plugin.AppendEntry(b, []byte(e))
	}
	bt, err := plugin.NewBatch(1, b)
	if err != nil {
		t.Fatal(err)
	}
	return bt
}

func open(t *testing.T, im impl, cfg map[string]any) transport {
	t.Helper()
	return im.open(t, cfg, nil)
}

func TestAppendAndRotate(t *testing.T) { each(t, testAppendAndRotate) }

func testAppendAndRotate(t *testing.T, im impl) {
	path := filepath.Join(t.TempDir(), "app.log")
	tr := open(t, im, map[string]any{"path": path, "max_bytes": 20, "max_files": 2})
	for i := 0; i < 6; i++ {
		if err := tr.Write(batch(t, "0123456789\n")); err != nil { // 11 bytes: one batch per file
			t.Fatal(err)
		}
	}
	rotated, err := file.Rotated(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rotated) != 2 {
		t.Fatalf("%d rotated files kept, want 2: %v", len(rotated), rotated)
	}
	for _, p := range append(rotated, path) {
		if b, _ := os.ReadFile(p); string(b) != "0123456789\n" {
			t.Fatalf("%s holds %q", p, b)
		}
	}
}

func TestFraming(t *testing.T) { each(t, testFraming) }

func testFraming(t *testing.T, im impl) {
	dir := t.TempDir()
	for framing, want := range map[string]string{
		"raw":             "ab",
		"newline":         "a\nb\n",
		"length-prefixed": "\x01a\x01b",
	} {
		path := filepath.Join(dir, framing)
		tr := open(t, im, map[string]any{"path": path, "framing": framing, "fsync": "never"})
		if err := tr.Write(batch(t, "a", "b")); err != nil {
			t.Fatal(err)
		}
		if err := tr.Flush(); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != want {
			t.Errorf("%s: %q, want %q", framing, b, want)
		}
	}
}

func TestConfigErrors(t *testing.T) { each(t, testConfigErrors) }

func testConfigErrors(t *testing.T, im impl) {
	for cfg, want := range map[string]string{
		`{}`:                               "path is required",
		`{"path":"x","fsync":"sometimes"}`: `unknown fsync "sometimes"`,
		`{"path":"x","framing":"xml"}`:     `unknown framing "xml"`,
		`{"path":"x","max_age":"soon"}`:    `max_age "soon" is not a positive duration`,
		`{"path":"x","max_bytes":-1}`:      "must not be negative",
	} {
		err := im.configure(t, cfg)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", cfg, err, want)
		}
	}
}

// TestFullDiskLeavesNoTornRecord: a batch the disk takes only part of is
// cut off again, and once there is room the retried batch is written
// whole, once (issue 14: a half-written last line, and duplicates).
func TestFullDiskLeavesNoTornRecord(t *testing.T) { each(t, testFullDiskLeavesNoTornRecord) }

func testFullDiskLeavesNoTornRecord(t *testing.T, im impl) {
	path := filepath.Join(t.TempDir(), "app.log")
	disk := &disk{match: func(name string) bool { return !isMarksLog(name) }}
	disk.room.Store(15)
	tr := im.open(t, map[string]any{"path": path}, disk)
	if err := tr.Write(batch(t, "first line\n")); err != nil {
		t.Fatal(err)
	}
	err := tr.Write(batch(t, "second line\n", "third line\n"))
	if !plugin.IsRetry(err) {
		t.Fatalf("writing to a full disk: %v, want a retry", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "first line\n" {
		t.Fatalf("after the failed write the file holds %q", b)
	}
	disk.room.Store(1 << 20) // space came back
	if err := tr.Write(batch(t, "second line\n", "third line\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "first line\nsecond line\nthird line\n" {
		t.Fatalf("the file holds %q", b)
	}
}

// TestRotationNamesAndPruning: rotated files are named by the time of
// their last write, whatever the plugin's clock says, and max_files
// keeps the newest across a restart (issue 14: names came from the
// sandbox's fake 2022 clock, and a restarted transport pruned the newer
// files).
func TestRotationNamesAndPruning(t *testing.T) { each(t, testRotationNamesAndPruning) }

func testRotationNamesAndPruning(t *testing.T, im impl) {
	path := filepath.Join(t.TempDir(), "app.log")
	old := time.Now().Add(-time.Hour)
	for run := range 2 { // the second run is a restarted host
		tr := open(t, im, map[string]any{"path": path, "max_bytes": 20, "max_files": 3})
		for i := range 3 {
			if err := tr.Write(batch(t, fmt.Sprintf("run %d batch %d\n", run, i))); err != nil { // 16 bytes: one per file
				t.Fatal(err)
			}
		}
		tr.Close()
		if run == 0 {
			// Make the first run's files plainly older, in their order.
			rotated, _ := file.Rotated(path)
			for i, p := range append(rotated, path) {
				at := old.Add(time.Duration(i) * time.Second)
				os.Chtimes(p, at, at)
			}
		}
	}
	rotated, err := file.Rotated(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range rotated {
		b, _ := os.ReadFile(p)
		got = append(got, strings.TrimSpace(string(b)))
		stamp := strings.TrimPrefix(filepath.Base(p), "app.log.")
		when, err := time.Parse("20060102T150405.000000000Z", stamp)
		if err != nil || time.Since(when) > 2*time.Hour || time.Since(when) < -time.Minute {
			t.Errorf("%s is not named by a recent time (%v)", p, err)
		}
	}
	// The three newest rotated files: the first run's last, the second's two.
	want := []string{"run 0 batch 2", "run 1 batch 0", "run 1 batch 1"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("kept %q, want %q", got, want)
	}
}

// TestRotationInSandbox: in its sandbox without the clock granted, the
// plugin names rotated files by real times (before, by the sandbox's
// fixed fake clock: app.log.20220101T000000.004000000Z).
func TestRotationInSandbox(t *testing.T) { inSandbox(t, testRotationInSandbox) }

func testRotationInSandbox(t *testing.T, b []byte) {
	ctx := context.Background()
	dir := t.TempDir()
	m, err := wasm.Load(ctx, b, wasm.Options{Name: "file", Grants: wasm.Grants{Dirs: []wasm.Dir{{Host: dir}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	inst, err := m.NewInstance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)
	path := filepath.Join(dir, "app.log")
	cfg, _ := json.Marshal(map[string]any{"path": path, "max_bytes": 20})
	if err := inst.Configure(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := inst.Open(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := inst.Write(ctx, uint64(i+1), plugin.AppendEntry(nil, []byte("0123456789abcdef\n"))); err != nil {
			t.Fatal(err)
		}
	}
	rotated, err := file.Rotated(path)
	if err != nil || len(rotated) != 2 {
		t.Fatalf("rotated %v, %v", rotated, err)
	}
	for _, p := range rotated {
		when, err := time.Parse("20060102T150405.000000000Z", strings.TrimPrefix(filepath.Base(p), "app.log."))
		if err != nil || time.Since(when) > time.Hour || time.Since(when) < -time.Minute {
			t.Errorf("%s is not named by a recent time (%v)", p, err)
		}
	}
}

// TestTornTailCut: a file a dead process left ending inside an entry
// (the host killed in the middle of a write) is cut back to its last
// whole entry when opened, so what comes next does not run into it.
func TestTornTailCut(t *testing.T) { each(t, testTornTailCut) }

func testTornTailCut(t *testing.T, im impl) {
	for _, tc := range []struct {
		framing, before, want string
	}{
		{"newline", "one\ntwo\nthr", "one\ntwo\nnew\n"},
		{"newline", "no newline at all", "new\n"},
		{"length-prefixed", "\x03one\x03two\x05thr", "\x03one\x03two\x03new"},
		{"length-prefixed", "\x03one\x83", "\x03one\x03new"}, // cut inside the length
		{"raw", "one\ntwo\nthr", "one\ntwo\nthrnew"},         // raw entries carry no mark
	} {
		t.Run(tc.framing, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.log")
			os.WriteFile(path, []byte(tc.before), 0o644)
			tr := open(t, im, map[string]any{"path": path, "framing": tc.framing})
			if err := tr.Write(batch(t, "new")); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(path); string(got) != tc.want {
				t.Fatalf("file %q, want %q", got, tc.want)
			}
		})
	}
}

// TestLargeBatches: a batch of records of hundreds of KiB among small
// ones is written whole in every framing, and one the disk takes only
// part of (its writes go a chunk at a time in the C module) is cut off
// again and written whole once there is room.
func TestLargeBatches(t *testing.T) { each(t, testLargeBatches) }

func testLargeBatches(t *testing.T, im impl) {
	var recs []string
	recs = append(recs, strings.Repeat("a", 300<<10))
	for i := range 3000 {
		recs = append(recs, fmt.Sprintf("small record %04d %s", i, strings.Repeat("s", 80)))
	}
	recs = append(recs, strings.Repeat("b", 600<<10), strings.Repeat("c", 256<<10-1), "end")
	dir := t.TempDir()
	for _, framing := range []string{"raw", "newline", "length-prefixed"} {
		var want []byte
		for _, r := range recs {
			switch framing {
			case "newline":
				want = append(append(want, r...), '\n')
			case "length-prefixed":
				want = plugin.AppendEntry(want, []byte(r))
			default:
				want = append(want, r...)
			}
		}
		path := filepath.Join(dir, framing)
		disk := &disk{match: func(name string) bool { return !isMarksLog(name) }}
		disk.room.Store(int64(len(want) / 2))
		tr := im.open(t, map[string]any{"path": path, "framing": framing, "fsync": "never"}, disk)
		if _, err := tr.Marks(); err != nil {
			t.Fatal(err)
		}
		b := batch(t, recs...)
		if err := tr.Write(b); !plugin.IsRetry(err) {
			t.Fatalf("%s: a batch the disk takes half of: %v, want a retry", framing, err)
		}
		if got, _ := os.ReadFile(path); len(got) != 0 {
			t.Fatalf("%s: %d bytes left of the batch the disk cut short", framing, len(got))
		}
		disk.room.Store(1 << 30)
		if err := tr.Write(b); err != nil {
			t.Fatalf("%s: %v", framing, err)
		}
		if err := tr.Flush(); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); string(got) != string(want) {
			t.Errorf("%s: the file holds %d bytes, want %d (first difference at %d)", framing, len(got), len(want), firstDiff(got, want))
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
