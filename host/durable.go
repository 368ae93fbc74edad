package host

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/logtk/logtk/internal/ipc"
	"github.com/logtk/logtk/internal/pipeline"
	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/internal/shmring"
	"github.com/logtk/logtk/record"
)

// The durable ingest (config.Config.RuntimeDir; docs/ipc.md, "When the
// host dies"): what a host killed at any instant leaves behind is enough
// for the next one to route every record a worker's log call returned
// from on the ring, with the sequence number it had.
//
// The runtime directory holds, per worker instance (a stream):
//
//   - its rings, one file per incarnation (NAME.INDEX.RING.ring). The
//     host reads a ring ahead with a cursor of its own and gives space
//     back to the worker (the ring's shared read position) only once the
//     records read are settled by every transport: delivered, spooled or
//     dead-lettered. What a dead host read but had not settled is still
//     in the file.
//   - its journal (NAME.INDEX.journal), appended before any record it
//     describes is queued: where each read of a ring began and the seq
//     its first record took (a chunk: the records of one read take
//     consecutive seqs), every other record (stdout and stderr lines,
//     socket records, the host's records about the worker) whole with its
//     seq, each ring's incarnation and pid, and how far the records are
//     settled.
//
// A new host replays, before it starts the workers, every record past
// the settled seq in seq order: a chunk's records are read again from
// its ring and numbered again from its first seq up to the next chunk or
// the first seq something else took; the entries no host read are
// numbered after everything the journal names, and a chunk saying so is
// journaled before they are queued, so that a host killed during its
// recovery numbers them the same way. Records settled before the death
// whose settlement the journal had not noted yet are routed again, with
// the same seq: a receiver that keeps seqs drops them.
//
// A torn journal entry (the host died inside a write) ends the journal:
// it describes records that were never queued.

// Journal entry kinds.
const (
	jHeader  = 'H' // seq high-water u64, next ring number u64: a compacted journal's start
	jRing    = 'I' // ring number u64, incarnation u32, pid i64, process start time u64 (clock ticks after boot)
	jChunk   = 'C' // ring number u64, ring position u64, first seq u64
	jSide    = 'S' // seq u64, stamped record
	jSettled = 'D' // seq u64: every record up to it is settled
)

// compactAt is the journal size past which it is rewritten with only
// what a recovery needs: its header, the settled seq, the rings on disk,
// and the chunks and records not settled. It is rewritten again when it
// has grown to twice what the last rewrite left (a slow destination
// holds much unsettled: rewriting cannot shrink that).
var compactAt int64 = 1 << 20 // a variable: tests lower it

// stateDir is the runtime directory of a host with the durable ingest.
type stateDir struct {
	dir  string
	lock *os.File
	log  func(msg string, args ...any)

	// floor is, per instance, the seq up to which the spools hold its
	// records (pipeline.Spooled): settled, whatever the journal says.
	floor map[WorkerID]uint64
	// seqFloor is, per instance, the highest seq a transport holds
	// (pipeline.Held): its seqs go on above it.
	seqFloor map[WorkerID]uint64

	mu      sync.Mutex
	streams map[WorkerID]*stream
	// pending: what recover numbered of a stream, until stream returns it.
	pending map[WorkerID][]replayed
}

