// Package server is the log server's engine: it accepts wire protocol v1
// connections, authenticates them, and stores batches exactly once.
package server

import (
	"bufio"
	"cmp"
	"container/list"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/internal/fsutil"
	"github.com/logtk/logtk/internal/marks"
	"github.com/logtk/logtk/internal/record"
)

// The store keeps, per application and format, a data file holding the
// records (records.log: raw, for text formats; records.pb: uvarint-length-
// prefixed, for logtk.v1.Record) and beside it an index (records.log.idx)
// with one line per stored batch:
//
//	<end offset of the batch in the data file> <batch id> <sender> [<held>]
//
// where held, for a batch of logtk.v1.Record, is the highest seq of each
// worker instance in it (internal/marks' encoding, in unpadded URL-safe
// base64). A batch is acknowledged only once both are written (and
// synced, in "batch" fsync mode). On start the store reads the indexes to
// learn each sender's last stored batch id and what it holds (Held), and
// cuts any data past the last indexed batch: that tail was never acknowledged, so its sender will resend it.
// Together with the senders' increasing batch ids this stores each batch
// exactly once.
//
// Syncs are grouped: Append writes a batch and returns a Ticket, Commit
// waits until a sync covers it. One sync covers every batch appended
// before it started, whichever connection wrote it, so a connection with
// batches in flight, or many connections, pay one sync per group rather
// than one per batch.
//
// A failed sync fails every ticket not yet durable, and the store cuts
// both files back to what the last good sync covered: after a failed
// fsync the kernel may have dropped the pages it could not write, so what
// the files seem to hold past that point cannot be trusted. The senders
// resend those batches; their earlier copies no longer count as
// duplicates. A later batch of theirs (one the same connection sends on
// after the failure) is refused, so that the resends are not taken for
// its duplicates; Resume, when the sender connects again, lifts that.
//
// At most MaxOpen application files are open at once. One that is idle
// (no batch being written, no sync running) may be closed, synced first,
// to open another; what
// exactly-once depends on, each sender's last batch id, stays in memory,
// and the sizes are read again when the file is opened, so a file closed
// and reopened goes on as if it had stayed open.

// StoreOptions configure a Store.
type StoreOptions struct {
	Dir string
	// Fsync syncs data and index before a batch is acknowledged.
	Fsync bool
	// MaxBytes rotates a data file that would grow past it (0: never).
	MaxBytes int64
	// MaxOpen bounds the application files open at once, each a data file
	// and its index (two descriptors; an application sending two formats
	// has two files). To open one more, the least recently used idle file
	// (no batch being written to it, no sync running) is closed, after a
	// sync if it has batches not yet synced, and opened again when next
	// written. When every open file is busy, Append returns ErrTooManyOpen.
	// Default 256.
	MaxOpen int
	// OnSync, when set, is told how long each sync of a data file and its
	// index took (for the fsync latency metric).
	OnSync func(time.Duration)
}

// ErrTooManyOpen is returned (wrapped, with the application) by Append
// when MaxOpen files are open and each is busy (a batch being written to
// it, or a sync running): the batch is not stored; its sender should try
// again later.
var ErrTooManyOpen = errors.New("too many application files open at once")

// Store writes batches into per-application files.
type Store struct {
	opts StoreOptions

	mu    sync.Mutex
	files map[string]*appFile // key: application/name
	// open lists the files holding one of the MaxOpen places, most
	// recently used first: their descriptors are open, or about to be
	// opened by the Append that took the place.
	open list.List
	last map[string]uint64 // key: application/sender; durable batches
	// appended holds, per application/sender, the last batch id written
	// (durable or not) and the ticket that makes it durable: a batch
	// resent while its first copy awaits its sync is a duplicate that is
	// acknowledged once that sync is done.
	appended map[string]Ticket
	// held: per application/sender, per worker instance, the highest seq
	// of the durable batches (at most maxHeldInstances instances).
	held map[string]map[WorkerSeq]uint64
}

