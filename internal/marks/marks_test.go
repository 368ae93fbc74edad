package marks

import (
	"bytes"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	b := Append(nil, "api", 0, 7)
	b = Append(b, "db", 1<<32-1, 1<<63)
	type m struct {
		w   string
		i   uint32
		seq uint64
	}
	var got []m
	if err := Each(b, func(w []byte, i uint32, seq uint64) { got = append(got, m{string(w), i, seq}) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != (m{"api", 0, 7}) || got[1] != (m{"db", 1<<32 - 1, 1 << 63}) {
		t.Fatalf("%v", got)
	}
	for _, bad := range [][]byte{
		{5, 'a'},        // name past the end
		{1, 0xff, 0, 0}, // not UTF-8
		{1, 'a'},        // no index
		{1, 'a', 0},     // no seq
		{1, 'a', 0x80, 0x80, 0x80, 0x80, 0x10, 1}, // index 2^32
	} {
		if Valid(bad) == nil {
			t.Errorf("%x taken for valid marks", bad)
		}
	}
}

// FuzzEach: marks a plugin returns are outside bytes to the host: any
// input gives an answer, and what is valid encodes back the same.
func FuzzEach(f *testing.F) {
	f.Add(Append(Append(nil, "api", 0, 7), "db", 3, 1<<40))
	f.Add([]byte{1, 'a', 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		var again []byte
		if err := Each(b, func(w []byte, i uint32, seq uint64) { again = Append(again, string(w), i, seq) }); err != nil {
			return
		}
		// Valid marks re-encode to a list that reads the same; the bytes
		// differ only where b padded a varint.
		var twice []byte
		if err := Each(again, func(w []byte, i uint32, seq uint64) { twice = Append(twice, string(w), i, seq) }); err != nil || !bytes.Equal(again, twice) {
			t.Fatalf("re-encoding %x: %x, %x, %v", b, again, twice, err)
		}
	})
}
