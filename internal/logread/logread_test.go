package logread

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/record"
)

func rec(msg string, level int32, worker string, idx uint32) []byte {
	b := irecord.AppendHead(nil, time.Unix(1700000000, 0), level, msg, "")
	return irecord.AppendStamp(b, &irecord.Stamp{Worker: worker, WorkerIndex: idx, Seq: 1})
}

func entry(r []byte) []byte { return append(protowire.AppendVarint(nil, uint64(len(r))), r...) }

func write(t *testing.T, path string, msgs ...string) {
	t.Helper()
	var b []byte
	for _, m := range msgs {
		b = append(b, entry(rec(m, record.LevelInfo, "web", 0))...)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, files []string) (msgs, warnings []string) {
	t.Helper()
	err := Read(context.Background(), files, Options{Warn: func(s string) { warnings = append(warnings, s) }}, func(b []byte) error {
		var r record.Record
		r.Parse(b)
		msgs = append(msgs, string(r.Message))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return msgs, warnings
}

// TestStoreDirectory: a log server application's directory is read
// rotated files first, oldest first; a torn last record is reported and
// the records before it are all there.
func TestStoreDirectory(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "records-20261206T104512.000000001Z.pb"), "b1", "b2")
	write(t, filepath.Join(dir, "records-20261205T000000.000000000Z.pb"), "a1")
	write(t, filepath.Join(dir, "records.pb"), "c1", "c2")
	os.WriteFile(filepath.Join(dir, "records.pb.idx"), []byte("10 1 s\n"), 0o644)
	// The live file ends in a record cut short.
	f, _ := os.OpenFile(filepath.Join(dir, "records.pb"), os.O_APPEND|os.O_WRONLY, 0)
	torn := entry(rec("torn", record.LevelInfo, "web", 0))
	f.Write(torn[:len(torn)-3])
	f.Close()
	files, err := Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	msgs, warnings := readAll(t, files)
	if strings.Join(msgs, ",") != "a1,b1,b2,c1,c2" {
		t.Fatalf("read %v from %v", msgs, files)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "records.pb: offset") || !strings.Contains(warnings[0], "cut short") {
		t.Fatalf("warnings %q", warnings)
	}
	// Naming the live file reads its rotated files too.
	same, _ := Files(filepath.Join(dir, "records.pb"))
	if !slices.Equal(same, files) {
		t.Fatalf("Files(records.pb) = %v, want %v", same, files)
	}
}

// TestFileTransportRotation: a file transport's rotated files are
// <path>.<time>; other files beside it are not read.
func TestFileTransportRotation(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "app.pb")
	write(t, live+".20261206T104512.123456789Z", "old")
	write(t, live, "new")
	write(t, live+".backup", "not mine")
	files, _ := Files(live)
	if msgs, _ := readAll(t, files); strings.Join(msgs, ",") != "old,new" {
		t.Fatalf("read %v from %v", msgs, files)
	}
}

// TestBadEntries: a record that does not validate is skipped and
// reported; an absurd length ends the file's reading, reported; a
// length cut short is a torn entry.
func TestBadEntries(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "records.pb")
	b := entry(rec("good", record.LevelInfo, "web", 0))
	b = append(b, entry([]byte{0x0a, 0x05, 'x'})...) // a string longer than the record
	b = append(b, entry(rec("after", record.LevelInfo, "web", 0))...)
	b = append(b, protowire.AppendVarint(nil, 1<<40)...)
	b = append(b, "garbage"...)
	os.WriteFile(path, b, 0o644)
	msgs, warnings := readAll(t, []string{path})
	if strings.Join(msgs, ",") != "good,after" || len(warnings) != 2 ||
		!strings.Contains(warnings[0], "not a valid record") || !strings.Contains(warnings[1], "is corrupt from here") {
		t.Fatalf("read %v, warnings %q", msgs, warnings)
	}
	os.WriteFile(path, append(entry(rec("one", record.LevelInfo, "web", 0)), 0x80), 0o644)
	if msgs, warnings := readAll(t, []string{path}); len(msgs) != 1 || len(warnings) != 1 || !strings.Contains(warnings[0], "cut short") {
		t.Fatalf("a torn length: read %v, warnings %q", msgs, warnings)
	}
}

