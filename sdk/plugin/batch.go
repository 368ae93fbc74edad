package plugin

import (
	"errors"

	"github.com/logtk/logtk/internal/entries"
)

// A batch is a sequence of entries, each a uvarint length followed by that
// many bytes (docs/plugin-abi.md).

var errBadBatch = errors.New("malformed batch: entry length runs past the end")

func countEntries(b []byte) (int, error) {
	n, ok := entries.Count(b)
	if !ok {
		return 0, errBadBatch
	}
	return n, nil
}

// AppendEntry appends one entry to a batch.
func AppendEntry(b, entry []byte) []byte { return entries.Append(b, entry) }

// FormatBatch runs f over an encoded batch of records and appends the
// encoded batch of results to dst: one entry per record, in order. It is
// what the ABI's format call does, exposed for native tests and benchmarks.
func FormatBatch(f Formatter, dst, records []byte) ([]byte, error) {
	if pt, ok := f.(PassThroughFormatter); ok && pt.PassThrough() {
		return append(dst, records...), nil
	}
	if bf, ok := f.(BatchFormatter); ok {
		if out, ok, err := bf.FormatBatch(dst, records); ok || err != nil {
			return out, err
		}
	}
	var rec Record
	var err error
	scratch := dst
	entries.EachWhile(records, func(e []byte) bool {
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
