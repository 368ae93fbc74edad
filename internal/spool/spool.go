// Package spool is a transport's durable queue on disk: formatted batches
// wait in it, oldest first, until the transport acknowledges them, and
// survive a restart of the host. It is bounded in bytes; when full it
// either blocks the producer or drops the oldest batch, counting every drop.
//
// A disk that refuses a batch (full, over quota, failing) is waited for as
// a full spool is under Block, whatever the policy: Put tries the batch
// again, with backoff, until it is written, so that nothing is lost to
// a disk that was full for a while; the consumer goes on sending and
// removing what is spooled, which may be what makes the room. Only a
// spool told to stop retrying (StopRetrying, Unbound: its host is
// stopping) gives up, after a few attempts, and returns the error.
package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/logtk/logtk/internal/fsutil"
)

// Policy says what Put does when the spool is full.
type Policy int

const (
	// Block waits until there is room: back-pressure to the workers.
	Block Policy = iota
	// DropOldest deletes the oldest batches to make room, counting them.
	DropOldest
)

// Dropped describes batches DropOldest removed.
type Dropped struct {
	ID    uint64
	Bytes int64
}

// Options configure Open.
type Options struct {
	// MaxBytes bounds the bytes spooled (a batch larger than the bound is
	// still taken into an empty spool).
	MaxBytes int64
	// Policy says what Put does when the spool is full. Default Block.
	Policy Policy
	// OnDrop is called for every batch DropOldest removes, with the spool
	// locked: it must not call the spool.
	OnDrop func(Dropped)
	// OnWriteError is told when Put could not write a batch and will try
	// again (err, with the attempt's number, 1 for the first), and when a
	// batch that failed was written at last (nil). It is called from Put.
	OnWriteError func(attempt int, err error)
}

// Backoff between attempts to write a batch the disk refused, and how
// many attempts an Unbound spool makes before it gives up.
const (
	retryFirst      = 50 * time.Millisecond
	retryMax        = time.Second
	unboundAttempts = 3
)

// Spool is safe for concurrent use by one producer and one consumer.
type Spool struct {
	dir    string
	max    int64
	policy Policy
	onDrop func(Dropped)
	onErr  func(int, error)
	// write stores b durably at path (tests inject failures).
	write   func(path string, b []byte) error
	unbound bool
	// giveUp: Put gives up on a batch the disk keeps refusing after a
	// few more attempts (Unbound, StopRetrying); wake is closed then, or
	// by Close, to cut a backoff short.
	giveUp   bool
	wake     chan struct{}
	wakeOnce sync.Once
	mu       sync.Mutex
	cond     *sync.Cond
	ids      []uint64         // spooled, ascending
	sizes    map[uint64]int64 // bytes per id
	bytes    int64
	closed   bool
	// drainOnClose: after CloseInput, Next still hands out what is left.
	drainOnClose bool
	dropped      int64
	setAside     int64
	metas        [][]byte // what Open found beside the batches
}

// Open opens (or creates) the spool in dir and loads the batches a
// previous run left there.
func Open(dir string, opts Options) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s := &Spool{dir: dir, max: opts.MaxBytes, policy: opts.Policy, onDrop: opts.OnDrop, onErr: opts.OnWriteError,
		write: writeDurably, sizes: map[uint64]int64{}, wake: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(filepath.Join(dir, name)) // an interrupted Put: never acknowledged to anyone
			continue
		}
		if strings.HasSuffix(name, ".meta") {
			// Written before its batch, removed after it: alone, it is
			// of a batch delivered, or of one never written.
			path := filepath.Join(dir, name)
			if _, err := os.Stat(strings.TrimSuffix(path, ".meta") + ".batch"); errors.Is(err, os.ErrNotExist) {
				os.Remove(path)
			} else if b, err := os.ReadFile(path); err == nil {
				s.metas = append(s.metas, b)
			}
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, ".batch"), 10, 64)
		if err != nil || !strings.HasSuffix(name, ".batch") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		s.ids = append(s.ids, id)
		s.sizes[id] = info.Size()
		s.bytes += info.Size()
	}
	slices.Sort(s.ids)
	return s, nil
}

func (s *Spool) path(id uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d.batch", id))
}

func (s *Spool) metaPath(id uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d.meta", id))
}