// TestDamageInTheMiddle: a damaged length in the middle of a file (one
// that runs past the end, an absurd one, one that is no uvarint) loses
// only the entry it belongs to: the records after it are read, and the
// warning says where and how much was skipped. (An outsider overwrote
// one length in a 3,004-record store: the 1,502 records after it were
// never printed, and the warning called it a last entry cut short.)
func TestDamageInTheMiddle(t *testing.T) {
	t.Run("one window", testDamageInTheMiddle)
	// Windows of 256 bytes: the search for whole records goes on
	// across many, as on a large file.
	defer func(w int64) { resyncWindow = w }(resyncWindow)
	resyncWindow = 256
	t.Run("many windows", testDamageInTheMiddle)
	t.Run("a smear wider than a window", func(t *testing.T) {
		var b []byte
		var starts []int
		for i := range 100 {
			starts = append(starts, len(b))
			b = append(b, entry(rec(fmt.Sprintf("m%03d", i), record.LevelInfo, "web", 0))...)
		}
		from, to := starts[50], starts[50]+1000
		copy(b[from:to], bytes.Repeat([]byte{0xff}, to-from))
		var want []string
		for i, at := range starts {
			if end := at + len(entry(rec("m000", record.LevelInfo, "web", 0))); end <= from || at >= to {
				want = append(want, fmt.Sprintf("m%03d", i))
			}
		}
		path := filepath.Join(t.TempDir(), "records.pb")
		os.WriteFile(path, b, 0o644)
		msgs, warnings := readAll(t, []string{path})
		if !slices.Equal(msgs, want) || len(warnings) != 1 {
			t.Fatalf("read %d records, want %d (every one the smear spared); warnings %q", len(msgs), len(want), warnings)
		}
	})
}

func testDamageInTheMiddle(t *testing.T) {
	for name, damage := range map[string][]byte{
		"past the end": {0xff, 0xff, 0x7f},
		"absurd":       protowire.AppendVarint(nil, 1<<40),
		"no uvarint":   bytes.Repeat([]byte{0xff}, 10),
	} {
		var b []byte
		var at int
		for i := range 100 {
			if i == 50 {
				at = len(b)
			}
			b = append(b, entry(rec(fmt.Sprintf("m%03d", i), record.LevelInfo, "web", 0))...)
		}
		b = append(append(b[:at:at], damage...), b[at+1:]...) // the length byte of m050, and what follows of it
		path := filepath.Join(t.TempDir(), "records.pb")
		os.WriteFile(path, b, 0o644)
		msgs, warnings := readAll(t, []string{path})
		if len(msgs) != 99 || msgs[49] != "m049" || msgs[50] != "m051" || msgs[98] != "m099" {
			t.Errorf("%s: read %d records (%v ...); want all but m050", name, len(msgs), msgs[:min(len(msgs), 3)])
		}
		if len(warnings) != 1 || !strings.Contains(warnings[0], fmt.Sprintf("offset %d:", at)) || !strings.Contains(warnings[0], "read on from offset") {
			t.Errorf("%s: warnings %q", name, warnings)
		}
	}
}