// WorkerSeq is a worker instance and a seq (fields 16, 17 and 20 of a
// logtk.v1.Record).
type WorkerSeq struct {
	Worker string
	Index  uint32
	Seq    uint64
}

// maxHeldInstances bounds the worker instances Held follows per sender:
// a sender that makes up more gets no marks for them (what they hold may
// come again; nothing is lost), not a server that runs out of memory.
const maxHeldInstances = 4096

// A Ticket names an appended batch; Commit makes it durable.
type Ticket struct {
	af  *appFile
	gen uint64
	key string
	id  uint64
	// lost: a sync failed before this batch was durable, and the files
	// were cut back (set in Store.appended only).
	lost bool
	// held: the batch's worker instances' highest seqs, Held's once the
	// batch is durable (a pointer: tickets compare).
	held *[]WorkerSeq
}

type appFile struct {
	// Under Store.mu: place is the file's element in Store.open (nil while
	// it has none, its descriptors closed); users counts the Appends
	// using it, which keep it from being closed.
	place *list.Element
	users int

	mu        sync.Mutex
	dir, name string // data: dir/name.<ext>, index: dir/name.idx
	ext       string
	prefixed  bool
	data, idx *os.File
	closed    bool // data and idx are closed: reopen before use
	// parked: closed whole, while idle, to free its place (or never
	// opened yet): open again before use, with nothing to recover (unlike
	// closed alone, after a failed write).
	parked  bool
	size    int64 // of data
	idxSize int64
	// syncDirs: a directory or file open creates is made durable (its
	// directory entry synced) before anything is stored in it.
	syncDirs bool
	buf      []byte
	// What the last good sync covered (or the sizes at open): a failed
	// sync cuts the files back to these.
	syncedSize, syncedIdxSize int64

	// Group commit, under mu: gen counts appended batches, synced is the
	// gen the last good sync covered, syncing is set while a sync runs
	// (without mu); failed/failErr report a sync that failed for gens up
	// to failed.
	cond    sync.Cond
	gen     uint64
	synced  uint64
	syncing bool
	failed  uint64
	failErr error
}

// OpenStore opens (and recovers) the store in dir.
func OpenStore(opts StoreOptions) (*Store, error) {
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	if opts.MaxOpen <= 0 {
		opts.MaxOpen = 256
	}
	s := &Store{opts: opts, files: map[string]*appFile{}, last: map[string]uint64{}, appended: map[string]Ticket{},
		held: map[string]map[WorkerSeq]uint64{}}
	idxs, err := filepath.Glob(filepath.Join(opts.Dir, "*", "*.idx"))
	if err != nil {
		return nil, err
	}
	for _, idx := range idxs {
		if err := s.recover(idx); err != nil {
			return nil, fmt.Errorf("recovering %s: %w", idx, err)
		}
	}
	return s, nil
}

// recover reads an index, learns the senders' last batch ids, and for a
// live (unrotated) file cuts data and index after the last complete batch.
func (s *Store) recover(idxPath string) error {
	app := filepath.Base(filepath.Dir(idxPath))
	f, err := os.OpenFile(idxPath, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	dataPath := strings.TrimSuffix(idxPath, ".idx")
	if _, err := os.Stat(dataPath); err != nil {
		dataPath = ""
	}
	var dataSize int64 = -1
	if dataPath != "" {
		st, err := os.Stat(dataPath)
		if err != nil {
			return err
		}
		dataSize = st.Size()
	}
	r := bufio.NewReader(f)
	var goodIdx, goodData int64
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break // a partial last line is cut below
		}
		fields := strings.Fields(line)
		if len(fields) != 3 && len(fields) != 4 {
			break
		}
		end, err1 := strconv.ParseInt(fields[0], 10, 64)
		id, err2 := strconv.ParseUint(fields[1], 10, 64)
		if err1 != nil || err2 != nil || (dataSize >= 0 && end > dataSize) {
			break // the data of this batch did not reach the disk
		}
		key := app + "/" + fields[2]
		if id > s.last[key] {
			s.last[key] = id
		}
		if len(fields) == 4 {
			s.noteHeld(key, decodeHeld(fields[3]))
		}
		goodIdx += int64(len(line))
		goodData = end
	}
	if dataSize >= 0 && dataSize > goodData {
		if err := os.Truncate(dataPath, goodData); err != nil {
			return err
		}
	}
	return f.Truncate(goodIdx)
}

