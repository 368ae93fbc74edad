// Package shmring is a single-producer, single-consumer ring of records in
// shared memory (a memfd mapped by both the worker and the host), for an
// IPC path that costs no system call per record: the producer copies a
// record in and publishes it with an atomic store; the consumer is woken
// through a doorbell only when it said it was going to sleep.
//
// A record is durable once Write returns: the pages belong to the host as
// much as to the worker, so the record survives the worker's death. A ring
// in a file of a memory file system (CreateFile) survives the host's death
// too: the consumer reads ahead with a cursor of its own and gives the
// space back (Release) only once what it read is safe elsewhere, so a new
// consumer (OpenFile) finds everything not yet released where it was.
//
// The consumer does not trust the producer: a length that runs past the
// ring is reported as ErrCorrupt and the ring must then be abandoned (the
// worker's other channel still works), which the consumer says in the
// header so that the producer stops writing to it. A published position
// that is not a valid one (a producer that stores it in pieces is seen
// half-way) is ErrUnsettled: nothing is read past the last good entry and
// the consumer tries again.
//
// Layout (all integers little-endian, as the machine's atomics are on the
// platforms logtk runs on):
//
//	0    magic "LTKR", version uint32
//	64   write  uint64  bytes published by the producer (monotonic)
//	128  read   uint64  bytes consumed by the consumer (monotonic)
//	192  sleep  uint32  1 while the consumer waits for the doorbell
//	256  state  uint32  1 once the consumer abandoned the ring
//	320  flags  uint32  set by the consumer before sharing (FlagHolds)
//	4096 data   capacity bytes (a power of two)
//
// A record is a uint32 length and the payload, padded to 8 bytes. One that
// does not fit before the end of the data area is preceded by a wrap
// marker (length 0xFFFFFFFF) and starts at offset 0.
package shmring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Offsets in the shared area.
const (
	offMagic  = 0
	offWrite  = 64
	offRead   = 128
	offSleep  = 192
	offState  = 256
	offFlags  = 320
	HeaderLen = 4096
)

const (
	magic   = 0x524b544c // "LTKR"
	version = 1
	wrap    = 0xFFFFFFFF
)

// Errors.
var (
	ErrFull     = errors.New("shmring: full")
	ErrTooLarge = errors.New("shmring: record larger than half the ring")
	ErrCorrupt  = errors.New("shmring: corrupt ring")
	// ErrUnsettled: the published position is not one a producer could
	// have stored whole (behind what was read, more than the ring ahead,
	// not a multiple of 8, or cutting an entry): it is being stored in
	// pieces, or the producer is broken. Read took what came before it.
	ErrUnsettled = errors.New("shmring: published position not settled")
	// ErrAbandoned: the consumer abandoned the ring; write to the other
	// channel.
	ErrAbandoned = errors.New("shmring: abandoned by the consumer")
)

// Ring is one side's view of a shared ring.
type Ring struct {
	mem  []byte // header + data
	data []byte
	mask uint64
	resv uint64 // producer: stream position of the entry Reserve handed out, or noResv
	// Consumer: next is where Read goes on from; released is the shared
	// read position it last stored. With manual, Read does not release
	// what it read: Release does, from any goroutine.
	next, released atomic.Uint64
	manual         bool
}

const noResv = ^uint64(0)

// Size returns the mapping size for a ring with capacity data bytes.
func Size(capacity int) int { return HeaderLen + capacity }

// Init formats mem (Size(capacity) bytes, capacity a power of two of at
// least 4096) as an empty ring. The host calls it once, before sharing.
func Init(mem []byte) (*Ring, error) {
	r, err := attach(mem)
	if err != nil {
		return nil, err
	}
	binary.LittleEndian.PutUint32(mem[offMagic:], magic)
	binary.LittleEndian.PutUint32(mem[offMagic+4:], version)
	atomic.StoreUint64(r.u64(offWrite), 0)
	atomic.StoreUint64(r.u64(offRead), 0)
	atomic.StoreUint32(r.u32(offSleep), 0)
	atomic.StoreUint32(r.u32(offState), 0)
	atomic.StoreUint32(r.u32(offFlags), 0)
	return r, nil
}