// openStateDir creates and locks dir: one host at a time.
func openStateDir(dir string, log func(string, ...any)) (*stateDir, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("runtime directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("runtime directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		pid, _ := io.ReadAll(io.LimitReader(f, 32))
		f.Close()
		return nil, fmt.Errorf("a host of this configuration runs already, or another configuration names the same runtime_dir: logtk-host pid %s holds the runtime directory %s (%w)", strings.TrimSpace(string(pid)), dir, err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &stateDir{dir: dir, lock: f, log: log, streams: map[WorkerID]*stream{}, floor: map[WorkerID]uint64{}, seqFloor: map[WorkerID]uint64{},
		pending: map[WorkerID][]replayed{}}, nil
}

// close unlocks the directory. The streams must be done with.
func (sd *stateDir) close() {
	sd.mu.Lock()
	for _, st := range sd.streams {
		st.finish()
	}
	sd.mu.Unlock()
	sd.lock.Close()
}

func (sd *stateDir) base(id WorkerID) string {
	return filepath.Join(sd.dir, url.PathEscape(id.Name)+"."+strconv.Itoa(id.Index))
}

// stream returns id's stream, opening (and recovering) it if needed.
func (sd *stateDir) stream(id WorkerID) (*stream, []replayed, error) {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	if st := sd.streams[id]; st != nil {
		rep := sd.pending[id]
		delete(sd.pending, id)
		return st, rep, nil
	}
	st, rep, err := openStream(sd, id)
	if err != nil {
		return nil, nil, err
	}
	sd.streams[id] = st
	return st, rep, nil
}

// leftovers lists the instances that have a journal in the directory.
func (sd *stateDir) leftovers() []WorkerID {
	names, _ := filepath.Glob(filepath.Join(sd.dir, "*.journal"))
	var ids []WorkerID
	for _, n := range names {
		base := strings.TrimSuffix(filepath.Base(n), ".journal")
		i := strings.LastIndexByte(base, '.')
		idx, err := strconv.Atoi(base[i+1:])
		name, err2 := url.PathUnescape(base[:max(i, 0)])
		if i < 0 || err != nil || err2 != nil {
			continue
		}
		ids = append(ids, WorkerID{name, idx})
	}
	return ids
}

// A stream is one worker instance's journal and rings.
type stream struct {
	sd   *stateDir
	id   WorkerID
	base string

	// buf holds journal entries not written yet; the instance's emitMu
	// guards it, and flushLocked writes it before it queues records.
	buf []byte

	mu       sync.Mutex // guards the fields below
	f        *os.File
	size     int64
	kept     int64  // size after the last compaction
	lastSeq  uint64 // the highest seq the journal names
	settled  uint64
	nextRing uint64
	rings    map[uint64]*ringFile
	broken   error // a journal write failed: durability is off for the stream
	damaged  int   // rings of a dead host found damaged at the recovery
}

// write appends the buffered entries (the caller holds the instance's
// emitMu); last is the instance's seq, the highest any of them names.
func (st *stream) writeBuf(last uint64) {
	if len(st.buf) == 0 {
		return
	}
	st.append(st.buf, last)
	st.buf = st.buf[:0]
}

func (st *stream) append(b []byte, last uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.lastSeq = max(st.lastSeq, last)
	if st.broken != nil {
		return
	}
	n, err := st.f.Write(b)
	st.size += int64(n)
	if err != nil {
		st.broken = err
		st.sd.log("writing the journal of the durable ingest failed: a host crash from now on may lose this worker's records", "worker", st.id, "error", err)
	}
}

// settle notes that the stream's records up to seq are settled.
func (st *stream) settle(seq uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if seq <= st.settled || st.broken != nil {
		return
	}
	st.settled = seq
	e := jEntry(nil, jSettled, 8)
	e = binary.LittleEndian.AppendUint64(e, seq)
	n, err := st.f.Write(e)
	st.size += int64(n)
	if err != nil {
		st.broken = err
		return
	}
	if st.size > max(compactAt, 2*st.kept) {
		st.compactLocked()
	}
}

// compactLocked rewrites the journal with what a recovery still needs:
// the seq to go on from, the settled seq, the rings on disk, the chunks
// of those at or after what each gave back (the walk of a recovery
// starts there), and the records not settled.
func (st *stream) compactLocked() {
	path := st.base + ".journal"
	old, err := os.ReadFile(path)
	if err != nil {
		st.sd.log("compacting a journal failed; it keeps growing", "worker", st.id, "error", err)
		return
	}
	j, _ := parseJournal(old) // a torn tail: the entry being written is in st.buf, not the file
	b := jEntry(nil, jHeader, 16)
	b = binary.LittleEndian.AppendUint64(b, max(st.lastSeq, j.lastSeq))
	b = binary.LittleEndian.AppendUint64(b, st.nextRing)
	if st.settled > 0 {
		b = jEntry(b, jSettled, 8)
		b = binary.LittleEndian.AppendUint64(b, st.settled)
	}
	for _, no := range slices.Sorted(maps.Keys(st.rings)) {
		b = appendRingEntry(b, st.rings[no])
	}
	for _, c := range j.chunks {
		rf := st.rings[c.ring]
		if rf == nil || c.pos < rf.ring.Released() {
			continue
		}
		b = jEntry(b, jChunk, 24)
		b = binary.LittleEndian.AppendUint64(b, c.ring)
		b = binary.LittleEndian.AppendUint64(b, c.pos)
		b = binary.LittleEndian.AppendUint64(b, c.first)
	}
	for _, seq := range slices.Sorted(maps.Keys(j.side)) {
		if seq > st.settled {
			b = jEntry(b, jSide, 8+len(j.side[seq]))
			b = binary.LittleEndian.AppendUint64(b, seq)
			b = append(b, j.side[seq]...)
		}
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		st.sd.log("compacting a journal failed; it keeps growing", "worker", st.id, "error", err)
		return
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		st.sd.log("compacting a journal failed; it keeps growing", "worker", st.id, "error", err)
		if f != nil {
			f.Close()
		}
		os.Remove(tmp)
		return
	}
	st.f.Close()
	st.f, st.size, st.kept = f, int64(len(b)), int64(len(b))
}

// finish compacts the journal of a stream whose records are all
// settled, and closes it. The journal stays, so that the next host goes
// on counting from its seq.
func (st *stream) finish() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.f == nil {
		return
	}
	if st.broken == nil {
		st.compactLocked()
	}
	st.f.Close()
	st.f = nil
}

// newRing creates the ring file for an incarnation.
func (st *stream) newRing(capacity int) (*ringFile, *os.File, error) {
	st.mu.Lock()
	no := st.nextRing
	st.nextRing++
	st.mu.Unlock()
	path := st.base + "." + strconv.FormatUint(no, 10) + ".ring"
	os.Remove(path) // a leftover no journal names
	s, f, err := shmring.CreateFile(path, capacity)
	if err != nil {
		return nil, nil, err
	}
	s.ManualRelease()
	s.SetFlags(shmring.FlagHolds)
	rf := &ringFile{st: st, no: no, path: path, ring: s}
	st.mu.Lock()
	st.rings[no] = rf
	st.mu.Unlock()
	return rf, f, nil
}

// started journals a ring's incarnation and pid.
func (st *stream) started(rf *ringFile, incarnation uint32, pid int64) {
	rf.incarnation, rf.pid, rf.startTime = incarnation, pid, procStart(int(pid))
	st.append(appendRingEntry(nil, rf), 0)
}

func appendRingEntry(b []byte, rf *ringFile) []byte {
	b = jEntry(b, jRing, 28)
	b = binary.LittleEndian.AppendUint64(b, rf.no)
	b = binary.LittleEndian.AppendUint32(b, rf.incarnation)
	b = binary.LittleEndian.AppendUint64(b, uint64(rf.pid))
	return binary.LittleEndian.AppendUint64(b, rf.startTime)
}

// chunk buffers the entry saying that the ring read starting at pos
// gives its records seqs from first on.
func (st *stream) chunk(rf *ringFile, pos, first uint64) {
	st.buf = jEntry(st.buf, jChunk, 24)
	st.buf = binary.LittleEndian.AppendUint64(st.buf, rf.no)
	st.buf = binary.LittleEndian.AppendUint64(st.buf, pos)
	st.buf = binary.LittleEndian.AppendUint64(st.buf, first)
}

// side buffers a record that did not come through the ring, whole.
func (st *stream) side(seq uint64, rec []byte) {
	st.buf = jEntry(st.buf, jSide, 8+len(rec))
	st.buf = binary.LittleEndian.AppendUint64(st.buf, seq)
	st.buf = append(st.buf, rec...)
}

func jEntry(b []byte, kind byte, n int) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(1+n))
	return append(b, kind)
}

