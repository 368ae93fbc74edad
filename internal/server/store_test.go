package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logtk/logtk/internal/entries"
)

func batch(es ...string) []byte {
	var b []byte
	for _, e := range es {
		b = entries.Append(b, []byte(e))
	}
	return b
}

func TestStoreExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(StoreOptions{Dir: dir, Fsync: true})
	if err != nil {
		t.Fatal(err)
	}
	write := func(s *Store, id uint64, e string) bool {
		dup, err := s.Write("app", "host-a", "json", id, batch(e+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		return dup
	}
	if write(s, 1, "one") || write(s, 2, "two") {
		t.Fatal("fresh batches reported as duplicates")
	}
	if !write(s, 2, "two again") || !write(s, 1, "one again") {
		t.Fatal("a retransmission was written twice")
	}
	// Another sender has its own ids.
	if dup, _ := s.Write("app", "host-b", "json", 1, batch("b1\n")); dup {
		t.Fatal("sender b's batch 1 taken for a duplicate of a's")
	}
	s.Close()

	// A crash after the data but before the index reached the disk: the
	// tail is cut on open, and the sender's resend is written once.
	data := filepath.Join(dir, "app", "records.log")
	f, _ := os.OpenFile(data, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("three (unacknowledged)\n")
	f.Close()
	idx, _ := os.OpenFile(data+".idx", os.O_WRONLY|os.O_APPEND, 0)
	idx.WriteString("9999 3 host-a") // a torn index line
	idx.Close()

	s, err = OpenStore(StoreOptions{Dir: dir, Fsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.LastBatch("app", "host-a"); got != 2 {
		t.Fatalf("LastBatch after restart = %d, want 2", got)
	}
	if write(s, 2, "two once more") {
		// expected: duplicate
	} else {
		t.Fatal("batch 2 rewritten after restart")
	}
	if write(s, 3, "three") {
		t.Fatal("batch 3 (never acknowledged) taken for a duplicate")
	}
	b, _ := os.ReadFile(data)
	if got := string(b); got != "one\ntwo\nb1\nthree\n" {
		t.Fatalf("data file:\n%s", got)
	}
	lines, _ := os.ReadFile(data + ".idx")
	if n := strings.Count(string(lines), "\n"); n != 4 {
		t.Fatalf("index has %d lines:\n%s", n, lines)
	}
}

func TestStoreRotationAndFraming(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(StoreOptions{Dir: dir, MaxBytes: 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 3; i++ {
		if _, err := s.Write("app", "h", "logtk.v1.Record", i, batch("12345678")); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "app", "records*.pb"))
	if len(files) != 3 {
		t.Fatalf("%d data files, want 3 (rotation at 10 bytes): %v", len(files), files)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "app", "records.pb"))
	if string(b) != "\x0812345678" {
		t.Fatalf("length-prefixed framing: %q", b)
	}
	s, _ = OpenStore(StoreOptions{Dir: dir})
	defer s.Close()
	if s.LastBatch("app", "h") != 3 {
		t.Fatalf("LastBatch across rotated indexes = %d", s.LastBatch("app", "h"))
	}
}

// TestStoreGroupCommit: many senders append and commit at once with fsync;
// every batch is stored once, LastBatch only counts committed batches, and
// a batch resent while its first copy awaits its sync is a duplicate
// whose commit waits for that sync.
func TestStoreGroupCommit(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(StoreOptions{Dir: dir, Fsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t1, dup, err := s.Append("app", "a", "json", 1, batch("a1\n"))
	if err != nil || dup {
		t.Fatalf("append: dup=%v err=%v", dup, err)
	}
	if got := s.LastBatch("app", "a"); got != 0 {
		t.Fatalf("LastBatch before the commit = %d, want 0", got)
	}
	t2, dup, err := s.Append("app", "a", "json", 1, batch("a1 again\n"))
	if err != nil || !dup || t2 != t1 {
		t.Fatalf("resend before the commit: dup=%v ticket=%v (first %v) err=%v", dup, t2, t1, err)
	}
	if err := s.Commit(t2); err != nil {
		t.Fatal(err)
	}
	if got := s.LastBatch("app", "a"); got != 1 {
		t.Fatalf("LastBatch after the commit = %d, want 1", got)
	}

	const senders, per = 8, 100
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("s%d", i)
			for id := uint64(1); id <= per; id++ {
				if _, err := s.Write("app", name, "json", id, batch(fmt.Sprintf("%s-%d\n", name, id))); err != nil {
					errs <- err
					return
				}
				if got := s.LastBatch("app", name); got != id {
					errs <- fmt.Errorf("%s: LastBatch %d after writing %d", name, got, id)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s.Close()
	b, _ := os.ReadFile(filepath.Join(dir, "app", "records.log"))
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	seen := map[string]bool{}
	for _, l := range lines {
		if seen[l] {
			t.Fatalf("%q stored twice", l)
		}
		seen[l] = true
	}
	if len(lines) != 1+senders*per {
		t.Fatalf("%d records stored, want %d", len(lines), 1+senders*per)
	}
}

// openStore opens a store or fails the test.
func openStore(t *testing.T, opts StoreOptions) *Store {
	t.Helper()
	s, err := OpenStore(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// injectedEIO is a sync that fails.
func injectedEIO(*os.File) error { return errors.New("injected EIO") }

// failSyncs makes the store's syncs fail with err until the test ends or
// the returned func is called.
func failSyncs(t *testing.T, hook func(f *os.File) error) (restore func()) {
	orig := syncFile
	syncFile = hook
	restore = func() { syncFile = orig }
	t.Cleanup(restore)
	return restore
}

func readStore(t *testing.T, dir string) (data string, indexLines int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "app", "records.log"))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := os.ReadFile(filepath.Join(dir, "app", "records.log.idx"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b), strings.Count(string(idx), "\n")
}

// TestStoreSyncFailure: a failed sync fails every batch not yet durable,
// cuts the files back to the last good sync (the kernel may have dropped
// the pages it could not write), and the senders' resends are stored
// again, once each, instead of being taken for duplicates of the lost
// copies (before: acknowledged as such, or failing for ever). A batch the
// same connection sends after the failure is refused; after Resume (the
// sender's next connection) any greater id is taken.
func TestStoreSyncFailure(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, StoreOptions{Dir: dir, Fsync: true})
	defer s.Close()
	if _, err := s.Write("app", "a", "json", 1, batch("a1\n")); err != nil {
		t.Fatal(err)
	}
	restore := failSyncs(t, injectedEIO)
	ta, _, err := s.Append("app", "a", "json", 2, batch("a2\n"))
	if err != nil {
		t.Fatal(err)
	}
	tb, _, err := s.Append("app", "b", "json", 7, batch("b7\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ta); err == nil || !strings.Contains(err.Error(), "injected EIO") {
		t.Fatalf("Commit with a failing sync = %v", err)
	}
	if err := s.Commit(tb); err == nil {
		t.Fatal("Commit of a batch the failed sync covered succeeded")
	}
	if data, n := readStore(t, dir); data != "a1\n" || n != 1 {
		t.Fatalf("after the failed sync: data %q, %d index lines; want the last synced state, %q and 1", data, n, "a1\n")
	}
	restore()
	if _, _, err := s.Append("app", "a", "json", 3, batch("a3\n")); err == nil {
		t.Fatal("a batch after the lost ones, on the same connection, was taken")
	}
	for _, w := range []struct {
		sender string
		id     uint64
		e      string
	}{{"a", 2, "a2 resent\n"}, {"b", 7, "b7 resent\n"}} {
		dup, err := s.Write("app", w.sender, "json", w.id, batch(w.e))
		if err != nil || dup {
			t.Fatalf("resend of %s/%d after the failed sync: dup=%v, %v; want stored", w.sender, w.id, dup, err)
		}
		if dup, err := s.Write("app", w.sender, "json", w.id, batch("again\n")); err != nil || !dup {
			t.Fatalf("second resend of %s/%d: dup=%v, %v; want a duplicate", w.sender, w.id, dup, err)
		}
	}
	if last := s.Resume("app", "a"); last != 2 {
		t.Fatalf("Resume = %d, want 2", last)
	}
	if _, err := s.Write("app", "a", "json", 3, batch("a3\n")); err != nil {
		t.Fatal(err)
	}
	if data, n := readStore(t, dir); data != "a1\na2 resent\nb7 resent\na3\n" || n != 4 {
		t.Fatalf("data %q, %d index lines", data, n)
	}

	// A sender that gives up on its lost batches goes on, once it
	// connects again, with greater ids.
	failSyncs(t, injectedEIO)
	t4, _, err := s.Append("app", "a", "json", 4, batch("a4\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Commit(t4) == nil {
		t.Fatal("Commit with a failing sync succeeded")
	}
	restore()
	s.Resume("app", "a")
	if dup, err := s.Write("app", "a", "json", 9, batch("a9\n")); err != nil || dup {
		t.Fatalf("a greater id after Resume: dup=%v, %v", dup, err)
	}
	if data, _ := readStore(t, dir); data != "a1\na2 resent\nb7 resent\na3\na9\n" {
		t.Fatalf("data %q", data)
	}
}

// TestStoreSyncFailureCoversLaterAppends: a batch appended while the
// failing sync ran is cut back with the others, so its commit fails too
// (not succeeds on a later sync that no longer has its bytes).
func TestStoreSyncFailureCoversLaterAppends(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, StoreOptions{Dir: dir, Fsync: true})
	defer s.Close()
	entered, release := make(chan struct{}), make(chan error)
	var once sync.Once
	failSyncs(t, func(f *os.File) error {
		var err error
		once.Do(func() { close(entered); err = <-release })
		return err
	})
	ta, _, err := s.Append("app", "a", "json", 1, batch("a1\n"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Commit(ta) }()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the sync did not start")
	}
	tb, _, err := s.Append("app", "b", "json", 1, batch("b1\n"))
	if err != nil {
		t.Fatal(err)
	}
	release <- errors.New("injected EIO")
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Commit of the batch whose sync failed succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Commit did not return")
	}
	if err := s.Commit(tb); err == nil {
		t.Fatal("a batch appended during the failed sync and cut back was reported durable")
	}
	if data, n := readStore(t, dir); data != "" || n != 0 {
		t.Fatalf("after the failed sync: data %q, %d index lines; want both empty", data, n)
	}
	for _, sender := range []string{"a", "b"} {
		if dup, err := s.Write("app", sender, "json", 1, batch(sender+"1 resent\n")); err != nil || dup {
			t.Fatalf("resend of %s/1: dup=%v, %v", sender, dup, err)
		}
	}
	if data, _ := readStore(t, dir); data != "a1 resent\nb1 resent\n" {
		t.Fatalf("data %q", data)
	}
}

// failRenames makes the store's n-th, m-th... renames (counting from 1)
// fail until the test ends.
func failRenames(t *testing.T, fail ...int) {
	orig := rename
	calls := 0
	rename = func(from, to string) error {
		calls++
		for _, n := range fail {
			if calls == n {
				return fmt.Errorf("rename %s %s: injected ENOSPC", from, to)
			}
		}
		return orig(from, to)
	}
	t.Cleanup(func() { rename = orig })
}

// storedBatches reads every data file of app (rotated ones first: their
// names sort before the live one's "records.pb" only by the stamp, so the
// live file is read last) and returns the records in order.
func storedBatches(t *testing.T, dir string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "app", "records-*.pb"))
	files = append(files, filepath.Join(dir, "app", "records.pb"))
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		entries.Each(b, func(e []byte) { out = append(out, string(e)) })
	}
	return out
}

// TestStoreRotationRenameFails: when the index cannot be renamed after
// the data file was, the data file is put back, and the live pair stays
// whole: later batches and a restart keep every acknowledged batch.
func TestStoreRotationRenameFails(t *testing.T) {
	dir := t.TempDir()
	opts := StoreOptions{Dir: dir, Fsync: true, MaxBytes: 10}
	s := openStore(t, opts)
	write := func(id uint64) error {
		_, err := s.Write("app", "h", "logtk.v1.Record", id, batch(fmt.Sprintf("batch-%d", id)))
		return err
	}
	if err := write(1); err != nil {
		t.Fatal(err)
	}
	failRenames(t, 2) // the first rotation's index
	if err := write(2); err == nil || !strings.Contains(err.Error(), "injected ENOSPC") {
		t.Fatalf("write during a failing rotation = %v", err)
	}
	for id := uint64(2); id <= 4; id++ { // the resend, then rotations that work
		if err := write(id); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"batch-1", "batch-2", "batch-3", "batch-4"}
	if got := storedBatches(t, dir); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stored %q, want %q", got, want)
	}
	s.Close()
	s = openStore(t, opts)
	defer s.Close()
	if got := storedBatches(t, dir); fmt.Sprint(got) != fmt.Sprint(want) || s.LastBatch("app", "h") != 4 {
		t.Fatalf("after a restart: stored %q, LastBatch %d", got, s.LastBatch("app", "h"))
	}
}

// TestStoreRotationHalfDone: when the data file cannot be put back either,
// the index is left without its data file. The store then refuses to
// store (a new data file beside that index would have its offsets, and
// the next start would cut the file back), also after a restart, with an
// error naming both files; nothing acknowledged is cut; once an operator
// pairs the files again, storing goes on.
func TestStoreRotationHalfDone(t *testing.T) {
	dir := t.TempDir()
	opts := StoreOptions{Dir: dir, Fsync: true, MaxBytes: 10}
	s := openStore(t, opts)
	write := func(s *Store, id uint64) error {
		_, err := s.Write("app", "h", "logtk.v1.Record", id, batch(fmt.Sprintf("batch-%d", id)))
		return err
	}
	if err := write(s, 1); err != nil {
		t.Fatal(err)
	}
	failRenames(t, 2, 3) // the index's rename and the data file's way back
	if err := write(s, 2); err == nil || !strings.Contains(err.Error(), "putting") {
		t.Fatalf("write during a half-done rotation = %v", err)
	}
	live := filepath.Join(dir, "app", "records.pb")
	for range 2 {
		if err := write(s, 2); err == nil || !strings.Contains(err.Error(), live+" is missing") {
			t.Fatalf("write after a half-done rotation = %v; want the missing data file named", err)
		}
	}
	s.Close()
	s = openStore(t, opts)
	defer s.Close()
	if err := write(s, 2); err == nil || !strings.Contains(err.Error(), live+" is missing") {
		t.Fatalf("write after a restart = %v; want the missing data file named", err)
	}
	if got := storedBatches(t, dir); fmt.Sprint(got) != "[batch-1]" {
		t.Fatalf("stored %q; want batch-1 kept", got)
	}
	// The operator's repair: the rotated data file gets its index.
	rotated, _ := filepath.Glob(filepath.Join(dir, "app", "records-*.pb"))
	if len(rotated) != 1 {
		t.Fatalf("rotated data files: %v", rotated)
	}
	if err := os.Rename(live+".idx", rotated[0]+".idx"); err != nil {
		t.Fatal(err)
	}
	if err := write(s, 2); err != nil {
		t.Fatal(err)
	}
	if got := storedBatches(t, dir); fmt.Sprint(got) != "[batch-1 batch-2]" {
		t.Fatalf("stored %q", got)
	}
}

// TestStoreBatchIDZero: the store refuses batch id 0 with an error naming
// it (0 is the "nothing stored" of LastBatch, so the batch would be taken
// for a duplicate and never written).
func TestStoreBatchIDZero(t *testing.T) {
	s := openStore(t, StoreOptions{Dir: t.TempDir(), Fsync: true})
	defer s.Close()
	if _, err := s.Write("app", "h", "json", 0, batch("zero\n")); err == nil || !strings.Contains(err.Error(), "batch id 0") {
		t.Fatalf("Write of batch 0: err = %v, want one naming batch id 0", err)
	}
	if dup, err := s.Write("app", "h", "json", 1, batch("one\n")); dup || err != nil {
		t.Fatalf("batch 1 after a refused 0: dup=%v err=%v", dup, err)
	}
}

// openFilesUnder counts this process's open descriptors of files under dir.
func openFilesUnder(t *testing.T, dir string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot list open descriptors: %v", err)
	}
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	n := 0
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, dir+string(filepath.Separator)) {
			n++
		}
	}
	return n
}

// TestStoreBoundsOpenFiles: with MaxOpen 4, three applications written
// all along and twenty more in turn hold at most 8 descriptors (before: 2
// per application, 46, until the store closed). A file closed to make
// room is opened again when its application writes, and exactly-once
// holds across that: resends are duplicates, new batches are indexed at
// their true offsets, and a restarted store recovers every application.
func TestStoreBoundsOpenFiles(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, StoreOptions{Dir: dir, Fsync: true, MaxOpen: 4})
	write := func(app string, id uint64) (dup bool) {
		t.Helper()
		dup, err := s.Write(app, "h", "json", id, batch(fmt.Sprintf("%s %d\n", app, id)))
		if err != nil {
			t.Fatalf("%s batch %d: %v", app, id, err)
		}
		if n := openFilesUnder(t, dir); n > 8 {
			t.Fatalf("after %s batch %d: %d descriptors open under the store, want at most 8", app, id, n)
		}
		return dup
	}
	kept := []string{"kept0", "kept1", "kept2"}
	for i := range 20 {
		if write(fmt.Sprintf("app%02d", i), 1) {
			t.Fatalf("app%02d: batch 1 taken for a duplicate", i)
		}
		for _, k := range kept {
			if write(k, uint64(i+1)) {
				t.Fatalf("%s: batch %d taken for a duplicate", k, i+1)
			}
		}
	}
	for i := range 20 { // each closed since its batch 1
		app := fmt.Sprintf("app%02d", i)
		if !write(app, 1) {
			t.Fatalf("%s: the resent batch 1 was stored again", app)
		}
		if write(app, 2) {
			t.Fatalf("%s: batch 2 taken for a duplicate", app)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, StoreOptions{Dir: dir, Fsync: true, MaxOpen: 4})
	defer s.Close()
	for i := range 20 {
		app := fmt.Sprintf("app%02d", i)
		if got := s.LastBatch(app, "h"); got != 2 {
			t.Fatalf("%s: LastBatch after a restart = %d, want 2", app, got)
		}
		data, _ := os.ReadFile(filepath.Join(dir, app, "records.log"))
		idx, _ := os.ReadFile(filepath.Join(dir, app, "records.log.idx"))
		first := fmt.Sprintf("%s 1\n", app)
		if want := first + fmt.Sprintf("%s 2\n", app); string(data) != want {
			t.Fatalf("%s: data %q, want %q", app, data, want)
		}
		if want := fmt.Sprintf("%d 1 h\n%d 2 h\n", len(first), len(data)); string(idx) != want {
			t.Fatalf("%s: index %q, want %q", app, idx, want)
		}
	}
	for _, k := range kept {
		if got := s.LastBatch(k, "h"); got != 20 {
			t.Fatalf("%s: LastBatch after a restart = %d, want 20", k, got)
		}
	}
}

// TestStoreOpenFilesAllBusy: with MaxOpen 1 and a sync of that file
// running, a new application's batch is refused with ErrTooManyOpen
// naming it (and not stored), while the application already open goes on;
// once the sync is done, the new application takes the place.
func TestStoreOpenFilesAllBusy(t *testing.T) {
	sep := string(filepath.Separator)
	release, entered := make(chan struct{}), make(chan struct{}, 1)
	var once sync.Once
	failSyncs(t, func(f *os.File) error {
		if strings.Contains(f.Name(), sep+"a"+sep) {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
		}
		return f.Sync()
	})
	s := openStore(t, StoreOptions{Dir: t.TempDir(), Fsync: true, MaxOpen: 1})
	defer s.Close()
	defer once.Do(func() { close(release) }) // before Close, which waits for the sync
	ta, _, err := s.Append("a", "h", "json", 1, batch("a1\n"))
	if err != nil {
		t.Fatal(err)
	}
	committed := make(chan error, 1)
	go func() { committed <- s.Commit(ta) }()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the sync never started")
	}
	if _, _, err := s.Append("b", "h", "json", 1, batch("b1\n")); !errors.Is(err, ErrTooManyOpen) || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("a second application while the only file syncs: err = %v, want ErrTooManyOpen naming \"b\"", err)
	}
	ta2, dup, err := s.Append("a", "h", "json", 2, batch("a2\n"))
	if err != nil || dup {
		t.Fatalf("the open application refused: dup=%v err=%v", dup, err)
	}
	once.Do(func() { close(release) })
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	if dup, err := s.Write("b", "h", "json", 1, batch("b1\n")); err != nil || dup {
		t.Fatalf("b once a's sync is done: dup=%v err=%v", dup, err)
	}
	if err := s.Commit(ta2); err != nil {
		t.Fatal(err)
	}
	for app, want := range map[string]uint64{"a": 2, "b": 1} {
		if got := s.LastBatch(app, "h"); got != want {
			t.Fatalf("%s: LastBatch %d, want %d", app, got, want)
		}
	}
}

