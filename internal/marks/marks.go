// Package marks encodes the marks of the plugin ABI (docs/plugin-abi.md,
// "Marks"): a list of entries, each a worker name (an unsigned LEB128
// length and that many bytes of UTF-8), an instance index (an unsigned
// LEB128 below 2^32) and a seq (an unsigned LEB128). The host, the
// pipeline and the Go SDK all read and write them here.
package marks

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Append appends one mark.
func Append(b []byte, worker string, index uint32, seq uint64) []byte {
	b = protowire.AppendString(b, worker)
	b = protowire.AppendVarint(b, uint64(index))
	return protowire.AppendVarint(b, seq)
}

// Each calls fn for each mark of b in order, and returns an error naming
// the first malformed one (fn has seen those before it).
func Each(b []byte, fn func(worker []byte, index uint32, seq uint64)) error {
	for len(b) > 0 {
		w, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return errors.New("marks: a worker name runs past the end")
		}
		if !utf8.Valid(w) {
			return errors.New("marks: a worker name is not UTF-8")
		}
		b = b[n:]
		idx, n := protowire.ConsumeVarint(b)
		if n < 0 || idx > math.MaxUint32 {
			return fmt.Errorf("marks: the index of worker %q is missing or too large", w)
		}
		b = b[n:]
		seq, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return fmt.Errorf("marks: the seq of worker %q is missing", w)
		}
		b = b[n:]
		fn(w, uint32(idx), seq)
	}
	return nil
}

// Valid checks b's encoding.
func Valid(b []byte) error { return Each(b, func([]byte, uint32, uint64) {}) }