// Resume is called when sender connects (its previous connection ended):
// it returns LastBatch, and forgets the batches of sender that a failed
// sync lost, so that the sender may go on with any greater id, whether it
// resends them or not.
func (s *Store) Resume(application, sender string) uint64 {
	key := application + "/" + sender
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.appended[key].lost {
		delete(s.appended, key)
	}
	return s.last[key]
}

// Held returns, for each worker instance of sender in application, the
// highest seq among the records of the durable batches, sorted.
func (s *Store) Held(application, sender string) []WorkerSeq {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []WorkerSeq
	for k, seq := range s.held[application+"/"+sender] {
		out = append(out, WorkerSeq{Worker: k.Worker, Index: k.Index, Seq: seq})
	}
	slices.SortFunc(out, func(a, b WorkerSeq) int {
		return cmp.Or(strings.Compare(a.Worker, b.Worker), cmp.Compare(a.Index, b.Index))
	})
	return out
}

// HeldOf returns Held's seq for one worker instance of sender in
// application, and whether it holds any.
func (s *Store) HeldOf(application, sender, worker string, index uint32) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seq, ok := s.held[application+"/"+sender][WorkerSeq{Worker: worker, Index: index}]
	return seq, ok
}

// noteHeld adds a durable batch's seqs to Held (with s.mu held).
func (s *Store) noteHeld(key string, seqs []WorkerSeq) {
	if len(seqs) == 0 {
		return
	}
	m := s.held[key]
	if m == nil {
		m = map[WorkerSeq]uint64{}
		s.held[key] = m
	}
	for _, w := range seqs {
		k := WorkerSeq{Worker: w.Worker, Index: w.Index}
		if _, ok := m[k]; ok || len(m) < maxHeldInstances {
			m[k] = max(m[k], w.Seq)
		}
	}
}

func encodeHeld(b []byte, seqs []WorkerSeq) []byte {
	var raw []byte
	for _, w := range seqs {
		raw = marks.Append(raw, w.Worker, w.Index, w.Seq)
	}
	return base64.RawURLEncoding.AppendEncode(b, raw)
}

// decodeHeld reads an index line's held field; what it cannot read, it
// leaves out (a missing mark costs a record sent again, never one lost).
func decodeHeld(f string) []WorkerSeq {
	raw, err := base64.RawURLEncoding.DecodeString(f)
	if err != nil {
		return nil
	}
	var out []WorkerSeq
	marks.Each(raw, func(w []byte, index uint32, seq uint64) {
		out = append(out, WorkerSeq{Worker: string(w), Index: index, Seq: seq})
	})
	return out
}

// LastBatch returns the highest batch id stored for sender in application.
func (s *Store) LastBatch(application, sender string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[application+"/"+sender]
}

// Write stores a batch unless the sender's batch id shows it is stored
// already (dup). When it returns nil the batch is as durable as the
// store's fsync option makes it. It is Append then Commit.
func (s *Store) Write(application, sender, format string, batchID uint64, batch []byte) (dup bool, err error) {
	t, dup, err := s.Append(application, sender, format, batchID, batch)
	if err != nil {
		return false, err
	}
	return dup, s.Commit(t)
}

// Append writes a batch unless the sender's batch id shows it is written
// already (dup), without waiting for a sync. The batch is durable, and may
// be acknowledged, once Commit of the returned Ticket returns nil (for a
// dup, once its first copy is durable). Batch ids start at 1: id 0 is
// refused with an error (it is LastBatch's "nothing stored", so it would
// be taken for a duplicate and never written).
func (s *Store) Append(application, sender, format string, batchID uint64, batch []byte) (t Ticket, dup bool, err error) {
	return s.AppendStamped(application, sender, format, batchID, batch, nil)
}

