package spool

import (
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestSpoolPersistsInOrder(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for id := uint64(10); id <= 12; id++ {
		if err := s.Put(id, []byte{byte(id)}); err != nil {
			t.Fatal(err)
		}
	}
	id, b, _ := s.Next(0)
	if id != 10 || b[0] != 10 {
		t.Fatalf("oldest = %d %v", id, b)
	}
	s.Remove(10)
	s.Close()

	s, err = Open(dir, Options{MaxBytes: 1 << 20}) // a restarted host
	if err != nil {
		t.Fatal(err)
	}
	if n, bytes := s.Len(); n != 2 || bytes != 2 {
		t.Fatalf("after reopen: %d batches, %d bytes", n, bytes)
	}
	s.CloseInput()
	var got []uint64
	var after uint64
	for {
		id, _, err := s.Next(after)
		if errors.Is(err, ErrClosed) {
			break
		}
		got = append(got, id)
		after = id
	}
	if len(got) != 2 || got[0] != 11 || got[1] != 12 {
		t.Fatalf("drained %v", got)
	}
}

func TestDropOldest(t *testing.T) {
	var dropped []uint64
	s, _ := Open(t.TempDir(), Options{MaxBytes: 10, Policy: DropOldest, OnDrop: func(d Dropped) { dropped = append(dropped, d.ID) }})
	for id := uint64(1); id <= 5; id++ {
		s.Put(id, make([]byte, 4))
	}
	if n, b := s.Len(); n != 2 || b != 8 {
		t.Fatalf("%d batches, %d bytes kept", n, b)
	}
	if len(dropped) != 3 || dropped[0] != 1 || s.DroppedCount() != 3 {
		t.Fatalf("dropped %v (count %d)", dropped, s.DroppedCount())
	}
	// A batch larger than the spool is still taken once the spool is empty.
	if err := s.Put(9, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
}

func TestBlockWaitsForRoom(t *testing.T) {
	s, _ := Open(t.TempDir(), Options{MaxBytes: 10})
	s.Put(1, make([]byte, 8))
	put := make(chan error, 1)
	go func() { put <- s.Put(2, make([]byte, 8)) }()
	select {
	case err := <-put:
		t.Fatalf("Put into a full spool returned at once: %v", err)
	case <-time.After(50 * time.Millisecond): // it must still be waiting
	}
	s.Remove(1)
	select {
	case err := <-put:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Put not released by Remove")
	}
	// Close releases a blocked Put.
	go func() { put <- s.Put(3, make([]byte, 8)) }()
	s.Close()
	if err := <-put; !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
}

// TestSetAsideUnreadable: a batch whose file cannot be read (here a
// directory where its file should be) is reported by Next with its id;
// SetAside renames it out of the way without deleting it, frees its room,
// and the batches after it still come out, now and after a reopen.
func TestSetAsideUnreadable(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for id := uint64(1); id <= 3; id++ {
		if err := s.Put(id, []byte("batch")); err != nil {
			t.Fatal(err)
		}
	}
	bad := s.path(2)
	if err := os.Remove(bad); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	if id, _, err := s.Next(1); id != 2 || err == nil {
		t.Fatalf("Next(1) = %d, %v; want batch 2 and its read error", id, err)
	}
	p, err := s.SetAside(2)
	if err != nil || p != bad+SetAsideSuffix {
		t.Fatalf("SetAside = %q, %v; want %q", p, err, bad+SetAsideSuffix)
	}
	if st, err := os.Stat(p); err != nil || !st.IsDir() {
		t.Fatalf("the set-aside batch is not at %s: %v", p, err)
	}
	if n, b := s.Len(); n != 2 || b != 10 || s.SetAsideCount() != 1 {
		t.Fatalf("after SetAside: %d batches, %d bytes, %d set aside; want 2, 10, 1", n, b, s.SetAsideCount())
	}
	if id, b, err := s.Next(1); id != 3 || err != nil || string(b) != "batch" {
		t.Fatalf("Next(1) after SetAside = %d %q %v; want batch 3", id, b, err)
	}
	if _, err := s.SetAside(2); err == nil {
		t.Fatal("SetAside of a batch no longer spooled succeeded")
	}
	s.Close()

	s, err = Open(dir, Options{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, _ := s.Len(); n != 2 {
		t.Fatalf("after reopen: %d batches; want 2 (the set-aside one not loaded)", n)
	}
}

// TestFullDiskBlocks: a batch the disk refuses (ENOSPC) is not given up:
// Put holds the producer and writes it once the disk takes it again,
// reporting the trouble and its end (issue 14: batches went straight to
// the dead-letter directory and 5,553 of 12,000 records were lost).
func TestFullDiskBlocks(t *testing.T) {
	for _, policy := range []Policy{Block, DropOldest} {
		errs := make(chan error, 100)
		s, err := Open(t.TempDir(), Options{MaxBytes: 1 << 20, Policy: policy,
			OnWriteError: func(attempt int, err error) { errs <- err }})
		if err != nil {
			t.Fatal(err)
		}
		var full atomic.Bool
		full.Store(true)
		s.write = func(path string, b []byte) error {
			if full.Load() {
				return &os.PathError{Op: "write", Path: path, Err: syscall.ENOSPC}
			}
			return writeDurably(path, b)
		}
		put := make(chan error, 1)
		go func() { put <- s.Put(1, []byte("batch")) }()
		for range 2 { // two refusals reported, and Put still holds
			select {
			case err := <-errs:
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("reported %v", err)
				}
			case err := <-put:
				t.Fatalf("Put returned %v on a full disk", err)
			case <-time.After(10 * time.Second):
				t.Fatal("no write error reported")
			}
		}
		full.Store(false)
		select {
		case err := <-put:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Put did not return once the disk had room")
		}
		// Put reported everything before it returned: more refusals, then
		// the recovery.
		var last error = syscall.ENOSPC
		for len(errs) > 0 {
			last = <-errs
		}
		if last != nil {
			t.Fatalf("the recovery was reported as %v", last)
		}
		if id, b, err := s.Next(0); id != 1 || string(b) != "batch" || err != nil {
			t.Fatalf("spooled %d %q %v", id, b, err)
		}
		s.Close()
	}
}

// TestFullDiskAtShutdown: once Unbound (the host is stopping), Put gives
// up on a disk that keeps refusing after a few attempts, with the error;
// Close releases a Put at once.
func TestFullDiskAtShutdown(t *testing.T) {
	s, _ := Open(t.TempDir(), Options{MaxBytes: 1 << 20})
	attempts := 0
	s.write = func(path string, b []byte) error {
		attempts++
		return syscall.ENOSPC
	}
	s.Unbound()
	if err := s.Put(1, []byte("x")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put on a full disk at shutdown: %v", err)
	}
	if attempts != 1+unboundAttempts {
		t.Errorf("%d attempts", attempts)
	}
	if n, _ := s.Len(); n != 0 {
		t.Errorf("%d batches counted", n)
	}

	s2, _ := Open(t.TempDir(), Options{MaxBytes: 1 << 20})
	tried := make(chan struct{}, 100)
	s2.write = func(string, []byte) error { tried <- struct{}{}; return syscall.EIO }
	put := make(chan error, 1)
	go func() { put <- s2.Put(1, []byte("x")) }()
	<-tried
	s2.Close()
	select {
	case err := <-put:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Put after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not release Put")
	}
}

// TestStopRetryingEndsAWait: a Put waiting out a disk that keeps refusing
// gives up promptly once its host stops (StopRetrying), so that a full
// or read-only disk cannot hold the shutdown for ever.
func TestStopRetryingEndsAWait(t *testing.T) {
	s, _ := Open(t.TempDir(), Options{MaxBytes: 1 << 20})
	tried := make(chan struct{}, 1000)
	s.write = func(string, []byte) error { tried <- struct{}{}; return syscall.EROFS }
	put := make(chan error, 1)
	go func() { put <- s.Put(1, []byte("x")) }()
	<-tried
	<-tried // it is retrying
	s.StopRetrying()
	select {
	case err := <-put:
		if !errors.Is(err, syscall.EROFS) {
			t.Fatalf("Put after StopRetrying: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("StopRetrying did not end the wait")
	}
}

// TestMetas: a batch's meta is written before it and removed after it; a
// new Open returns the metas of the batches still spooled, and drops a
// meta whose batch is gone (delivered, or never written).
func TestMetas(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	stored := false
	if err := s.PutNotify(1, []byte("one"), []byte("meta1"), func() { stored = true }); err != nil || !stored {
		t.Fatalf("PutNotify: %v, stored %v", err, stored)
	}
	s.PutNotify(2, []byte("two"), []byte("meta2"), nil)
	s.Put(3, []byte("three")) // no meta
	s.Remove(1)
	os.WriteFile(s.metaPath(9), []byte("meta9"), 0o644) // a batch never written
	s.Close()
	s2, err := Open(dir, Options{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if m := s2.Metas(); len(m) != 1 || string(m[0]) != "meta2" {
		t.Fatalf("Metas = %q, want [meta2]", m)
	}
	for _, id := range []uint64{1, 9} {
		if _, err := os.Stat(s2.metaPath(id)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the meta of batch %d, gone, is still there", id)
		}
	}
	if n, _ := s2.Len(); n != 2 {
		t.Fatalf("%d batches, want 2", n)
	}
}
