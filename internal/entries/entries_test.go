package entries

import "testing"

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
