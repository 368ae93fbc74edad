package server

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

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