// A ringFile is one incarnation's ring, kept mapped until what was read
// from it is settled, then removed.
type ringFile struct {
	st          *stream
	no          uint64
	path        string
	ring        *shmring.Shared
	incarnation uint32
	pid         int64
	startTime   uint64 // the worker process's, to know it again

	mu    sync.Mutex
	ended bool   // its run is over: nothing more is read from it
	final uint64 // then, where reading ended
	gone  bool
}

// release gives the worker the space before pos back; once its run is
// over and everything read is settled, the file goes.
func (rf *ringFile) release(pos uint64) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if rf.gone {
		return
	}
	if err := shmring.Guard(func() { rf.ring.Release(pos) }); err != nil {
		rf.removeLocked()
		return
	}
	if rf.ended && pos >= rf.final {
		rf.removeLocked()
	}
}

// end notes that nothing more is read from the ring, ending at final.
func (rf *ringFile) end(final uint64) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	rf.ended, rf.final = true, final
	if !rf.gone && rf.ring.Released() >= final {
		rf.removeLocked()
	}
}

// abandon removes a ring its worker broke.
func (rf *ringFile) abandon() {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if !rf.gone {
		rf.removeLocked()
	}
}

func (rf *ringFile) removeLocked() {
	rf.gone = true
	rf.ring.Close()
	os.Remove(rf.path)
	rf.st.mu.Lock()
	delete(rf.st.rings, rf.no)
	rf.st.mu.Unlock()
}