// TestFollow: following sees records appended, a torn record once it is
// completed, and the new file after a rotation.
func TestFollow(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "records.pb")
	write(t, path, "first")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := make(chan string, 100)
	done := make(chan error, 1)
	var mu sync.Mutex
	var warnings []string
	go func() {
		done <- Read(ctx, []string{path}, Options{Follow: true, Warn: func(s string) { mu.Lock(); warnings = append(warnings, s); mu.Unlock() }}, func(b []byte) error {
			var r record.Record
			r.Parse(b)
			got <- string(r.Message)
			return nil
		})
	}()
	next := func(want string) {
		t.Helper()
		select {
		case m := <-got:
			if m != want {
				t.Fatalf("got %q, want %q", m, want)
			}
		case <-ctx.Done():
			t.Fatalf("no %q within the deadline", want)
		}
	}
	next("first")
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	second := entry(rec("second", record.LevelInfo, "web", 0))
	f.Write(second[:5])
	f.Sync()
	// The rest after the follower has seen the torn entry at least once.
	time.AfterFunc(3*pollEvery, func() { f.Write(second[5:]); f.Close() })
	next("second")
	// Rotation: renamed away, a new file in its place.
	if err := os.Rename(path, filepath.Join(dir, "records-20261206T104512.000000000Z.pb")); err != nil {
		t.Fatal(err)
	}
	write(t, path, "third")
	next("third")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(warnings) != 0 {
		t.Errorf("warnings while following a torn entry that was completed: %q", warnings)
	}
}

func TestFilter(t *testing.T) {
	var r record.Record
	r.Parse(rec("disk full", record.LevelError, "db", 2))
	text := func() []byte { return []byte("ERROR db#2 disk full") }
	for _, tc := range []struct {
		f    Filter
		want bool
	}{
		{Filter{}, true},
		{Filter{Worker: "db"}, true},
		{Filter{Worker: "db#2"}, true},
		{Filter{Worker: "db#1"}, false},
		{Filter{Worker: "web"}, false},
		{Filter{MinLevel: record.LevelWarn}, true},
		{Filter{MinLevel: record.LevelFatal}, false},
		{Filter{Since: time.Unix(1700000000, 0)}, true},
		{Filter{Since: time.Unix(1700000001, 0)}, false},
		{Filter{Grep: regexp.MustCompile(`disk (full|gone)`)}, true},
		{Filter{Grep: regexp.MustCompile(`^INFO`)}, false},
	} {
		if got := tc.f.Match(&r, text); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.f, got, tc.want)
		}
	}
}

// FuzzRead: no file makes the reader panic or loop; what it returns are
// valid records.
func FuzzRead(f *testing.F) {
	f.Add(entry(rec("a", record.LevelInfo, "w", 0)))
	f.Add(append(entry(rec("a", record.LevelInfo, "w", 0)), 0x85, 0x01, 0x0a))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, fmt.Sprintf("f%d", len(b)))
		os.WriteFile(path, b, 0o644)
		err := Read(context.Background(), []string{path}, Options{}, func(r []byte) error {
			if err := irecord.Validate(r); err != nil {
				t.Fatalf("an invalid record was passed on: %v", err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// TestFileTransportWritingRecordsPB: a file transport that writes
// records.pb rotates it to records.pb.<time>; both the file and its
// directory are read with those first.
func TestFileTransportWritingRecordsPB(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "records.pb")
	write(t, live+".20261206T104512.123456789Z", "b")
	write(t, live+".20261205T000000.000000000Z", "a")
	write(t, live, "c")
	for _, arg := range []string{live, dir} {
		files, err := Files(arg)
		if err != nil {
			t.Fatal(err)
		}
		if msgs, _ := readAll(t, files); strings.Join(msgs, ",") != "a,b,c" {
			t.Errorf("Files(%s): read %v from %v", arg, msgs, files)
		}
	}
}

// TestGrepEndAnchor: -grep matches the text line without its newline, so
// that a pattern may end in $.
func TestGrepEndAnchor(t *testing.T) {
	var r record.Record
	r.Parse(rec("n=4999", record.LevelInfo, "w", 0))
	f := Filter{Grep: regexp.MustCompile(`n=4999$`)}
	if !f.Match(&r, func() []byte { return []byte("... n=4999\n") }) {
		t.Fatal("a pattern ending in $ does not match the line")
	}
}
