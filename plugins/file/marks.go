package file

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logtk/logtk/internal/fsutil"
	"github.com/logtk/logtk/sdk/plugin"
)

// The marks file (plugin.MarkKeeper). Beside the file, named
// ".<name>.marks" (so that it is no rotated file of it), it says how far
// the file holds acknowledged batches and which records those are. It is
// a log of entries, one per batch written, each
//
//	uvarint length | uvarint size | marks (the ABI's encoding) | CRC-32C LE of the two
//
// where size is the file's length with the batch in it and marks the
// batch's. It is appended after the batch and synced with it (fsync
// "batch"), so that an entry never names a batch the file does not hold:
//
//   - At Marks, the file is cut back to the last whole entry's size: a
//     batch past it was written by a write that never returned, and the
//     host sends it again. A file shorter than that was rotated (or cut by
//     someone else): what it holds stands.
//   - The held marks are every entry's, highest seq per worker instance.
//   - A rotation appends an entry of size 0 before the new file takes a
//     batch.
//   - Past marksCompactAt the log is rewritten as one entry (a new file,
//     synced, renamed over the old one), as at every Marks.
//
// A run without marks (the host's durable ingest off) removes the marks
// file at its first write: what it appends is not in the log, and the
// log's size would cut it off.

// marksCompactAt is the size of the marks log past which it is
// rewritten as one entry.
const marksCompactAt = 1 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func marksPath(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".marks")
}

// Marks implements plugin.MarkKeeper.
func (t *Transport) Marks() ([]plugin.Mark, error) {
	if t.f == nil {
		if err := t.open(); err != nil {
			return nil, plugin.Retry(err)
		}
	}
	if err := t.loadMarks(); err != nil {
		return nil, plugin.Retry(err)
	}
	t.keep = true
	return slices.Clone(t.held), nil
}

// loadMarks reads the marks log, cuts the file back to what it names and
// rewrites it as one entry, opened for appending.
func (t *Transport) loadMarks() error {
	if t.mf != nil {
		t.mf.Close()
		t.mf = nil
	}
	b, err := os.ReadFile(marksPath(t.cfg.Path))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading the marks of %s: %w", t.cfg.Path, err)
	}
	held, size, ok := parseMarksLog(b)
	if ok && t.size > size {
		if err := t.f.Truncate(size); err != nil {
			return fmt.Errorf("cutting %s back to the %d bytes its marks name: %w", t.cfg.Path, size, err)
		}
		t.size = size
	}
	t.held = held
	return t.rewriteMarks()
}

// parseMarksLog reads a marks log up to its first torn or damaged entry:
// the marks of every entry before it, and the size the last one names
// (ok false: none).
func parseMarksLog(b []byte) (held []plugin.Mark, size int64, ok bool) {
	var marks []plugin.Mark
	for len(b) > 0 {
		l, n := protowire.ConsumeVarint(b)
		if n < 0 || uint64(len(b)-n) < l+4 {
			break
		}
		payload := b[n : n+int(l)]
		sum := binary.LittleEndian.Uint32(b[n+int(l):])
		if crc32.Checksum(payload, castagnoli) != sum {
			break
		}
		s, k := protowire.ConsumeVarint(payload)
		if k < 0 {
			break
		}
		var err error
		if marks, err = plugin.ParseMarks(marks[:0], payload[k:]); err != nil {
			break
		}
		held = plugin.MergeMarks(held, marks)
		size, ok = int64(s), true
		b = b[n+int(l)+4:]
	}
	return held, size, ok
}

func appendMarksEntry(b []byte, size int64, marks []plugin.Mark) []byte {
	var payload [10]byte
	p := protowire.AppendVarint(payload[:0], uint64(size))
	p = plugin.AppendMarks(p, marks)
	b = protowire.AppendVarint(b, uint64(len(p)))
	b = append(b, p...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(p, castagnoli))
}

// rewriteMarks replaces the marks log by one entry of the file's size
// and the held marks, and opens it for appending.
// On failure the log is closed (t.mf nil): the next write starts again
// from the files.
func (t *Transport) rewriteMarks() error {
	if t.mf != nil {
		t.mf.Close()
		t.mf = nil
	}
	path := marksPath(t.cfg.Path)
	tmp := path + ".new"
	b := appendMarksEntry(nil, t.size, t.held)
	if err := fsutil.WriteSynced(tmp, b, os.O_TRUNC); err != nil {
		return fmt.Errorf("writing the marks of %s: %w", t.cfg.Path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing the marks of %s: %w", t.cfg.Path, err)
	}
	syncDir(filepath.Dir(path))
	mf, err := openAppend(path)
	if err != nil {
		return fmt.Errorf("opening the marks of %s: %w", t.cfg.Path, err)
	}
	t.mf, t.marksSize = mf, int64(len(b))
	return nil
}

// syncDir makes a rename in dir durable where the sandbox lets it; a
// process crash does not need it.
func syncDir(dir string) { fsutil.SyncDir(dir) }

// noteMarks appends the entry of a batch just written (the file is
// t.size long with it), synced when sync is set, and adds its marks to
// the held ones. On failure the entry is cut off again.
func (t *Transport) noteMarks(marks []plugin.Mark, sync bool) error {
	t.mbuf = appendMarksEntry(t.mbuf[:0], t.size, marks)
	n, err := t.mf.Write(t.mbuf)
	if err == nil && sync {
		err = t.mf.Sync()
	}
	if err != nil {
		if n > 0 {
			if terr := t.mf.Truncate(t.marksSize); terr != nil {
				// The log may name a batch the caller cuts off: the next
				// write starts again from the files.
				t.closeFiles()
				return errors.Join(err, fmt.Errorf("cutting a failed entry off the marks: %w", terr))
			}
		}
		return err
	}
	t.marksSize += int64(n)
	t.held = plugin.MergeMarks(t.held, marks)
	if t.marksSize > marksCompactAt {
		// The batch and its entry are durable whatever compaction does;
		// if it fails, the next write starts again from the files.
		if err := t.rewriteMarks(); err != nil {
			t.closeFiles()
		}
	}
	return nil
}

// heldAll reports whether every mark of a batch is at or below the held
// ones: the batch is in the file (written by a write that failed after
// its entry was durable) and must not be written again.
func (t *Transport) heldAll(marks []plugin.Mark) bool {
	if len(marks) == 0 {
		return false
	}
	for _, m := range marks {
		i := slices.IndexFunc(t.held, func(h plugin.Mark) bool { return h.Worker == m.Worker && h.Index == m.Index })
		if i < 0 || t.held[i].Seq < m.Seq {
			return false
		}
	}
	return true
}

// dropMarks removes a marks file a run with marks left, before a run
// without them appends what its entries do not name.
func (t *Transport) dropMarks() error {
	err := os.Remove(marksPath(t.cfg.Path))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the marks of %s, which a run without marks would make wrong: %w", t.cfg.Path, err)
	}
	return nil
}