// A mark goes with queued records: once they are settled, the stream's
// records up to seq are, and the ring's entries before pos.
type mark struct {
	st  *stream
	seq uint64
	rf  *ringFile
	pos uint64
}

func (m mark) apply() {
	// The journal first: once the ring's space is given back, its
	// records' seqs are known from the settled seq alone.
	if m.st != nil {
		m.st.settle(m.seq)
	}
	if m.rf != nil {
		m.rf.release(m.pos)
	}
}

// replayed is a record recovered from a dead host's runtime directory.
type replayed struct {
	seq uint64
	rec []byte
}

// journal is what a journal file says.
type journal struct {
	lastSeq, settled, nextRing uint64
	rings                      map[uint64]ringInfo
	chunks                     []chunkInfo
	side                       map[uint64][]byte
	good                       int64 // bytes up to the last whole entry
}

type ringInfo struct {
	incarnation uint32
	pid         int64
	startTime   uint64
}

type chunkInfo struct{ ring, pos, first uint64 }

// parseJournal reads a journal up to its first torn or unknown entry.
func parseJournal(b []byte) (journal, error) {
	j := journal{rings: map[uint64]ringInfo{}, side: map[uint64][]byte{}}
	var err error
	for off := 0; off < len(b); {
		if len(b)-off < 5 {
			err = fmt.Errorf("torn entry at byte %d", off)
			break
		}
		n := int(binary.LittleEndian.Uint32(b[off:]))
		if n < 1 || n > len(b)-off-4 {
			err = fmt.Errorf("torn entry at byte %d", off)
			break
		}
		kind, p := b[off+4], b[off+5:off+4+n]
		u := func(i int) uint64 { return binary.LittleEndian.Uint64(p[i:]) }
		ok := true
		switch kind {
		case jHeader:
			if ok = len(p) == 16; ok {
				j.lastSeq, j.nextRing = max(j.lastSeq, u(0)), max(j.nextRing, u(8))
			}
		case jRing:
			if ok = len(p) == 28; ok {
				j.rings[u(0)] = ringInfo{binary.LittleEndian.Uint32(p[8:]), int64(binary.LittleEndian.Uint64(p[12:])), binary.LittleEndian.Uint64(p[20:])}
				j.nextRing = max(j.nextRing, u(0)+1)
			}
		case jChunk:
			if ok = len(p) == 24; ok {
				j.chunks = append(j.chunks, chunkInfo{u(0), u(8), u(16)})
				j.lastSeq = max(j.lastSeq, u(16)-1)
				j.nextRing = max(j.nextRing, u(0)+1)
			}
		case jSide:
			if ok = len(p) >= 8; ok {
				j.side[u(0)] = p[8:]
				j.lastSeq = max(j.lastSeq, u(0))
			}
		case jSettled:
			if ok = len(p) == 8; ok {
				j.settled = max(j.settled, u(0))
				j.lastSeq = max(j.lastSeq, u(0))
			}
		default:
			ok = false
		}
		if !ok {
			err = fmt.Errorf("bad entry (kind %q, %d bytes) at byte %d", kind, n, off)
			break
		}
		off += 4 + n
		j.good = int64(off)
	}
	return j, err
}

