package wasm

import "google.golang.org/protobuf/encoding/protowire"

// AppendEntry appends one batch entry: a uvarint length and the bytes.
func AppendEntry(b, entry []byte) []byte {
	return append(protowire.AppendVarint(b, uint64(len(entry))), entry...)
}

// CountEntries counts the entries of a batch and reports whether it is
// well-formed.
func CountEntries(b []byte) (int, bool) {
	n := 0
	for len(b) > 0 {
		l, k := protowire.ConsumeVarint(b)
		if k < 0 || uint64(len(b)-k) < l {
			return n, false
		}
		b = b[k+int(l):]
		n++
	}
	return n, true
}

// EachEntry calls fn for each entry of a well-formed batch.
func EachEntry(b []byte, fn func(entry []byte)) {
	for len(b) > 0 {
		l, k := protowire.ConsumeVarint(b)
		if k < 0 || uint64(len(b)-k) < l {
			return
		}
		fn(b[k : k+int(l)])
		b = b[k+int(l):]
	}
}
