package entries

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	b := Append(Append(Append(nil, []byte("a")), nil), make([]byte, 300))
	if n, ok := Count(b); n != 3 || !ok {
		t.Fatalf("Count = %d %v", n, ok)
	}
	var lens []int
	Each(b, func(e []byte) { lens = append(lens, len(e)) })
	if len(lens) != 3 || lens[0] != 1 || lens[1] != 0 || lens[2] != 300 {
		t.Fatalf("lengths %v", lens)
	}
	if _, ok := Count(b[:len(b)-1]); ok {
		t.Fatal("a truncated batch counted as well-formed")
	}
	// A padded length is a valid length.
	if n, ok := Count([]byte{0x81, 0x80, 0x00, 'x'}); n != 1 || !ok {
		t.Fatalf("padded length: %d %v", n, ok)
	}
}

// FuzzCount: outside bytes (plugin output, network frames, spool files)
// never panic the decoder, and Count and Each agree.
func FuzzCount(f *testing.F) {
	f.Add(Append(Append(nil, []byte("a")), nil))
	f.Add([]byte{0x80, 0x80, 0x00})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, ok := Count(b)
		checkAppendCount(t, b, n, ok)
		walked := 0
		Each(b, func([]byte) { walked++ })
		if ok && walked != n {
			t.Fatalf("Count = %d, Each walked %d", n, walked)
		}
	})
}

// BenchmarkCount walks a batch shaped like the formatter benchmarks' (512
// entries of 150-300 bytes), as the host does to check a plugin's output.
func BenchmarkCount(b *testing.B) {
	var batch []byte
	for i := range 512 {
		batch = Append(batch, make([]byte, 150+i%150))
	}
	b.SetBytes(int64(len(batch)))
	for b.Loop() {
		if n, ok := Count(batch); n != 512 || !ok {
			b.Fatal(n, ok)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*512), "ns/entry")
}

// checkAppendCount: AppendCount counts as Count does and, for a
// well-formed batch, appends it whole.
func checkAppendCount(t *testing.T, b []byte, n int, ok bool) {
	t.Helper()
	prefix := []byte("prefix")
	out, n2, ok2 := AppendCount(bytes.Clone(prefix), b)
	if n2 != n || ok2 != ok {
		t.Fatalf("AppendCount = %d %v, Count = %d %v (%d bytes)", n2, ok2, n, ok, len(b))
	}
	if ok && !bytes.Equal(out, append(prefix, b...)) {
		t.Fatal("AppendCount did not append the batch unchanged")
	}
}

// TestAppendCountChunks: batches far larger than AppendCount's chunk, with
// lengths of one to three bytes (some padded) straddling chunk boundaries,
// whole and cut at many points, count as Count counts them.
func TestAppendCountChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var b []byte
	for i := range 3000 {
		e := make([]byte, rng.IntN(300))
		if i%5 == 0 {
			b = append(b, byte(len(e))|0x80, byte(len(e)>>7)|0x80, byte(len(e)>>14)) // padded
			b = append(b, e...)
		} else {
			b = Append(b, e)
		}
	}
	if n, ok := Count(b); n != 3000 || !ok {
		t.Fatalf("Count = %d %v", n, ok)
	}
	for cut := len(b); cut > 0; cut -= 1 + rng.IntN(997) {
		n, ok := Count(b[:cut])
		checkAppendCount(t, b[:cut], n, ok)
	}
	// A length that starts 1, 2 or 3 bytes before the 8 KiB chunk ends.
	for k := 1; k <= 3; k++ {
		b := Append(nil, make([]byte, 8190-k))         // 2-byte length + 8190-k bytes
		b = append(b, 0x85, 0x80, 0x00, 1, 2, 3, 4, 5) // padded length 5
		b = Append(b, make([]byte, 200))
		if len(Append(nil, make([]byte, 8190-k))) != 8192-k {
			t.Fatal("test batch miscomputed")
		}
		for _, cut := range []int{len(b), 8192 - k + 1, 8192 - k + 2, 8192} {
			n, ok := Count(b[:cut])
			checkAppendCount(t, b[:cut], n, ok)
		}
	}
}