// openStream opens id's journal (creating it) and recovers what a dead
// host left of the stream: the records to route again, in seq order.
func openStream(sd *stateDir, id WorkerID) (*stream, []replayed, error) {
	st := &stream{sd: sd, id: id, base: sd.base(id), rings: map[uint64]*ringFile{}}
	path := st.base + ".journal"
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("durable ingest: %w", err)
	}
	j, perr := parseJournal(b)
	// Settled before the death, the journal not told yet: in a spool.
	floor, journaled := sd.floor[id], j.settled
	j.settled, j.lastSeq = max(j.settled, floor), max(j.lastSeq, floor, sd.seqFloor[id])
	if perr != nil {
		sd.log("the journal ends in a torn entry (the host died writing it); what it described was never routed", "worker", id, "file", path, "error", perr)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("durable ingest: %w", err)
	}
	if err := f.Truncate(j.good); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("durable ingest: %w", err)
	}
	f.Seek(j.good, io.SeekStart)
	st.f, st.size = f, j.good
	st.lastSeq, st.settled, st.nextRing = j.lastSeq, j.settled, j.nextRing
	if floor > journaled {
		st.settled = journaled
		st.settle(floor) // journaled: the spools' meta is read once
	}
	rep := st.recover(j)
	return st, rep, nil
}