// AppendStamped is Append that appends stamp to every record of a format
// stored with length prefixes (logtk.v1.Record) as it copies the batch out
// (the log server's record.AppendServerStamp), at no cost beyond the
// bytes.
func (s *Store) AppendStamped(application, sender, format string, batchID uint64, batch, stamp []byte) (t Ticket, dup bool, err error) {
	return s.AppendHeld(application, sender, format, batchID, batch, stamp, nil)
}

// AppendHeld is AppendStamped with the batch's worker instances' highest
// seqs, which Held names once the batch is durable.
func (s *Store) AppendHeld(application, sender, format string, batchID uint64, batch, stamp []byte, held []WorkerSeq) (t Ticket, dup bool, err error) {
	if batchID == 0 {
		return Ticket{}, false, fmt.Errorf("batch id 0 of %s/%s: ids start at 1 (0 stands for \"nothing stored\")", application, sender)
	}
	af, err := s.acquire(application, format)
	if err != nil {
		return Ticket{}, false, err
	}
	defer s.release(af)
	af.mu.Lock()
	defer af.mu.Unlock()
	key := application + "/" + sender
	s.mu.Lock()
	last, prev := s.last[key], s.appended[key]
	s.mu.Unlock()
	if batchID <= last {
		return Ticket{}, true, nil
	}
	if prev.lost {
		// A sync failed with batches of this sender not yet durable, and
		// they were cut from the files: its resends are stored again, and
		// a later batch (read on the connection after the failure) is
		// refused, so that the resends are not taken for its duplicates.
		// The sender's next connection starts afresh (Resume).
		if batchID > prev.id {
			return Ticket{}, false, fmt.Errorf("batch %d of %s/%s follows batches lost to a failed sync (up to %d); they must be sent again first", batchID, application, sender, prev.id)
		}
	} else if batchID <= prev.id {
		return prev, true, nil
	}
	switch {
	case af.parked:
		if err := af.open(); err != nil {
			return Ticket{}, false, err
		}
		af.parked = false
	case af.closed:
		if err := af.reopen(); err != nil {
			return Ticket{}, false, err
		}
	}
	af.buf = af.buf[:0]
	if !af.prefixed {
		stamp = nil
	}
	entries.Each(batch, func(e []byte) {
		st := stamp
		if st != nil && !record.WholeFields(e) {
			// Appended to a record that ends inside a field, the stamp
			// would become that field's contents, and fields the sender
			// put before it would stand as the record's origin. Such a
			// record is malformed anyway: it is kept as it came.
			st = nil
		}
		if af.prefixed {
			af.buf = protowire.AppendVarint(af.buf, uint64(len(e)+len(st)))
		}
		af.buf = append(af.buf, e...)
		af.buf = append(af.buf, st...)
	})
	if s.opts.MaxBytes > 0 && af.size > 0 && af.size+int64(len(af.buf)) > s.opts.MaxBytes {
		if err := s.rotate(af); err != nil {
			return Ticket{}, false, err
		}
	}
	n, err := af.data.Write(af.buf)
	af.size += int64(n)
	if err != nil {
		return Ticket{}, false, errors.Join(err, af.reopen())
	}
	af.buf = strconv.AppendInt(af.buf[:0], af.size, 10)
	af.buf = append(af.buf, ' ')
	af.buf = strconv.AppendUint(af.buf, batchID, 10)
	af.buf = append(af.buf, ' ')
	af.buf = append(af.buf, sender...)
	if len(held) > 0 {
		af.buf = append(af.buf, ' ')
		af.buf = encodeHeld(af.buf, held)
	}
	af.buf = append(af.buf, '\n')
	n, err = af.idx.Write(af.buf)
	af.idxSize += int64(n)
	if err != nil {
		return Ticket{}, false, errors.Join(err, af.reopen())
	}
	af.gen++
	t = Ticket{af: af, gen: af.gen, key: key, id: batchID}
	if len(held) > 0 {
		t.held = &held
	}
	s.mu.Lock()
	s.appended[key] = t
	if !s.opts.Fsync {
		s.last[key] = max(s.last[key], batchID)
		s.noteHeld(key, held)
	}
	s.mu.Unlock()
	return t, false, nil
}