// FlagHolds says that the consumer keeps what is published in the ring
// across its own death (the ring is a file it finds again): a record in
// the ring is safer than one on the other channel, so a producer should
// wait for room rather than take the other channel.
const FlagHolds = 1

// SetFlags stores the consumer's flags; it does so before sharing the ring.
func (r *Ring) SetFlags(f uint32) { atomic.StoreUint32(r.u32(offFlags), f) }

// Flags returns the consumer's flags.
func (r *Ring) Flags() uint32 { return atomic.LoadUint32(r.u32(offFlags)) }

// Abandon tells the producer that the consumer reads the ring no more:
// Write and Reserve fail from now on.
func (r *Ring) Abandon() { atomic.StoreUint32(r.u32(offState), 1) }

// Abandoned reports whether the consumer abandoned the ring.
func (r *Ring) Abandoned() bool { return atomic.LoadUint32(r.u32(offState)) != 0 }

// Attach checks and opens a ring another side formatted.
func Attach(mem []byte) (*Ring, error) {
	r, err := attach(mem)
	if err != nil {
		return nil, err
	}
	if binary.LittleEndian.Uint32(mem[offMagic:]) != magic {
		return nil, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint32(mem[offMagic+4:]); v != version {
		return nil, fmt.Errorf("shmring: version %d, want %d", v, version)
	}
	return r, nil
}

func attach(mem []byte) (*Ring, error) {
	n := len(mem) - HeaderLen
	if n < 4096 || n&(n-1) != 0 {
		return nil, fmt.Errorf("shmring: data area of %d bytes is not a power of two >= 4096", n)
	}
	if uintptr(unsafe.Pointer(&mem[0]))%64 != 0 {
		return nil, errors.New("shmring: mapping not 64-byte aligned")
	}
	return &Ring{mem: mem, data: mem[HeaderLen:], mask: uint64(n - 1), resv: noResv}, nil
}

// ManualRelease makes the consumer keep what Read returns in the ring
// until Release gives its space back, and starts reading at the shared
// read position (where a consumer that died left it). Call it before the
// first Read.
func (r *Ring) ManualRelease() {
	r.manual = true
	rd := atomic.LoadUint64(r.u64(offRead))
	r.released.Store(rd)
	r.next.Store(rd)
}

// Release gives the producer back the space of the entries before the
// stream position pos, which must be one Next returned. A position at or
// behind one already released, or ahead of what was read, is ignored.
// It may be called concurrently with Read, not with another Release.
func (r *Ring) Release(pos uint64) {
	if pos <= r.released.Load() || pos > r.next.Load() {
		return
	}
	r.released.Store(pos)
	atomic.StoreUint64(r.u64(offRead), pos)
}

// Released returns the position up to which the consumer gave the
// space back.
func (r *Ring) Released() uint64 { return r.released.Load() }

// Next returns the consumer's position: the end of what Read took.
func (r *Ring) Next() uint64 { return r.next.Load() }

func (r *Ring) u64(off int) *uint64 { return (*uint64)(unsafe.Pointer(&r.mem[off])) }
func (r *Ring) u32(off int) *uint32 { return (*uint32)(unsafe.Pointer(&r.mem[off])) }

// Capacity returns the data area's size.
func (r *Ring) Capacity() int { return len(r.data) }

func pad(n int) uint64 { return uint64(n+4+7) &^ 7 }

// Write copies rec into the ring and publishes it. It returns ErrFull
// when there is no room (the caller waits for the consumer, or takes
// another path) and ErrTooLarge for a record over half the ring. It
// reports whether the consumer is asleep and must be woken (then call
// the doorbell). Only one goroutine may write at a time.
func (r *Ring) Write(rec []byte) (wake bool, err error) {
	r.resv = noResv
	if len(rec) > len(r.data)/2-8 {
		return false, ErrTooLarge
	}
	if r.Abandoned() {
		return false, ErrAbandoned
	}
	w := atomic.LoadUint64(r.u64(offWrite))
	rd := atomic.LoadUint64(r.u64(offRead))
	need := pad(len(rec))
	pos := w & r.mask
	contiguous := uint64(len(r.data)) - pos
	total := need
	if contiguous < need {
		total += contiguous // the wrap marker takes the rest of the area
	}
	if w+total-rd > uint64(len(r.data)) {
		return false, ErrFull
	}
	if contiguous < need {
		binary.LittleEndian.PutUint32(r.data[pos:], wrap)
		w += contiguous
		pos = 0
	}
	binary.LittleEndian.PutUint32(r.data[pos:], uint32(len(rec)))
	copy(r.data[pos+4:], rec)
	atomic.StoreUint64(r.u64(offWrite), w+need) // publish
	return r.wake(), nil
}

// wake reports whether the consumer sleeps, and if so clears its flag.
func (r *Ring) wake() bool {
	return atomic.LoadUint32(r.u32(offSleep)) == 1 && atomic.CompareAndSwapUint32(r.u32(offSleep), 1, 0)
}

// Reserve lets the producer build its next entry in the ring itself
// instead of copying it in with Write. It returns an empty slice of the
// data area with capacity for at least atLeast bytes; the producer appends
// the entry to it and publishes it with Commit. The entry's first 4 bytes
// are its length, which Commit fills in: append 4 bytes of any value,
// then the record.
//
// Reserve returns nil when the ring has no such room: it is too full, or
// less than atLeast bytes are left before the end of the data area and not
// as much again at its start. The caller then builds the record elsewhere
// and uses Write. An entry is never larger than Write allows, whatever
// atLeast. Only one goroutine may write at a time, nothing is published
// until Commit, and the slice must not be written to after a Write or
// another Reserve (it is then the ring's memory, not a reservation).
func (r *Ring) Reserve(atLeast int) []byte {
	r.resv = noResv
	if r.Abandoned() {
		return nil
	}
	w := atomic.LoadUint64(r.u64(offWrite))
	rd := atomic.LoadUint64(r.u64(offRead))
	size := uint64(len(r.data))
	if w-rd > size || atLeast < 0 {
		return nil
	}
	free := size - (w - rd)
	need := uint64(atLeast) + 4
	pos := w & r.mask
	contiguous := size - pos
	start := w
	if contiguous < need {
		// The entry starts at the beginning of the data area, after a wrap
		// marker that Commit publishes with it.
		if free < contiguous+need {
			return nil
		}
		binary.LittleEndian.PutUint32(r.data[pos:], wrap)
		free -= contiguous
		start += contiguous
		pos, contiguous = 0, size
	}
	room := min(contiguous, free, size/2-4) // the entry's length word and record
	if room < need {
		return nil
	}
	r.resv = start
	return r.data[pos : pos : pos+room]
}

// Commit publishes the entry built in the slice Reserve returned (entry
// is that slice, appended to) and reports whether the consumer must be
// woken, as Write does. It returns ok false, and publishes nothing, when
// entry is not the reserved slice any more: it outgrew the room Reserve
// gave and append moved it elsewhere (then Write it), or it is shorter
// than its length word, or nothing is reserved.
func (r *Ring) Commit(entry []byte) (wake, ok bool) {
	start := r.resv
	r.resv = noResv
	if start == noResv || len(entry) < 4 || unsafe.SliceData(entry) != &r.data[start&r.mask] {
		return false, false
	}
	n := len(entry) - 4
	binary.LittleEndian.PutUint32(entry, uint32(n))
	atomic.StoreUint64(r.u64(offWrite), start+pad(n)) // publish
	return r.wake(), true
}

// NoLimit makes Read consume everything published.
const NoLimit = ^uint64(0)

// Read calls fn for the published records that start before the stream
// position limit (NoLimit for all), in order, until fn returns false, and
// marks the records fn accepted consumed. The slices point into the shared
// memory and are valid only during fn; the producer may be hostile, so a
// consumer that checks a record must check a copy. Read returns how many
// records fn accepted, and ErrCorrupt if the producer broke the format or
// ErrUnsettled if the published position is not (yet) a valid one; the
// records before the trouble are read either way.
func (r *Ring) Read(limit uint64, fn func(rec []byte) bool) (int, error) {
	return r.ReadPos(limit, func(_ uint64, rec []byte) bool { return fn(rec) })
}

// ReadPos is Read telling fn where each record's entry starts.
func (r *Ring) ReadPos(limit uint64, fn func(pos uint64, rec []byte) bool) (int, error) {
	w := r.settled()
	rd := r.next.Load()
	size := uint64(len(r.data))
	if w < rd || w-r.released.Load() > size {
		return 0, fmt.Errorf("%w: %d bytes published, %d consumed", ErrUnsettled, w, rd)
	}
	var unsettled error
	if w%8 != 0 {
		// Within the ring but not where any entry ends: read the entries
		// that end before it, then report it.
		unsettled = fmt.Errorf("%w: %d bytes published (not a multiple of 8), %d consumed", ErrUnsettled, w, rd)
		w &^= 7
	}
	n := 0
	defer func() {
		r.next.Store(rd)
		if !r.manual {
			r.released.Store(rd)
			atomic.StoreUint64(r.u64(offRead), rd)
		}
	}()
	for rd < w && rd < limit {
		pos := rd & r.mask
		if size-pos < 4 {
			return n, fmt.Errorf("%w: an entry at %d starts less than 4 bytes before the end of the ring", ErrCorrupt, rd)
		}
		l := binary.LittleEndian.Uint32(r.data[pos:])
		if l == wrap {
			rd += size - pos
			continue
		}
		need := pad(int(l))
		if uint64(l) > size/2-8 || pos+need > size {
			return n, fmt.Errorf("%w: an entry of %d bytes at %d runs past the ring", ErrCorrupt, l, rd)
		}
		if need > w-rd {
			return n, fmt.Errorf("%w: an entry of %d bytes at %d runs past the published position %d", ErrUnsettled, l, rd, w)
		}
		if !fn(rd, r.data[pos+4:pos+4+uint64(l)]) {
			return n, nil
		}
		rd += need
		n++
	}
	if rd < w {
		return n, nil // stopped at limit, before the position in question
	}
	return n, unsettled
}

// settled loads the published position until two loads in a row agree (a
// producer storing it in pieces is then likely done), a few times at most.
func (r *Ring) settled() uint64 {
	w := atomic.LoadUint64(r.u64(offWrite))
	for range 64 {
		w2 := atomic.LoadUint64(r.u64(offWrite))
		if w2 == w {
			break
		}
		w = w2
	}
	return w
}

// Published returns the producer's stream position: the bytes published so
// far. A record written after this call starts at or after it.
func (r *Ring) Published() uint64 { return atomic.LoadUint64(r.u64(offWrite)) }

// Empty reports whether everything published has been read.
func (r *Ring) Empty() bool {
	return atomic.LoadUint64(r.u64(offWrite)) == r.next.Load()
}

// PrepareSleep tells the producer that the consumer is about to wait for
// the doorbell. The consumer must then check Empty once more before it
// waits: a record published in between is either seen by that check or
// makes the producer ring. CancelSleep undoes it.
func (r *Ring) PrepareSleep() { atomic.StoreUint32(r.u32(offSleep), 1) }

// CancelSleep clears the sleep flag.
func (r *Ring) CancelSleep() { atomic.StoreUint32(r.u32(offSleep), 0) }