// recover numbers the records the journal and the rings on disk hold
// past the settled seq; see the comment at the top of this file.
func (st *stream) recover(j journal) []replayed {
	// A ring its maker did not finish never reached a worker.
	unfinished, _ := filepath.Glob(st.base + ".*.ring" + shmring.TempSuffix)
	for _, p := range unfinished {
		os.Remove(p)
	}
	files, _ := filepath.Glob(st.base + ".*.ring")
	type ringOnDisk struct {
		no   uint64
		path string
	}
	var disk []ringOnDisk
	for _, p := range files {
		s := strings.TrimSuffix(strings.TrimPrefix(p, st.base+"."), ".ring")
		if no, err := strconv.ParseUint(s, 10, 64); err == nil {
			disk = append(disk, ringOnDisk{no, p})
			st.nextRing = max(st.nextRing, no+1)
		}
	}
	slices.SortFunc(disk, func(a, b ringOnDisk) int { return cmp.Compare(a.no, b.no) })

	// The seqs something other than a chunk's own records took.
	taken := map[uint64]bool{}
	for s := range j.side {
		taken[s] = true
	}
	for _, c := range j.chunks {
		taken[c.first] = true
	}
	var out []replayed
	type tail struct {
		rf   *ringFile
		pos  uint64
		recs [][]byte
	}
	var tails []tail
	now := time.Now().UnixNano()
	// A ring found damaged: its records after the damage are lost, which
	// a record in the stream says (and the host counts as a ring it
	// abandoned), as it does for a ring broken while the host ran.
	type damage struct {
		path    string
		err     error
		info    ringInfo
		seqFrom uint64 // the first seq the dead host may have given and that was not read back; 0 if none
		seqTo   uint64 // the last it may have given: one per 8 bytes of the ring
	}
	var damaged []damage
	for _, d := range disk {
		info := j.rings[d.no]
		s, err := shmring.OpenFile(d.path)
		if err != nil {
			st.sd.log("a ring the dead host left cannot be read; its records are lost", "worker", st.id, "file", d.path, "error", err)
			damaged = append(damaged, damage{d.path, err, info, 0, 0})
			os.Remove(d.path)
			continue
		}
		// A worker of the dead host may not be dead yet (the parent-death
		// signal is on its way): what it publishes after the ring is read
		// would be lost.
		st.sd.ensureDead(st.id, info.pid, info.startTime)
		rf := &ringFile{st: st, no: d.no, path: d.path, ring: s, incarnation: info.incarnation, pid: info.pid, startTime: info.startTime}
		origin := irecord.AppendStampOrigin(nil, st.id.Name, uint32(st.id.Index), info.pid, info.incarnation)
		var chunks []chunkInfo
		for _, c := range j.chunks {
			if c.ring == d.no && c.pos >= s.Next() {
				chunks = append(chunks, c)
			}
		}
		var seq uint64 // 0: not in a chunk
		t := tail{rf: rf}
		ci := 0
		rerr := shmring.Guard(func() {
			_, err = s.ReadPos(shmring.NoLimit, func(pos uint64, e []byte) bool {
				for ci < len(chunks) && chunks[ci].pos <= pos {
					seq = chunks[ci].first
					ci++
				}
				if len(e) == 0 || ipc.Type(e[0]) != ipc.TypeRecord {
					return true // barriers and bad entries take no seq
				}
				rec := append(append([]byte(nil), e[1:]...), origin...)
				if irecord.Validate(rec[:len(e)-1]) != nil {
					return true
				}
				// A chunk's records take seqs from its first on, up to
				// the next chunk or a seq something else took.
				if seq != 0 && (!taken[seq] || chunks[ci-1].first == seq) {
					if seq > j.settled {
						out = append(out, replayed{seq, irecord.AppendStampArrival(rec, seq, record.SourceSDK, now)})
					}
					seq++
					return true
				}
				seq = 0
				if t.recs == nil {
					t.pos = pos
				}
				t.recs = append(t.recs, rec)
				return true
			})
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			st.sd.log("a ring the dead host left is damaged; the records after the damage are lost", "worker", st.id, "file", d.path, "error", err)
			dm := damage{d.path, err, info, seq, 0}
			if seq != 0 {
				// How many of the rest the dead host had numbered is not
				// known: none of their seqs may be given again.
				dm.seqTo = seq - 1 + uint64(s.Capacity()/8)
			}
			damaged = append(damaged, dm)
		}
		rf.ended, rf.final = true, s.Next()
		st.rings[d.no] = rf
		tails = append(tails, t)
	}
	for s, rec := range j.side {
		if s > j.settled {
			out = append(out, replayed{s, rec})
		}
	}
	slices.SortFunc(out, func(a, b replayed) int { return cmp.Compare(a.seq, b.seq) })
	last := j.lastSeq
	if len(out) > 0 {
		last = max(last, out[len(out)-1].seq)
	}
	// The entries no host read: numbered after everything, journaled first.
	for _, t := range tails {
		if len(t.recs) == 0 {
			continue
		}
		st.chunk(t.rf, t.pos, last+1)
		for _, rec := range t.recs {
			last++
			out = append(out, replayed{last, irecord.AppendStampArrival(rec, last, record.SourceSDK, now)})
		}
	}
	for _, d := range damaged {
		last = max(last, d.seqTo)
	}
	for _, d := range damaged {
		msg := fmt.Sprintf("the shared-memory ring a host that died left for this worker is damaged (%v): the records after the damage are lost", d.err)
		if d.seqFrom != 0 {
			msg += fmt.Sprintf("; those the dead host had read took seqs from %d, which are missing (the seqs up to %d are not given again)", d.seqFrom, d.seqTo)
		}
		b := irecord.AppendHead(nil, time.Unix(0, now), record.LevelError, msg, "logtk.host")
		b = irecord.AppendAttr(b, slog.String("file", d.path))
		b = append(b, irecord.AppendStampOrigin(nil, st.id.Name, uint32(st.id.Index), d.info.pid, d.info.incarnation)...)
		last++
		b = irecord.AppendStampArrival(b, last, record.SourceHost, now)
		st.side(last, b)
		out = append(out, replayed{last, b})
	}
	st.damaged = len(damaged)
	st.writeBuf(last)
	st.lastSeq = max(st.lastSeq, last)
	return out
}

// spoolMarks are the marks a pipeline keeps beside a batch in its spools:
// each worker instance's highest seq in it.
func spoolMarks(marks []mark) []pipeline.Mark {
	var out []pipeline.Mark
	for _, m := range marks {
		if m.st == nil {
			continue
		}
		i := slices.IndexFunc(out, func(o pipeline.Mark) bool { return o.Worker == m.st.id.Name && o.Index == uint32(m.st.id.Index) })
		if i < 0 {
			out = append(out, pipeline.Mark{Worker: m.st.id.Name, Index: uint32(m.st.id.Index), Seq: m.seq})
		} else {
			out[i].Seq = max(out[i].Seq, m.seq)
		}
	}
	return out
}

// settler applies the marks of the batches given to the output once the
// output has settled them: at once for an Output that settles what
// WriteBatch took before it returns, when the pipeline says so for one
// that holds batches (pipeline.Options.Settled).
type settler struct {
	mu      sync.Mutex
	n       uint64 // batches given to outputs, across reloads
	done    uint64 // batches settled, from the first
	pending []givenMarks
}

type givenMarks struct {
	n     uint64
	marks []mark
}

// holds reports whether out settles batches after WriteBatch returns.
func holds(out Output) bool {
	_, ok := out.(*pipeline.Pipeline)
	return ok
}

// base is the count of batches given so far: a new output's first batch
// is base+1.
func (s *settler) base() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// given notes that out took one more batch, whose records marks cover
// (out nil: no batch; the marks settle with the batches before them).
func (s *settler) given(out Output, marks []mark) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if out != nil {
		s.n++
	}
	if len(marks) > 0 {
		s.pending = append(s.pending, givenMarks{s.n, slices.Clone(marks)})
	}
	if out != nil && !holds(out) {
		s.done = max(s.done, s.n)
	}
	s.applyLocked()
}