// Commit returns once the ticket's batch is durable: synced to disk in
// "batch" fsync mode (by this call or by one running already, which
// covers it if it started after the append), written without it. A
// failed sync fails every ticket it covered; their senders resend.
func (s *Store) Commit(t Ticket) error {
	af := t.af
	if af == nil || !s.opts.Fsync {
		return nil
	}
	af.mu.Lock()
	for af.synced < t.gen {
		if t.gen <= af.failed {
			err := af.failErr
			af.mu.Unlock()
			return err
		}
		if af.syncing {
			af.cond.Wait()
			continue
		}
		af.syncing = true
		target, data, idx := af.gen, af.data, af.idx
		size, idxSize := af.size, af.idxSize
		af.mu.Unlock()
		start := time.Now()
		err := errors.Join(syncFile(data), syncFile(idx))
		if s.opts.OnSync != nil {
			s.opts.OnSync(time.Since(start))
		}
		af.mu.Lock()
		af.syncing = false
		if err != nil {
			s.syncFailed(af, err)
		} else {
			af.synced = target
			af.syncedSize, af.syncedIdxSize = size, idxSize
		}
		af.cond.Broadcast()
	}
	af.mu.Unlock()
	s.mu.Lock()
	if t.id > s.last[t.key] {
		s.last[t.key] = t.id
	}
	if t.held != nil {
		s.noteHeld(t.key, *t.held)
	}
	s.mu.Unlock()
	return nil
}

// syncFile syncs a store file (a variable for tests that make it fail).
var syncFile = (*os.File).Sync

// syncFailed handles a failed sync of af (with af.mu held): every batch
// appended to af and not yet durable fails, including those appended
// while the sync ran, and the files are cut back to what the last good
// sync covered. The senders of those batches must resend them.
func (s *Store) syncFailed(af *appFile, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncFailedLocked(af, err)
}

// syncFailedLocked is syncFailed with s.mu held too.
func (s *Store) syncFailedLocked(af *appFile, err error) {
	af.failed, af.failErr = af.gen, err
	cut := errors.Join(af.data.Truncate(af.syncedSize), af.idx.Truncate(af.syncedIdxSize))
	if cut != nil {
		af.failErr = fmt.Errorf("%w (cutting the files back to the last sync also failed: %v)", err, cut)
	}
	if err := af.reopen(); err != nil {
		af.failErr = fmt.Errorf("%w (reopening the files: %v)", af.failErr, err)
	}
	for k, t := range s.appended {
		if t.af == af && t.gen > af.synced {
			t.lost = true
			s.appended[k] = t
		}
	}
}

// acquire returns the file of application and format holding one of the
// MaxOpen places, in use (so not closed) until release. When every place
// is taken, the least recently used idle file gives up its own; when none
// is idle, acquire fails with ErrTooManyOpen. The file's descriptors may
// be closed still (a new or parked file): Append opens them.
func (s *Store) acquire(application, format string) (*appFile, error) {
	name, ext, prefixed := "records", ".log", false
	if format == "logtk.v1.Record" {
		ext, prefixed = ".pb", true
	}
	key := application + "/" + name + ext
	s.mu.Lock()
	defer s.mu.Unlock()
	af := s.files[key]
	switch {
	case af != nil && af.place != nil:
		s.open.MoveToFront(af.place)
	case s.open.Len() >= s.opts.MaxOpen && !s.closeIdle():
		return nil, fmt.Errorf("%w: %s of application %q not opened: %d files are open (the limit), each with a batch being written or synced", ErrTooManyOpen, name+ext, application, s.open.Len())
	default:
		if af == nil {
			af = &appFile{dir: filepath.Join(s.opts.Dir, application), name: name, ext: ext, prefixed: prefixed, closed: true, parked: true, syncDirs: s.opts.Fsync}
			af.cond.L = &af.mu
			s.files[key] = af
		}
		af.place = s.open.PushFront(af)
	}
	af.users++
	return af, nil
}

