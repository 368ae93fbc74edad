package spool

import (
	"errors"
	"os"
	"testing"
	"time"
)

func TestSpoolPersistsInOrder(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, 1<<20, Block, nil)
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

	s, err = Open(dir, 1<<20, Block, nil) // a restarted host
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
	s, _ := Open(t.TempDir(), 10, DropOldest, func(d Dropped) { dropped = append(dropped, d.ID) })
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
	s, _ := Open(t.TempDir(), 10, Block, nil)
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
	s, err := Open(dir, 1<<20, Block, nil)
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

	s, err = Open(dir, 1<<20, Block, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, _ := s.Len(); n != 2 {
		t.Fatalf("after reopen: %d batches; want 2 (the set-aside one not loaded)", n)
	}
}
