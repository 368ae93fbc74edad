package plugin

import (
	"errors"

	"google.golang.org/protobuf/encoding/protowire"
)

// A batch is a sequence of entries, each a uvarint length followed by that
// many bytes (docs/plugin-abi.md).

var errBadBatch = errors.New("malformed batch: entry length runs past the end")

func countEntries(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		l, k := protowire.ConsumeVarint(b)
		if k < 0 || uint64(len(b)-k) < l {
			return 0, errBadBatch
		}
		b = b[k+int(l):]
		n++
	}
	return n, nil
}

func eachEntry(b []byte, fn func([]byte) bool) {
	for len(b) > 0 {
		l, k := protowire.ConsumeVarint(b)
		if k < 0 || uint64(len(b)-k) < l {
			return
		}
		if !fn(b[k : k+int(l)]) {
			return
		}
		b = b[k+int(l):]
	}
}

// AppendEntry appends one entry to a batch.
func AppendEntry(b, entry []byte) []byte {
	return append(protowire.AppendVarint(b, uint64(len(entry))), entry...)
}

// FormatBatch runs f over an encoded batch of records and appends the
// encoded batch of results to dst: one entry per record, in order. It is
// what the ABI's format call does, exposed for native tests and benchmarks.
func FormatBatch(f Formatter, dst, records []byte) ([]byte, error) {
	if bf, ok := f.(BatchFormatter); ok {
		if out, ok, err := bf.FormatBatch(dst, records); ok || err != nil {
			return out, err
		}
	}
	var rec Record
	var err error
	scratch := dst
	eachEntry(records, func(e []byte) bool {
		if !rec.Parse(e) {
			err = errors.New("malformed record in batch")
			return false
		}
		// Reserve a 3-byte length (entries up to 2 MiB) and shift if the
		// result is longer; formatted records are short.
		start := len(scratch)
		scratch = append(scratch, 0x80, 0x80, 0)
		scratch, err = f.Format(scratch, &rec)
		if err != nil {
			return false
		}
		scratch = patchLen3(scratch, start)
		return true
	})
	return scratch, err
}

// patchLen3 writes the length of the entry starting at start+3 into the
// three bytes reserved at start, as a padded uvarint when it fits in 21
// bits, and otherwise re-encodes it minimally.
func patchLen3(b []byte, start int) []byte {
	n := len(b) - start - 3
	if n < 1<<21 {
		b[start] = byte(n) | 0x80
		b[start+1] = byte(n>>7) | 0x80
		b[start+2] = byte(n >> 14)
		return b
	}
	entry := append([]byte(nil), b[start+3:]...)
	return AppendEntry(b[:start], entry)
}