// TestStoreClosesUnsyncedFile: a file whose batch is written but not yet
// synced (its Commit still to come, or never: a connection that ended
// before acknowledging it) does not hold its place for ever: it is synced
// and closed to make room. The Commit that comes later finds the batch
// durable, and the file goes on at the right offsets when reopened.
func TestStoreClosesUnsyncedFile(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, StoreOptions{Dir: dir, Fsync: true, MaxOpen: 1})
	ta, _, err := s.Append("a", "h", "json", 1, batch("a1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if dup, err := s.Write("b", "h", "json", 1, batch("b1\n")); err != nil || dup {
		t.Fatalf("b with a's batch unsynced: dup=%v err=%v", dup, err)
	}
	if n := openFilesUnder(t, dir); n > 2 {
		t.Fatalf("%d descriptors open under the store, want at most 2", n)
	}
	if err := s.Commit(ta); err != nil {
		t.Fatalf("committing a's batch after its file was closed: %v", err)
	}
	if got := s.LastBatch("a", "h"); got != 1 {
		t.Fatalf("a: LastBatch %d, want 1", got)
	}
	if dup, err := s.Write("a", "h", "json", 2, batch("a2\n")); err != nil || dup {
		t.Fatalf("a reopened: dup=%v err=%v", dup, err)
	}
	s.Close()
	data, _ := os.ReadFile(filepath.Join(dir, "a", "records.log"))
	idx, _ := os.ReadFile(filepath.Join(dir, "a", "records.log.idx"))
	if string(data) != "a1\na2\n" || string(idx) != "3 1 h\n6 2 h\n" {
		t.Fatalf("a: data %q, index %q", data, idx)
	}
}

