package file

import (
	"testing"

	"github.com/logtk/logtk/sdk/plugin"
)

// FuzzMarksLog: the marks log is read back from disk, where anything may
// have happened to it: any bytes give an answer, an entry never ends
// before it starts, and a log cut anywhere names no more than the whole
// one names.
func FuzzMarksLog(f *testing.F) {
	log := appendMarksEntry(nil, 0, 0, nil)
	log = appendMarksEntry(log, 0, 10, []plugin.Mark{{Worker: "api", Index: 0, Seq: 5}})
	log = appendMarksEntry(log, 10, 25, []plugin.Mark{{Worker: "api", Index: 0, Seq: 9}, {Worker: "db", Index: 2, Seq: 1}})
	f.Add(log, 17)
	f.Add([]byte{12, 10, 3, 'w', 'e'}, 3)
	// A length near 2^64: adding the CRC's 4 bytes to it wrapped, and
	// the log's reader panicked.
	f.Add([]byte{0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 2, 3, 4, 5, 6}, 0)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		held, last, _ := parseMarksLog(b)
		if last == nil && len(held) > 0 {
			t.Fatalf("no entry, yet marks %v", held)
		}
		if last != nil && last.end < last.start {
			t.Fatalf("an entry ends at %d before it starts at %d", last.end, last.start)
		}
		if cut < 0 || cut > len(b) {
			return
		}
		all := held
		if last != nil {
			all = plugin.MergeMarks(append([]plugin.Mark(nil), held...), last.marks)
		}
		part, plast, _ := parseMarksLog(b[:cut])
		if plast != nil {
			part = plugin.MergeMarks(part, plast.marks)
		}
		for _, m := range part {
			found := false
			for _, h := range all {
				if h.Worker == m.Worker && h.Index == m.Index && h.Seq >= m.Seq {
					found = true
				}
			}
			if !found {
				t.Fatalf("a prefix names %v, which the whole log does not hold", m)
			}
		}
	})
}
