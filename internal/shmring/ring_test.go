package shmring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// shared maps one memfd twice, as the worker and the host would.
func shared(t *testing.T, capacity int) (producer, consumer *Ring) {
	t.Helper()
	fd, err := unix.MemfdCreate("logtk-ring-test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Skipf("memfd: %v", err)
	}
	defer unix.Close(fd)
	if err := unix.Ftruncate(fd, int64(Size(capacity))); err != nil {
		t.Fatal(err)
	}
	m1, err := unix.Mmap(fd, 0, Size(capacity), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := unix.Mmap(fd, 0, Size(capacity), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(m1); unix.Munmap(m2) })
	c, err := Init(m2)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Attach(m1)
	if err != nil {
		t.Fatal(err)
	}
	return p, c
}

func record(i int, rng *rand.Rand) []byte {
	n := rng.IntN(300)
	b := binary.LittleEndian.AppendUint64(nil, uint64(i))
	return append(b, bytes.Repeat([]byte{byte(i)}, n)...)
}

// TestOrderAcrossWraps: a producer and a consumer in two mappings pass
// 200,000 records of random sizes through a small ring, in order, intact.
// The producer copies some in with Write and builds others in place
// (Reserve, Commit), some of which outgrow their room and go through
// Write after all.
func TestOrderAcrossWraps(t *testing.T) {
	p, c := shared(t, 1<<14)
	const n = 200_000
	done := make(chan error, 1)
	var wakes, inPlace, outgrown atomic.Int64
	var stop atomic.Bool
	t.Cleanup(func() { stop.Store(true); <-done }) // before the unmapping
	put := func(rec []byte, how int) (bool, error) {
		if how == 0 {
			return p.Write(rec)
		}
		atLeast := 320 // more than any record
		if how == 2 {
			atLeast = 16
		}
		e := p.Reserve(atLeast)
		if e == nil {
			return p.Write(rec)
		}
		e = append(e, 0, 0, 0, 0)
		e = append(e, rec...)
		wake, ok := p.Commit(e)
		if !ok {
			outgrown.Add(1)
			return p.Write(rec)
		}
		inPlace.Add(1)
		return wake, nil
	}
	go func() {
		rng := rand.New(rand.NewPCG(1, 2))
		how := rand.New(rand.NewPCG(3, 4))
		rec := record(0, rng)
		for i := 0; i < n && !stop.Load(); {
			wake, err := put(rec, how.IntN(3))
			if errors.Is(err, ErrFull) {
				continue // the consumer will make room
			}
			if err != nil {
				done <- err
				return
			}
			if wake {
				wakes.Add(1)
			}
			i++
			rec = record(i, rng)
		}
		done <- nil
	}()
	rng := rand.New(rand.NewPCG(1, 2))
	next := 0
	for next < n {
		_, err := c.Read(NoLimit, func(rec []byte) bool {
			want := record(next, rng)
			if !bytes.Equal(rec, want) {
				t.Fatalf("record %d differs", next)
			}
			next++
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !c.Empty() {
		t.Fatal("ring not empty after reading everything")
	}
	if inPlace.Load() < n/4 || outgrown.Load() < n/200 {
		t.Fatalf("of %d records %d were built in place and %d outgrew their room: the test did not exercise both", n, inPlace.Load(), outgrown.Load())
	}
}

// TestReserve: Reserve gives room only where an entry can go, wraps to
// the start when the end is too short, and Commit publishes only the slice
// Reserve gave, unmoved.
func TestReserve(t *testing.T) {
	p, c := shared(t, 4096)
	if e := p.Reserve(3000); e != nil {
		t.Fatalf("room for an entry larger than half the ring: cap %d", cap(e))
	}
	if e := p.Reserve(100); cap(e) != 4096/2-4 {
		t.Fatalf("an empty ring gives cap %d, want %d (half the ring)", cap(e), 4096/2-4)
	}
	if _, ok := p.Commit(make([]byte, 8)); ok {
		t.Fatal("Commit published a slice Reserve did not give")
	}
	e := append(p.Reserve(100), "1234x"...)
	p.Write([]byte("w"))
	if _, ok := p.Commit(e); ok {
		t.Fatal("Commit published a reservation a Write came after")
	}
	// Fill to 3000 bytes, read them: 1096 bytes are left before the end.
	for range 3000 / 8 {
		p.Write([]byte{1, 2, 3, 4})
	}
	c.Read(NoLimit, all)
	if e := p.Reserve(1000); cap(e) != 4096-int(p.Published()%4096) {
		t.Fatalf("Reserve(1000) with %d bytes before the end: cap %d", 4096-p.Published()%4096, cap(e))
	}
	e = p.Reserve(2000) // not before the end: at the start, after a wrap marker
	if e == nil || &e[:1][0] != &p.data[0] {
		t.Fatalf("Reserve(2000) did not wrap to the start of the ring: cap %d", cap(e))
	}
	e = append(e, 0, 0, 0, 0)
	e = append(e, "in place"...)
	if _, ok := p.Commit(e); !ok {
		t.Fatal("Commit refused its reservation")
	}
	if _, ok := p.Commit(e); ok {
		t.Fatal("Commit published one reservation twice")
	}
	var got []string
	if _, err := c.Read(NoLimit, func(rec []byte) bool { got = append(got, string(rec)); return true }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "in place" {
		t.Fatalf("read %q, want the one record built in place", got)
	}
	// Full: 16 bytes are left; nothing fits 64.
	for p.Reserve(0) != nil {
		p.Write(make([]byte, 4))
	}
	if e := p.Reserve(64); e != nil {
		t.Fatalf("a full ring gave room: cap %d", cap(e))
	}
}

func all([]byte) bool { return true }

// TestStopAndLimit: a record fn refuses stays for the next Read, and a
// limit stops before the records that start at or after it.
func TestStopAndLimit(t *testing.T) {
	p, c := shared(t, 4096)
	var marks []uint64
	for i := range 5 {
		marks = append(marks, p.Published())
		p.Write([]byte{byte(i)})
	}
	var got []byte
	n, err := c.Read(marks[2], func(rec []byte) bool { got = append(got, rec[0]); return true })
	if err != nil || n != 2 || !bytes.Equal(got, []byte{0, 1}) {
		t.Fatalf("limited read: n=%d err=%v got=%v", n, err, got)
	}
	n, _ = c.Read(NoLimit, func(rec []byte) bool {
		if rec[0] == 3 {
			return false
		}
		got = append(got, rec[0])
		return true
	})
	if n != 1 || !bytes.Equal(got, []byte{0, 1, 2}) {
		t.Fatalf("stopped read: n=%d got=%v", n, got)
	}
	c.Read(NoLimit, func(rec []byte) bool { got = append(got, rec[0]); return true })
	if !bytes.Equal(got, []byte{0, 1, 2, 3, 4}) || !c.Empty() {
		t.Fatalf("got %v, empty=%v", got, c.Empty())
	}
}

func TestFullAndTooLarge(t *testing.T) {
	p, c := shared(t, 4096)
	if _, err := p.Write(make([]byte, 3000)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized record: %v", err)
	}
	var err error
	writes := 0
	for err == nil {
		_, err = p.Write(make([]byte, 100))
		writes++
	}
	if !errors.Is(err, ErrFull) || writes < 30 {
		t.Fatalf("after %d writes: %v", writes, err)
	}
	n, _ := c.Read(NoLimit, all)
	if n != writes-1 {
		t.Fatalf("read %d of %d", n, writes-1)
	}
	if _, err := p.Write(make([]byte, 100)); err != nil {
		t.Fatalf("write after the consumer made room: %v", err)
	}
}

func TestDoorbellOnlyWhenAsleep(t *testing.T) {
	p, c := shared(t, 4096)
	if wake, _ := p.Write([]byte("a")); wake {
		t.Fatal("woke a consumer that was not asleep")
	}
	c.Read(NoLimit, all)
	c.PrepareSleep()
	if wake, _ := p.Write([]byte("b")); !wake {
		t.Fatal("did not wake a sleeping consumer")
	}
	if wake, _ := p.Write([]byte("c")); wake {
		t.Fatal("woke twice for one sleep")
	}
}

// TestCorruptProducer: lengths a hostile worker could write are reported,
// never followed outside what was published: ErrCorrupt for what no
// producer could mean, ErrUnsettled for a position that may be in the
// middle of being stored.
func TestCorruptProducer(t *testing.T) {
	for _, tc := range []struct {
		name string
		poke func(r *Ring)
		want error
	}{
		{"length past published", func(r *Ring) { binary.LittleEndian.PutUint32(r.data[0:], 1000) }, ErrUnsettled},
		{"write index past ring", func(r *Ring) { atomic.StoreUint64(r.u64(offWrite), 1<<40) }, ErrUnsettled},
		{"read index moved by the producer", func(r *Ring) { atomic.StoreUint64(r.u64(offRead), 64) }, nil}, // the consumer keeps its own
		{"write index not aligned", func(r *Ring) { atomic.StoreUint64(r.u64(offWrite), 13) }, ErrUnsettled},
		{"huge length", func(r *Ring) { binary.LittleEndian.PutUint32(r.data[0:], 0x7fffffff) }, ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, c := shared(t, 4096)
			p.Write([]byte("12345678"))
			tc.poke(p)
			if _, err := c.Read(NoLimit, all); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestWriteBehindRead: a published position behind what the consumer
// read is unsettled, not a reason to read the ring again.
func TestWriteBehindRead(t *testing.T) {
	p, c := shared(t, 4096)
	p.Write([]byte("12345678"))
	if n, err := c.Read(NoLimit, all); n != 1 || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	atomic.StoreUint64(p.u64(offWrite), 0)
	if n, err := c.Read(NoLimit, all); n != 0 || !errors.Is(err, ErrUnsettled) {
		t.Fatalf("Read = %d, %v; want 0, ErrUnsettled", n, err)
	}
}

// TestManualRelease: with ManualRelease the producer gets no space back
// for what the consumer read until it is released; a new consumer of
// the same memory starts at the released position and reads the rest
// again, in order.
func TestManualRelease(t *testing.T) {
	p, c := shared(t, 4096)
	c.ManualRelease()
	rec := make([]byte, 1300)
	var ends []uint64
	for i := range 3 {
		rec[0] = byte(i)
		if _, err := p.Write(rec); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if n, _ := c.Read(NoLimit, func(e []byte) bool { ends = append(ends, c.Next()); return true }); n != 3 {
		t.Fatalf("read %d, want 3", n)
	}
	if _, err := p.Write(rec); !errors.Is(err, ErrFull) {
		t.Fatalf("write into read but unreleased space: %v, want ErrFull", err)
	}
	c.Release(c.Next() - 2*pad(len(rec))) // the first only
	c2, err := Attach(c.mem)
	if err != nil {
		t.Fatal(err)
	}
	c2.ManualRelease()
	var firsts []byte
	c2.Read(NoLimit, func(e []byte) bool { firsts = append(firsts, e[0]); return true })
	if !bytes.Equal(firsts, []byte{1, 2}) {
		t.Fatalf("a new consumer read %v, want the unreleased [1 2]", firsts)
	}
	if _, err := p.Write(rec); err != nil {
		t.Fatalf("write into released space: %v", err)
	}
	c.Release(1 << 40) // past what was read: ignored
	if got := atomic.LoadUint64(c.u64(offRead)); got != pad(len(rec)) {
		t.Fatalf("shared read %d after a release past the reader, want %d", got, pad(len(rec)))
	}
}

// TestGuardTruncatedFile: a producer that truncates a file-backed ring
// under the consumer's mapping makes the consumer's reads fail with
// ErrFault, not kill the process.
func TestGuardTruncatedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.ring")
	s, f, err := CreateFile(path, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Write([]byte("12345678"))
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var rerr error
	err = Guard(func() { _, rerr = s.Read(NoLimit, all) })
	if !errors.Is(err, ErrFault) || rerr != nil {
		t.Fatalf("Guard = %v (read %v), want ErrFault", err, rerr)
	}
	if err := Guard(func() {}); err != nil {
		t.Fatal(err)
	}
}

// TestOpenFileResumes: a ring file outlives its consumer; OpenFile
// resumes at the released position.
func TestOpenFileResumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.ring")
	s, f, err := CreateFile(path, 4096)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	s.ManualRelease()
	for i := range 3 {
		s.Write([]byte{byte(i), 0, 0, 0, 0, 0, 0, 0})
	}
	s.Read(1, all) // the first entry only
	s.Release(s.Next())
	s.Close()
	o, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	var got []byte
	o.Read(NoLimit, func(e []byte) bool { got = append(got, e[0]); return true })
	if !bytes.Equal(got, []byte{1, 2}) {
		t.Fatalf("resumed with %v, want [1 2]", got)
	}
}

// TestTornPosition: a producer that stores the published position a byte
// at a time (not one 8-byte store, as docs/ipc.md asks) is seen half-way
// now and then; the consumer reads what came before and then, once the
// position settles, the rest: nothing is lost.
func TestTornPosition(t *testing.T) {
	p, c := shared(t, 4096)
	for i := range 3 {
		p.Write([]byte{byte(i), 1, 2, 3, 4, 5, 6, 7})
	}
	good := atomic.LoadUint64(p.u64(offWrite)) // 48
	p.Write([]byte("the fourth"))
	next := atomic.LoadUint64(p.u64(offWrite))
	// Half-way through a bytewise store from good to next: the low byte
	// is new, the rest old (here: the same), then the reverse order.
	var torn [8]byte
	binary.LittleEndian.PutUint64(torn[:], good)
	torn[0] = byte(next + 3) // and not a multiple of 8
	atomic.StoreUint64(p.u64(offWrite), binary.LittleEndian.Uint64(torn[:]))
	var got []string
	read := func(rec []byte) bool { got = append(got, string(rec)); return true }
	n1, err := c.Read(NoLimit, read)
	if !errors.Is(err, ErrUnsettled) {
		t.Fatalf("a torn position: %v", err)
	}
	atomic.StoreUint64(p.u64(offWrite), next) // the store completes
	if n2, err := c.Read(NoLimit, read); err != nil || n1+n2 != 4 {
		t.Fatalf("after it settled: %d+%d entries, %v", n1, n2, err)
	}
	if len(got) != 4 || got[3] != "the fourth" {
		t.Fatalf("read %q", got)
	}
}

// TestMisalignedPositionReadsWhatCameBefore: a published position that is
// within the ring but not a multiple of 8 (no entry ends there) is
// reported, after the entries that end before it are read.
func TestMisalignedPositionReadsWhatCameBefore(t *testing.T) {
	p, c := shared(t, 4096)
	for i := range 3 {
		p.Write([]byte{byte(i), 1, 2, 3, 4, 5, 6, 7})
	}
	w := atomic.LoadUint64(p.u64(offWrite))
	atomic.StoreUint64(p.u64(offWrite), w+4)
	n, err := c.Read(NoLimit, all)
	if n != 3 || !errors.Is(err, ErrUnsettled) {
		t.Fatalf("read %d, %v; want the 3 entries before it and ErrUnsettled", n, err)
	}
}

// TestAbandon: once the consumer abandons the ring the producer is told,
// and writes nothing more into it.
func TestAbandon(t *testing.T) {
	p, c := shared(t, 4096)
	c.Abandon()
	if _, err := p.Write([]byte("x")); !errors.Is(err, ErrAbandoned) {
		t.Fatalf("Write into an abandoned ring: %v", err)
	}
	if b := p.Reserve(16); b != nil {
		t.Fatal("Reserve in an abandoned ring")
	}
	if !p.Empty() {
		t.Fatal("something was published")
	}
}

// FuzzRead: whatever the shared memory holds, Read does not panic.
func FuzzRead(f *testing.F) {
	f.Add(uint64(16), uint64(0), []byte{8, 0, 0, 0, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, w, rd uint64, data []byte) {
		mem := make([]byte, Size(4096)+64)
		off := 64 - int(uintptrOf(mem)%64)
		mem = mem[off : off+Size(4096)]
		r, err := Init(mem)
		if err != nil {
			t.Skip()
		}
		copy(r.data, data)
		atomic.StoreUint64(r.u64(offWrite), w)
		atomic.StoreUint64(r.u64(offRead), rd)
		r.Read(NoLimit, all)
	})
}

// BenchmarkRing: one record of 150 bytes through the ring, producer and
// consumer on two goroutines (two cores), no system call.
func BenchmarkRing(b *testing.B) {
	fd, _ := unix.MemfdCreate("bench", unix.MFD_CLOEXEC)
	defer unix.Close(fd)
	size := Size(1 << 20)
	unix.Ftruncate(fd, int64(size))
	m1, _ := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	m2, _ := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	defer unix.Munmap(m1)
	defer unix.Munmap(m2)
	c, _ := Init(m2)
	p, _ := Attach(m1)
	rec := make([]byte, 150)
	done := make(chan struct{})
	b.ResetTimer()
	go func() {
		defer close(done)
		for i := 0; i < b.N; {
			if _, err := p.Write(rec); err == nil {
				i++
			}
		}
	}()
	for got := 0; got < b.N; {
		n, _ := c.Read(NoLimit, all)
		got += n
	}
	<-done
}

// TestCreateSealedAndMap: the producer maps the memfd the consumer made,
// records pass, and the producer can neither shrink nor grow it.
func TestCreateSealedAndMap(t *testing.T) {
	c, f, err := Create("logtk-ring-test", 1<<16)
	if err != nil {
		t.Skipf("memfd: %v", err)
	}
	defer f.Close()
	defer c.Close()
	p, err := Map(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Capacity() != 1<<16 {
		t.Fatalf("capacity %d", p.Capacity())
	}
	for _, size := range []int64{4096, int64(Size(1 << 17))} {
		if err := unix.Ftruncate(int(f.Fd()), size); err == nil {
			t.Fatalf("ftruncate to %d succeeded on a sealed ring", size)
		}
	}
	p.Write([]byte("hello"))
	var got string
	c.Read(NoLimit, func(rec []byte) bool { got = string(rec); return true })
	if got != "hello" {
		t.Fatalf("got %q", got)
	}
	if _, err := Map(int(os.Stdin.Fd())); err == nil {
		t.Fatal("mapped stdin as a ring")
	}
}
