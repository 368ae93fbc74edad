package wasm

import "testing"

// FuzzCountEntries: a plugin's output is outside bytes; counting and
// walking its entries never panics and agrees with itself.
func FuzzCountEntries(f *testing.F) {
	f.Add(AppendEntry(AppendEntry(nil, []byte("a")), nil))
	f.Add([]byte{0x80, 0x80, 0x00})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, ok := CountEntries(b)
		walked := 0
		EachEntry(b, func([]byte) { walked++ })
		if ok && walked != n {
			t.Fatalf("CountEntries = %d, EachEntry walked %d", n, walked)
		}
	})
}
