// Package entries encodes the one batch format every logtk boundary uses
// (the plugin ABI, the wire protocol, the spool, the dead-letter files): a
// sequence of entries, each an unsigned LEB128 length and that many bytes.
// The length may be padded with 0x80 continuation bytes.
package entries

import (
	"encoding/binary"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// Append appends one entry.
func Append(b, entry []byte) []byte {
	return append(protowire.AppendVarint(b, uint64(len(entry))), entry...)
}

// Count counts the entries of b and reports whether b is well-formed
// (every length fits in what follows it).
func Count(b []byte) (int, bool) {
	n, _, ok := walk(b, len(b), 0, len(b))
	return n, ok
}

// AppendCount appends src to dst and counts src's entries as Count does.
// It walks each chunk of src right after copying it, while the copy is in
// the L1 cache: the host runs it over every batch a plugin returns, and a
// walk of a whole batch after its copy finds its lengths in L2, slower
// (BENCHMARKS.md). When src is malformed, dst may hold only part of it.
func AppendCount(dst, src []byte) ([]byte, int, bool) {
	const chunk = 8 << 10
	base := len(dst)
	dst = slices.Grow(dst, len(src))
	n, next := 0, 0 // next: where the next entry's length starts, in src
	for off := 0; off < len(src); off += chunk {
		end := min(off+chunk, len(src))
		dst = append(dst, src[off:end]...)
		// Walk the entries whose length is whole in what is copied.
		stop := end
		if end < len(src) {
			stop = end - binary.MaxVarintLen64 + 1
		}
		k, at, ok := walk(dst[base:base+end], len(src), next, stop)
		if n += k; !ok {
			return dst, n, false
		}
		next = at
	}
	return dst, n, true
}

// walk counts the entries of a batch of total bytes, of which b holds the
// first len(b), from the one at next while they start before stop. It
// returns how many it walked, where the next one starts, and false if one
// is malformed. Lengths of one and two bytes (nearly all) are decoded in
// the loop instead of through a call: the host walks every batch a plugin
// returns.
func walk(b []byte, total, next, stop int) (n, at int, ok bool) {
	for next < stop {
		var l uint64
		if c := b[next]; c < 0x80 {
			l, next = uint64(c), next+1
		} else if next+1 < len(b) && b[next+1] < 0x80 {
			l, next = uint64(c&0x7f)|uint64(b[next+1])<<7, next+2
		} else {
			v, k := protowire.ConsumeVarint(b[next:])
			if k < 0 {
				return n, next, false
			}
			l, next = v, next+k
		}
		if uint64(total-next) < l {
			return n, next, false
		}
		next += int(l)
		n++
	}
	return n, next, true
}

// Each calls fn for each entry of b, in order, stopping at a malformed
// entry (Count tells which batches are well-formed).
func Each(b []byte, fn func(entry []byte)) {
	EachWhile(b, func(e []byte) bool { fn(e); return true })
}

// EachWhile is Each that stops when fn returns false.
func EachWhile(b []byte, fn func(entry []byte) bool) {
	for len(b) > 0 {
		l, k := uvarint(b)
		if k < 0 || uint64(len(b)-k) < l {
			return
		}
		if !fn(b[k : k+int(l)]) {
			return
		}
		b = b[k+int(l):]
	}
}

// Next returns the first entry of b and the bytes it takes with its
// length; n <= 0 when b is empty or its first entry malformed.
func Next(b []byte) (entry []byte, n int) {
	l, k := uvarint(b)
	if k <= 0 || uint64(len(b)-k) < l {
		return nil, -1
	}
	return b[k : k+int(l)], k + int(l)
}

// uvarint is protowire.ConsumeVarint with the lengths of most entries
// (one or two bytes) decoded inline.
func uvarint(b []byte) (uint64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	if len(b) > 1 && b[1] < 0x80 {
		return uint64(b[0]&0x7f) | uint64(b[1])<<7, 2
	}
	return protowire.ConsumeVarint(b)
}