// upTo notes that the batches up to n are settled.
func (s *settler) upTo(n uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = max(s.done, n)
	s.applyLocked()
}

// closed notes that an output closed: everything given to it is settled.
func (s *settler) closed(Output) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = s.n
	s.applyLocked()
}

func (s *settler) applyLocked() {
	i := 0
	for ; i < len(s.pending) && s.pending[i].n <= s.done; i++ {
		for _, m := range s.pending[i].marks {
			m.apply()
		}
	}
	if i > 0 {
		s.pending = append(s.pending[:0], s.pending[i:]...)
	}
}

// recover opens id's stream, numbering what a host that died left of
// it, without queueing that yet: the next stream call returns it.
func (sd *stateDir) recover(id WorkerID) {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	if sd.streams[id] != nil {
		return
	}
	st, rep, err := openStream(sd, id)
	if err != nil {
		return // stream tries again, and says why
	}
	sd.streams[id] = st
	sd.pending[id] = rep
}

// numberedNow returns, as of now, the highest seq each open stream has
// given (pipeline.Vouch's numbered): no transport holds a record of it
// numbered above that in this numbering. The streams a dead host left
// are recovered (recover) first, so that it counts the records of
// theirs the dead host read, which its journal names only by their
// first seq.
func (sd *stateDir) numberedNow() func(worker string, index uint32) (uint64, bool) {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	at := map[WorkerID]uint64{}
	for id, st := range sd.streams {
		st.mu.Lock()
		at[id] = st.lastSeq
		st.mu.Unlock()
	}
	return func(worker string, index uint32) (uint64, bool) {
		seq, ok := at[WorkerID{worker, int(index)}]
		return seq, ok
	}
}

// lostCount reports whether a configured worker instance has no journal
// (a first start, or one after the runtime directory was emptied): its
// seqs must go on above what the transports hold.
func (h *Host) lostCount(journals []WorkerID) bool {
	have := map[WorkerID]bool{}
	for _, id := range journals {
		have[id] = true
	}
	for _, in := range h.instanceList() {
		if !have[in.id] {
			return true
		}
	}
	return false
}

