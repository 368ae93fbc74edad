package file

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logtk/logtk/internal/fsutil"
	"github.com/logtk/logtk/sdk/plugin"
)

// The marks file (plugin.MarkKeeper). Beside the file, named
// ".<name>.marks" (so that it is no rotated file of it), it says which
// records the file holds. It is a log of entries, one per batch, each
//
//	uvarint length | uvarint start | uvarint end | marks (the ABI's encoding) | CRC-32C LE
//
// (the CRC of what the length counts): the batch with those marks takes
// the bytes [start, end) of the file. The entry is appended before the
// batch is written (synced after it, with fsync "batch"), so the last
// entry tells what a death in the middle of a write left:
//
//   - file size >= end (end == size, or a checkpoint start == end): the
//     entries' marks stand, highest seq per worker instance;
//   - start <= size < end: the batch never got whole (nobody acknowledged
//     it; the host sends it again): the file is cut back to start and
//     the entry's marks left out;
//   - size < start: the file was rotated (or cut by someone else) after
//     the entry: the marks stand;
//   - size > end: the file holds more than the log says (a run without
//     marks wrote to it, or the log was damaged or cut short): nothing is
//     cut, the marks stand (they say less than the file holds: records
//     may come again, none is lost), and a warning says so.
//
// A write whose batch does not reach the file takes its entry off the
// log again (or, failing that, the files are opened again, and the
// entry is last). A rotation writes the new file's first entry after the
// rename. At every Marks, and past marksCompactAt, the log is rewritten
// as one checkpoint entry [size, size) with every mark held (a new file,
// synced, renamed over the old one).

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

// loadMarks reads the marks log, cuts off the file a batch whose write
// never got whole, and rewrites the log as one entry, opened for
// appending.
func (t *Transport) loadMarks() error {
	if t.mf != nil {
		t.mf.Close()
		t.mf = nil
	}
	b, err := os.ReadFile(marksPath(t.cfg.Path))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading the marks of %s: %w", t.cfg.Path, err)
	}
	held, last, torn := parseMarksLog(b)
	switch {
	case last == nil:
	case last.start <= t.size && t.size < last.end:
		if err := t.f.Truncate(last.start); err != nil {
			return fmt.Errorf("cutting off %s the batch a write that never returned left (bytes %d to %d): %w", t.cfg.Path, last.start, t.size, err)
		}
		t.size = last.start
	default:
		held = plugin.MergeMarks(held, last.marks)
		if t.size > last.end {
			plugin.Log(plugin.LevelWarn, fmt.Sprintf("%s holds %d bytes its marks log does not name (written without marks, or the log %s was damaged): kept; records in them may be written again after a host crash", t.cfg.Path, t.size-last.end, marksPath(t.cfg.Path)))
		}
	}
	if torn {
		plugin.Log(plugin.LevelWarn, fmt.Sprintf("the marks log %s ends in a damaged entry: read up to it", marksPath(t.cfg.Path)))
	}
	t.held = held
	return t.rewriteMarks()
}

// marksEntry is one entry of the marks log.
type marksEntry struct {
	start, end int64
	marks      []plugin.Mark
}

// parseMarksLog reads a marks log up to its first torn or damaged entry
// (torn: there was one): the marks of every entry before the last, and
// the last (nil: none).
func parseMarksLog(b []byte) (held []plugin.Mark, last *marksEntry, torn bool) {
	for len(b) > 0 {
		l, n := protowire.ConsumeVarint(b)
		if n < 0 || l > uint64(len(b)-n) || uint64(len(b)-n)-l < 4 {
			return held, last, true
		}
		payload := b[n : n+int(l)]
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(b[n+int(l):]) {
			return held, last, true
		}
		start, k := protowire.ConsumeVarint(payload)
		if k < 0 {
			return held, last, true
		}
		end, k2 := protowire.ConsumeVarint(payload[k:])
		if k2 < 0 || end < start || end > math.MaxInt64 {
			return held, last, true
		}
		marks, err := plugin.ParseMarks(nil, payload[k+k2:])
		if err != nil {
			return held, last, true
		}
		if last != nil {
			held = plugin.MergeMarks(held, last.marks)
		}
		last = &marksEntry{int64(start), int64(end), marks}
		b = b[n+int(l)+4:]
	}
	return held, last, false
}

func appendMarksEntry(b []byte, start, end int64, marks []plugin.Mark) []byte {
	var payload [20]byte
	p := protowire.AppendVarint(payload[:0], uint64(start))
	p = protowire.AppendVarint(p, uint64(end))
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
	b := appendMarksEntry(nil, t.size, t.size, t.held)
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

// noteMarks appends the entry of a batch about to be written: its
// bytes will be [t.size, t.size+n). On failure the entry is cut off
// again (or, failing that, both files are closed: the next write opens
// them again, and the entry is last).
func (t *Transport) noteMarks(n int64, marks []plugin.Mark) error {
	t.mbuf = appendMarksEntry(t.mbuf[:0], t.size, t.size+n, marks)
	w, err := t.mf.Write(t.mbuf)
	if err != nil {
		// Cut back whatever it said: in the sandbox a write that failed
		// part way reports nothing of what it wrote.
		if terr := t.mf.Truncate(t.marksSize); terr != nil {
			t.closeFiles()
			return errors.Join(err, fmt.Errorf("cutting a failed entry off the marks: %w", terr))
		}
		return err
	}
	t.entrySize = int64(w)
	t.marksSize += int64(w)
	return nil
}

// unnoteMarks takes the entry noteMarks appended last off the log, its
// batch not written; false if that failed (both files are then closed).
func (t *Transport) unnoteMarks() bool {
	if err := t.mf.Truncate(t.marksSize - t.entrySize); err != nil {
		t.closeFiles()
		return false
	}
	t.marksSize -= t.entrySize
	return true
}

// heldMarks notes that the batch of the last entry is whole in the file
// (and synced with its entry when sync is set), and compacts the log
// when it has grown.
func (t *Transport) heldMarks(marks []plugin.Mark, sync bool) error {
	if sync {
		if err := t.mf.Sync(); err != nil {
			return err
		}
	}
	t.held = plugin.MergeMarks(t.held, marks)
	if t.marksSize > marksCompactAt {
		// What the log says is durable whatever compaction does; if it
		// fails, the next write starts again from the files.
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