// Metas returns what PutNotify stored beside each batch that Open found
// in the spool.
func (s *Spool) Metas() [][]byte { return s.metas }

// Len returns the number of spooled batches and their bytes.
func (s *Spool) Len() (int, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids), s.bytes
}

// DroppedCount returns how many batches DropOldest removed.
func (s *Spool) DroppedCount() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// MaxID returns the highest spooled id, or 0.
func (s *Spool) MaxID() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ids) == 0 {
		return 0
	}
	return s.ids[len(s.ids)-1]
}

// Unbound lifts the bound: Put no longer waits or drops, and gives up on
// a batch the disk keeps refusing after a few attempts. For a shutdown
// whose consumer has stopped, so that what is still queued is kept.
func (s *Spool) Unbound() {
	s.StopRetrying()
	s.mu.Lock()
	s.max = 1<<63 - 1
	s.unbound = true
	s.cond.Broadcast()
	s.mu.Unlock()
}

// StopRetrying makes Put give up, after a few more attempts without
// waiting between them, on a batch the disk keeps refusing, and return its
// error: for a host that is stopping, so that a disk that stays full or
// read-only cannot hold the shutdown. The bound and its policy stay.
func (s *Spool) StopRetrying() {
	s.mu.Lock()
	s.giveUp = true
	s.mu.Unlock()
	s.wakeOnce.Do(func() { close(s.wake) })
}

// ErrClosed is returned after Close.
var ErrClosed = errors.New("spool closed")

// Put stores a batch durably (written and synced) under id, which must be
// greater than every id put before. A batch larger than the whole spool
// is stored anyway once the spool is empty, so that nothing is refused for
// its size alone. A batch the disk refuses is tried again until it is
// written (see the package comment); Put returns an error only when the
// spool is closed, or told to stop retrying and the disk still refuses it.
func (s *Spool) Put(id uint64, batch []byte) error { return s.PutNotify(id, batch, nil, nil) }

// PutNotify is Put that also stores meta (when not nil) beside the batch,
// written before it and removed after it, for Metas to return after a
// restart, and calls stored, when set, as soon as the batch is in the
// spool under its name: from then on a process that starts after this
// one dies finds it, though the machine's crash may still lose it until
// the directory is synced, which Put does after stored returns.
func (s *Spool) PutNotify(id uint64, batch, meta []byte, stored func()) error {
	n := int64(len(batch))
	s.mu.Lock()
	for !s.closed && len(s.ids) > 0 && s.bytes+n > s.max {
		if s.policy == DropOldest {
			old := s.ids[0]
			size := s.sizes[old]
			s.remove(old)
			s.dropped++
			if s.onDrop != nil {
				s.onDrop(Dropped{ID: old, Bytes: size})
			}
			continue
		}
		s.cond.Wait()
	}
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.mu.Unlock()

	if meta != nil {
		// Not synced: it matters only to a process that follows this
		// one on the same machine. Without it, that process may send
		// the batch's records a second time, never lose them; a disk
		// that refuses it refuses the batch next, which is reported.
		writeRenamed(s.metaPath(id), meta)
	}
	delay := retryFirst
	for attempt, lastTry := 1, 0; ; attempt++ {
		err := s.write(s.path(id), batch)
		if err == nil {
			if stored != nil {
				stored()
			}
			fsutil.SyncDir(s.dir)
			if attempt > 1 && s.onErr != nil {
				s.onErr(attempt, nil)
			}
			break
		}
		if s.onErr != nil {
			s.onErr(attempt, err)
		}
		s.mu.Lock()
		closed, giveUp := s.closed, s.giveUp
		s.mu.Unlock()
		if closed {
			return ErrClosed
		}
		if giveUp {
			if lastTry == 0 {
				lastTry = attempt + unboundAttempts
			}
			if attempt >= lastTry {
				return fmt.Errorf("spool: batch %d: %w", id, err)
			}
		}
		// Backoff for the disk, cut short when the spool stops retrying
		// or closes.
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-s.wake:
			t.Stop()
		}
		delay = min(2*delay, retryMax)
	}
	s.mu.Lock()
	s.ids = append(s.ids, id)
	s.sizes[id] = n
	s.bytes += n
	s.cond.Broadcast()
	s.mu.Unlock()
	return nil
}