// release ends a use of af that acquire began.
func (s *Store) release(af *appFile) {
	s.mu.Lock()
	af.users--
	s.mu.Unlock()
}

// closeIdle closes the least recently used idle file and takes its place
// away (with s.mu held); it reports whether it found one. Idle: no Append
// uses it and no sync runs on it. A file whose batches are all synced is
// taken first; failing that, one with batches written and not yet synced
// (their Commit still to come, or never: a connection that ended before
// they were acknowledged), which park syncs first. Nothing else about the
// file is forgotten: the senders' last batch ids stay in the Store, and
// its sizes are read again when it is opened.
func (s *Store) closeIdle() bool {
	for _, unsyncedToo := range []bool{false, true} {
		for e := s.open.Back(); e != nil; e = e.Prev() {
			af := e.Value.(*appFile)
			// TryLock: the lock order is af.mu, then s.mu. A file whose
			// lock is held is busy anyway.
			if af.users > 0 || !af.mu.TryLock() {
				continue
			}
			parked := !af.syncing && (unsyncedToo || !af.unsynced(s.opts.Fsync)) && s.park(af)
			af.mu.Unlock()
			if parked {
				s.open.Remove(e)
				af.place = nil
				return true
			}
		}
	}
	return false
}

// unsynced reports (with af.mu held) whether batches written to af await
// a sync: a Commit would still use its descriptors.
func (af *appFile) unsynced(fsync bool) bool {
	return fsync && af.gen > max(af.synced, af.failed)
}

// park closes af's descriptors (with af.mu and s.mu held), syncing first
// what is not synced yet, as rotate does: a Commit of those batches then
// finds them durable and leaves the descriptors alone. It reports false,
// leaving af open, when that sync fails (handled as Commit would: the
// batches are cut and their senders resend them).
func (s *Store) park(af *appFile) bool {
	if af.closed {
		return true // parked already, or closed by a failed reopen
	}
	if af.unsynced(s.opts.Fsync) {
		size, idxSize := af.size, af.idxSize
		if err := errors.Join(syncFile(af.data), syncFile(af.idx)); err != nil {
			s.syncFailedLocked(af, err)
			return false
		}
		af.synced = af.gen
		af.syncedSize, af.syncedIdxSize = size, idxSize
	}
	// Everything is synced (or needs no sync): a failed close loses
	// nothing the store has promised.
	af.data.Close()
	af.idx.Close()
	af.closed, af.parked = true, true
	return true
}

