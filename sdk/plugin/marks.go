package plugin

import (
	"slices"

	"github.com/logtk/logtk/internal/marks"
)

// A Mark says that a transport holds the records of one worker instance
// up to Seq (record.Record's Worker, WorkerIndex and Seq). Marks are how
// a transport that writes somewhere it can read back at Open (a file)
// keeps a record from being written twice when the host dies: see
// MarkKeeper.
type Mark struct {
	Worker string
	Index  uint32
	Seq    uint64
}

// MarkKeeper is implemented by a transport that keeps the marks of what
// it delivered, durably and together with it, so that a host which died
// does not give it again what it already holds.
//
// The host calls Marks after every Open while its durable ingest is on.
// Marks returns the marks of everything the transport holds (for each
// worker instance, the highest seq it holds; none at all is fine), and
// must first cut off whatever a write that did not return left behind.
// From then on each Batch carries Batch.Marks, and a Write that returns
// nil must have made the batch's marks durable no later than the batch:
// after a crash at any point, Marks must name no record that is not
// held. The host does not send again a record whose seq is at or below
// its instance's mark. A transport reports a mark only for batches it
// holds together with every earlier batch it did not refuse.
//
// A transport whose Marks returns an error fails its Open (Retry as
// there).
type MarkKeeper interface {
	Marks() ([]Mark, error)
}

// Marks returns the batch's marks: for each worker instance with records
// in it, the highest seq among them. Empty unless the transport is a
// MarkKeeper whose Marks the host called.
func (b *Batch) Marks() []Mark { return b.marks }

// AppendMarks appends marks in the ABI's encoding (docs/plugin-abi.md,
// "Marks").
func AppendMarks(b []byte, ms []Mark) []byte {
	for _, m := range ms {
		b = marks.Append(b, m.Worker, m.Index, m.Seq)
	}
	return b
}

// ParseMarks decodes marks in the ABI's encoding, appending them to dst.
func ParseMarks(dst []Mark, b []byte) ([]Mark, error) {
	err := marks.Each(b, func(w []byte, index uint32, seq uint64) {
		dst = append(dst, Mark{Worker: string(w), Index: index, Seq: seq})
	})
	return dst, err
}

// MergeMarks adds marks to held, keeping for each worker instance the
// highest seq, and returns it sorted by worker and index.
func MergeMarks(held []Mark, marks []Mark) []Mark {
	for _, m := range marks {
		i := slices.IndexFunc(held, func(h Mark) bool { return h.Worker == m.Worker && h.Index == m.Index })
		if i < 0 {
			held = append(held, m)
		} else {
			held[i].Seq = max(held[i].Seq, m.Seq)
		}
	}
	slices.SortFunc(held, func(a, b Mark) int {
		if a.Worker != b.Worker {
			if a.Worker < b.Worker {
				return -1
			}
			return 1
		}
		return int(int64(a.Index) - int64(b.Index))
	})
	return held
}