// TestStoreSyncsNewNames: with fsync, the directory entries of a new
// application (its directory, its files) and of a rotation are synced
// before a batch in them is acknowledged; without fsync, none are.
func TestStoreSyncsNewNames(t *testing.T) {
	for _, fsync := range []bool{true, false} {
		var synced []string
		old := syncDir
		syncDir = func(dir string) error { synced = append(synced, dir); return old(dir) }
		dir := t.TempDir()
		s := openStore(t, StoreOptions{Dir: dir, Fsync: fsync, MaxBytes: 40})
		if _, err := s.Write("shop", "h", "json", 1, batch("first batch of the shop\n")); err != nil {
			t.Fatal(err)
		}
		first := slices.Clone(synced)
		if _, err := s.Write("shop", "h", "json", 2, batch("second batch: past max_bytes, rotated\n")); err != nil {
			t.Fatal(err)
		}
		syncDir = old
		if !fsync {
			if len(synced) != 0 {
				t.Fatalf("without fsync: synced %v", synced)
			}
			continue
		}
		if !slices.Contains(first, filepath.Join(dir, "shop")) || !slices.Contains(first, dir) {
			t.Fatalf("a new application: synced %v, want its directory and the store's", first)
		}
		if len(synced) <= len(first) {
			t.Fatalf("a rotation synced no directory (%v)", synced)
		}
	}
}

