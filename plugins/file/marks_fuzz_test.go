package file

import (
	"testing"

	"github.com/logtk/logtk/sdk/plugin"
)

// FuzzMarksLog: the marks log is read back from disk, where anything may
// have happened to it: any bytes give an answer, and a log cut anywhere
// names at most what the whole one names, with the size of an entry it
// holds.
func FuzzMarksLog(f *testing.F) {
	log := appendMarksEntry(nil, 0, nil)
	log = appendMarksEntry(log, 10, []plugin.Mark{{Worker: "api", Index: 0, Seq: 5}})
	log = appendMarksEntry(log, 25, []plugin.Mark{{Worker: "api", Index: 0, Seq: 9}, {Worker: "db", Index: 2, Seq: 1}})
	f.Add(log, 17)
	f.Add([]byte{12, 10, 3, 'w', 'e'}, 3)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		held, size, ok := parseMarksLog(b)
		if !ok && (len(held) > 0 || size != 0) {
			t.Fatalf("no entry, yet marks %v and size %d", held, size)
		}
		if cut < 0 || cut > len(b) {
			return
		}
		part, _, pok := parseMarksLog(b[:cut])
		if pok && !ok {
			t.Fatalf("a prefix holds an entry the whole log does not")
		}
		for _, m := range part {
			found := false
			for _, h := range held {
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