func (af *appFile) open() error {
	_, statErr := os.Stat(af.dir)
	newDir := errors.Is(statErr, os.ErrNotExist)
	if err := os.MkdirAll(af.dir, 0o755); err != nil {
		return err
	}
	dataPath := filepath.Join(af.dir, af.name+af.ext)
	_, dataErr := os.Stat(dataPath)
	_, idxErr := os.Stat(dataPath + ".idx")
	created := errors.Is(dataErr, os.ErrNotExist) || errors.Is(idxErr, os.ErrNotExist)
	if _, err := os.Stat(dataPath); errors.Is(err, os.ErrNotExist) {
		// A new data file beside an index of batches would pair it with
		// offsets into another file, and the next start would cut it
		// (and its acknowledged batches) back to what the index seems to
		// cover.
		if st, err := os.Stat(dataPath + ".idx"); err == nil && st.Size() > 0 {
			return fmt.Errorf("%s.idx indexes batches, but its data file %s is missing (a rotation that failed half-way, or a file removed by hand): restore the data file, or move the index aside, before batches of this application can be stored again", dataPath, dataPath)
		}
	}
	data, err := os.OpenFile(dataPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	idx, err := os.OpenFile(filepath.Join(af.dir, af.name+af.ext+".idx"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		data.Close()
		return err
	}
	st, err := data.Stat()
	if err == nil {
		var ist os.FileInfo
		if ist, err = idx.Stat(); err == nil {
			af.idxSize = ist.Size()
		}
	}
	if err != nil {
		data.Close()
		idx.Close()
		return err
	}
	if af.syncDirs && (newDir || created) {
		// A batch acknowledged in a file whose name the directory has not
		// made durable is lost with the name on a power failure: the new
		// entries are synced first (an application's directory, its
		// files, and a rotation's renames, whose new files these are).
		err := syncDir(af.dir)
		if newDir && err == nil {
			err = syncDir(filepath.Dir(af.dir))
		}
		if err != nil {
			data.Close()
			idx.Close()
			return fmt.Errorf("syncing the directory of %s: %w", dataPath, err)
		}
	}
	af.data, af.idx, af.size, af.closed = data, idx, st.Size(), false
	af.syncedSize, af.syncedIdxSize = af.size, af.idxSize
	return nil
}

// syncDir syncs a directory: the entries created or renamed in it.
var syncDir = fsutil.SyncDir // a variable: tests count the syncs

// reopen recovers from a failed write: the file is cut back to the last
// indexed batch on the next start anyway; here the handles are renewed and
// the size re-read so later batches are indexed at true offsets.
//
// When the files cannot be opened again, the closed handles stay, so that
// every later write fails (and is not acknowledged) and tries again; the
// error says why.
func (af *appFile) reopen() error {
	af.data.Close()
	af.idx.Close()
	idxPath := filepath.Join(af.dir, af.name+af.ext+".idx")
	s := &Store{last: map[string]uint64{}, held: map[string]map[WorkerSeq]uint64{}}
	s.recover(idxPath)
	synced, syncedIdx := af.syncedSize, af.syncedIdxSize
	if err := af.open(); err != nil {
		af.closed = true
		return err
	}
	// What the last sync covered is still all that is known durable.
	af.syncedSize, af.syncedIdxSize = min(synced, af.size), min(syncedIdx, af.idxSize)
	return nil
}

// rename renames a store file (a variable for tests that make it fail).
var rename = os.Rename

// rotate renames af's files with a time stamp (with af.mu held) and opens
// new ones. Data and index are renamed as a pair or not at all: when the
// second rename fails the first is undone, and should that fail too the
// live index is left without its data file, which open then refuses, so
// that nothing is stored until an operator puts the pair together again.
func (s *Store) rotate(af *appFile) error {
	for af.syncing {
		af.cond.Wait() // the running sync holds the files
	}
	size, idxSize := af.size, af.idxSize
	if err := errors.Join(syncFile(af.data), syncFile(af.idx)); err != nil {
		s.syncFailed(af, err)
		return err
	}
	af.synced = af.gen // everything appended so far is durable
	af.syncedSize, af.syncedIdxSize = size, idxSize
	af.cond.Broadcast()
	if err := errors.Join(af.data.Close(), af.idx.Close()); err != nil {
		return errors.Join(err, af.reopen())
	}
	stamp := time.Now().UTC().Format("20060102T150405.000000000Z")
	base := filepath.Join(af.dir, af.name)
	data, idx := base+af.ext, base+af.ext+".idx"
	rotData, rotIdx := base+"-"+stamp+af.ext, base+"-"+stamp+af.ext+".idx"
	af.closed = true
	if err := rename(data, rotData); err != nil {
		return errors.Join(err, af.reopen())
	}
	if err := rename(idx, rotIdx); err != nil {
		if berr := rename(rotData, data); berr != nil {
			return fmt.Errorf("rotating %s: %w; putting %s back also failed: %v", idx, err, data, berr)
		}
		return errors.Join(err, af.reopen())
	}
	return af.open()
}

// Close syncs and closes every file.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, af := range s.files {
		af.mu.Lock()
		for af.syncing {
			af.cond.Wait()
		}
		if !af.closed {
			errs = append(errs, af.data.Sync(), af.idx.Sync(), af.data.Close(), af.idx.Close())
		}
		af.mu.Unlock()
	}
	s.files = map[string]*appFile{}
	s.open.Init()
	return errors.Join(errs...)
}

var _ io.Closer = (*Store)(nil)