// settledNow returns, as of now, the highest seq of each worker
// instance the outputs have settled (pipeline.Vouch's numbered at a
// reload, once the output before is closed: every record given to it,
// and so every record a transport can hold in this numbering).
func (h *Host) settledNow() func(worker string, index uint32) (uint64, bool) {
	at := map[WorkerID]uint64{}
	if h.state != nil {
		h.state.mu.Lock()
		for id, st := range h.state.streams {
			st.mu.Lock()
			at[id] = st.settled
			st.mu.Unlock()
		}
		h.state.mu.Unlock()
	}
	return func(worker string, index uint32) (uint64, bool) {
		seq, ok := at[WorkerID{worker, int(index)}]
		return seq, ok
	}
}

// heldWait bounds how long Start waits for the transports to open and
// tell what they hold (pipeline.Held).
const heldWait = 3 * time.Second

// openStream opens id's stream, queueing first what a dead host left of
// it, and returns it (nil if its journal cannot be opened: the instance
// then runs without the durable ingest, which the host log says).
func (h *Host) openStream(id WorkerID) *stream {
	st, rep, err := h.state.stream(id)
	if err != nil {
		h.log.Error("the durable ingest is off for this worker: a host crash may lose its records", "worker", id, "error", err)
		return nil
	}
	if st.damaged > 0 {
		h.abandonedRings.Add(int64(st.damaged))
	}
	if len(rep) > 0 {
		h.log.Warn("routing again the records a host which did not stop cleanly left", "worker", id, "records", len(rep), "first_seq", rep[0].seq, "last_seq", rep[len(rep)-1].seq, "dir", h.state.dir)
		h.queueSelf(true, record.LevelWarn, fmt.Sprintf("routing again %d records of %s that a host which did not stop cleanly left in %s (seq %d to %d)", len(rep), id, h.state.dir, rep[0].seq, rep[len(rep)-1].seq),
			// "instance", not "worker": the record is the host's, and a
			// JSON line with the attributes beside the record's fields
			// would read as the worker's own.
			slog.String("instance", id.String()), slog.Int("records", len(rep)),
			slog.Uint64("first_seq", rep[0].seq), slog.Uint64("last_seq", rep[len(rep)-1].seq))
	}
	if in, err := h.instance(id); err == nil {
		in.records.Add(uint64(len(rep))) // counted as the instance's, as routed
	}
	for len(rep) > 0 {
		n := min(len(rep), h.opts.BatchSize)
		recs := make([][]byte, n)
		for i := range n {
			recs[i] = rep[i].rec
		}
		h.enqueue(recs, mark{st: st, seq: rep[n-1].seq})
		rep = rep[n:]
	}
	st.mu.Lock()
	var rings []*ringFile
	for _, rf := range st.rings {
		if rf.ended {
			rings = append(rings, rf)
		}
	}
	st.mu.Unlock()
	for _, rf := range rings {
		h.enqueue(nil, mark{rf: rf, pos: rf.final})
	}
	return st
}

// procStart returns the start time of process pid (field 22 of
// /proc/PID/stat, in clock ticks after boot), 0 if it cannot be read or
// the process is dead (a zombie nobody reaped yet).
func procStart(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold anything.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0
	}
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n
}

// ensureDead kills the worker process pid of a dead host if it still
// runs (the same process: same start time), and waits for it to go.
func (sd *stateDir) ensureDead(id WorkerID, pid int64, start uint64) {
	if pid <= 0 || start == 0 {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for killed := false; procStart(int(pid)) == start; {
		if !killed {
			sd.log("a worker of the host that died still runs; killing it before reading its ring", "worker", id, "pid", pid)
			unix.Kill(int(pid), unix.SIGKILL)
			killed = true
		}
		if time.Now().After(deadline) {
			sd.log("a worker of the host that died does not die; reading its ring anyway", "worker", id, "pid", pid)
			return
		}
		time.Sleep(time.Millisecond) // polling a process we cannot wait for: not our child
	}
}