// writeDurably writes b to a temporary file, syncs it and renames it to
// path; the caller syncs the directory. On failure nothing is left
// behind.
func writeDurably(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := fsutil.WriteSynced(tmp, b, os.O_TRUNC); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// writeRenamed writes b to path through a temporary file, unsynced.
func writeRenamed(path string, b []byte) error {
	if err := os.WriteFile(path+".tmp", b, 0o644); err != nil {
		os.Remove(path + ".tmp")
		return err
	}
	return os.Rename(path+".tmp", path)
}

// Meta returns what PutNotify stored beside batch id, nil if nothing (or
// it cannot be read).
func (s *Spool) Meta(id uint64) []byte {
	b, _ := os.ReadFile(s.metaPath(id))
	return b
}

// Next waits for a spooled batch with an id greater than after and returns
// the first such, leaving it spooled. When the batch's file cannot be
// read, Next returns its id with the error (the caller may try again, or
// SetAside the batch and go on after it). It returns ErrClosed once the spool
// is closed by Close, or by CloseInput and everything spooled was handed out.
// A consumer with several batches on their way reads with Next.
func (s *Spool) Next(after uint64) (uint64, []byte, error) {
	for {
		s.mu.Lock()
		i, _ := slices.BinarySearch(s.ids, after+1)
		for i >= len(s.ids) && !s.closed {
			s.cond.Wait()
			i, _ = slices.BinarySearch(s.ids, after+1)
		}
		if i >= len(s.ids) || (s.closed && !s.drainOnClose) {
			s.mu.Unlock()
			return 0, nil, ErrClosed
		}
		id := s.ids[i]
		s.mu.Unlock()
		b, err := os.ReadFile(s.path(id))
		if errors.Is(err, os.ErrNotExist) {
			after = id // dropped meanwhile: the next one
			continue
		}
		return id, b, err
	}
}

// Remove deletes an acknowledged batch.
func (s *Spool) Remove(id uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.remove(id)
}

func (s *Spool) remove(id uint64) error {
	if !s.forget(id) {
		return nil
	}
	err := os.Remove(s.path(id))
	os.Remove(s.metaPath(id)) // after the batch: a meta without its batch is harmless
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// forget takes id out of the spool's accounting (with s.mu held), leaving
// its file alone, and wakes a Put waiting for room. It reports whether id
// was spooled.
func (s *Spool) forget(id uint64) bool {
	i, found := slices.BinarySearch(s.ids, id)
	if !found {
		return false
	}
	s.ids = slices.Delete(s.ids, i, i+1)
	s.bytes -= s.sizes[id]
	delete(s.sizes, id)
	s.cond.Broadcast()
	return true
}

// SetAsideSuffix is appended to the file name of a batch SetAside takes
// out of the spool. Open does not load such files again.
const SetAsideSuffix = ".unreadable"

// SetAside takes a batch that cannot be read out of the spool without
// deleting it: its file is renamed with SetAsideSuffix, for an operator
// to look at, and it no longer counts against the bound or comes out of
// Next. It returns the new path; when the rename fails, the batch is
// taken out all the same (its file keeps its name, and the next Open
// loads it again) and the error says why.
func (s *Spool) SetAside(id uint64) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.forget(id) {
		return "", fmt.Errorf("batch %d is not spooled", id)
	}
	s.setAside++
	p := s.path(id)
	if err := os.Rename(p, p+SetAsideSuffix); err != nil {
		return p, err
	}
	return p + SetAsideSuffix, nil
}

// SetAsideCount returns how many batches SetAside took out.
func (s *Spool) SetAsideCount() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.setAside
}

// CloseInput marks the end of Puts: Next keeps returning what is spooled
// and then ErrClosed.
func (s *Spool) CloseInput() {
	s.mu.Lock()
	s.closed, s.drainOnClose = true, true
	s.cond.Broadcast()
	s.mu.Unlock()
}

// Close stops the spool at once: Put and Next return ErrClosed and what
// is spooled stays on disk for the next run.
func (s *Spool) Close() {
	s.mu.Lock()
	s.closed, s.drainOnClose = true, false
	s.cond.Broadcast()
	s.mu.Unlock()
	s.wakeOnce.Do(func() { close(s.wake) })
}