// TestStoreHeld: Held names, per worker instance of a sender, the highest
// seq of its durable batches: not those a failed sync lost, and the same
// after the store is opened again (the index lines keep them); other
// senders' and applications' are their own.
func TestStoreHeld(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, StoreOptions{Dir: dir, Fsync: true})
	appendHeld := func(sender string, id uint64, held ...WorkerSeq) (Ticket, error) {
		tk, _, err := s.AppendHeld("app", sender, "logtk.v1.Record", id, batch("r"), nil, held)
		return tk, err
	}
	for i, held := range [][]WorkerSeq{
		{{"api", 0, 5}, {"api", 1, 3}},
		{{"api", 0, 9}},
	} {
		tk, err := appendHeld("a", uint64(i+1), held...)
		if err == nil {
			err = s.Commit(tk)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if tk, err := appendHeld("b", 1, WorkerSeq{"api", 0, 100}); err != nil || s.Commit(tk) != nil {
		t.Fatal(err)
	}
	restore := failSyncs(t, injectedEIO)
	tk, err := appendHeld("a", 3, WorkerSeq{"api", 0, 20})
	if err != nil {
		t.Fatal(err)
	}
	if s.Commit(tk) == nil {
		t.Fatal("Commit with a failing sync succeeded")
	}
	restore()
	want := []WorkerSeq{{"api", 0, 9}, {"api", 1, 3}}
	if got := s.Held("app", "a"); !reflect.DeepEqual(got, want) {
		t.Fatalf("Held = %v, want %v", got, want)
	}
	s.Close()
	s = openStore(t, StoreOptions{Dir: dir, Fsync: true})
	defer s.Close()
	if got := s.Held("app", "a"); !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopening, Held = %v, want %v", got, want)
	}
	if got := s.Held("app", "b"); !reflect.DeepEqual(got, []WorkerSeq{{"api", 0, 100}}) {
		t.Fatalf("Held of b = %v", got)
	}
	if got := s.Held("other", "a"); len(got) != 0 {
		t.Fatalf("Held of another application = %v", got)
	}
}
