// Package file is the reference file transport: it appends formatted
// records to a file in a directory the host granted, rotates it by size
// and age, keeps a bounded number of old files, and syncs to disk as
// configured before it acknowledges a batch. See README.md.
package file

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logtk/logtk/sdk/plugin"
)

// Info describes the plugin.
var Info = plugin.Info{
	Name:    "file",
	Version: "1.0.0",
	Config: []plugin.Field{
		{Name: "path", Type: plugin.TypePath, Required: true, Doc: "the file to append to; its directory must be granted in allow { directories }"},
		{Name: "max_bytes", Type: plugin.TypeNumber, Doc: "rotate when the file would grow past this size; 0 (default) never"},
		{Name: "max_age", Type: plugin.TypeString, Doc: `rotate a file older than this ("24h"); needs allow { clock = true }`},
		{Name: "max_files", Type: plugin.TypeNumber, Doc: "rotated files to keep; older ones are deleted; 0 (default) keeps all"},
		{Name: "fsync", Type: plugin.TypeString, Doc: `"batch" (default): sync before acknowledging each batch; "never": leave it to the OS (Flush and Close still sync)`},
		{Name: "framing", Type: plugin.TypeString, Doc: `"raw" (default; text and JSON lines end in a newline already), "newline" (add one) or "length-prefixed" (a uvarint length before each entry, for binary formats)`},
	},
}

// Transport appends to a rotating file.
type Transport struct {
	cfg struct {
		Path     string  `json:"path"`
		MaxBytes float64 `json:"max_bytes"`
		MaxAge   string  `json:"max_age"`
		MaxFiles float64 `json:"max_files"`
		Fsync    string  `json:"fsync"`
		Framing  string  `json:"framing"`
	}
	maxAge  time.Duration
	f       appendFile
	size    int64 // bytes in the file: where a failed write is cut back to
	opened  time.Time
	buf     []byte
	pending bool // written since the last sync

	// The marks (marks.go): keep once the host asked for them; held is
	// what the marks log names, mf the log open for appending.
	keep      bool
	held      []plugin.Mark
	mf        appendFile
	marksSize int64
	mbuf      []byte
	entrySize int64 // of the log's last entry (noteMarks)
}

// appendFile is what the transport needs of its file (tests inject
// failing ones).
type appendFile interface {
	Write([]byte) (int, error)
	Truncate(int64) error
	Sync() error
	Stat() (os.FileInfo, error)
	Close() error
}

// openAppend opens path for appending (a variable: tests replace it).
var openAppend = func(path string) (appendFile, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}

// New returns an unconfigured Transport.
func New() *Transport { return &Transport{} }

var (
	_ plugin.Transport  = (*Transport)(nil)
	_ plugin.Configurer = (*Transport)(nil)
	_ plugin.MarkKeeper = (*Transport)(nil)
)

// Configure implements plugin.Configurer.
func (t *Transport) Configure(config []byte) error {
	if err := plugin.DecodeConfig(config, &t.cfg); err != nil {
		return err
	}
	if t.cfg.Path == "" {
		return errors.New("path is required")
	}
	switch t.cfg.Fsync {
	case "", "batch", "never":
	default:
		return fmt.Errorf("unknown fsync %q (want \"batch\" or \"never\")", t.cfg.Fsync)
	}
	switch t.cfg.Framing {
	case "", "raw", "newline", "length-prefixed":
	default:
		return fmt.Errorf("unknown framing %q (want \"raw\", \"newline\" or \"length-prefixed\")", t.cfg.Framing)
	}
	if t.cfg.MaxBytes < 0 || t.cfg.MaxFiles < 0 {
		return errors.New("max_bytes and max_files must not be negative")
	}
	if t.cfg.MaxBytes != math.Trunc(t.cfg.MaxBytes) || t.cfg.MaxFiles != math.Trunc(t.cfg.MaxFiles) {
		// 0.5 would rotate before every batch, or keep no rotated file.
		return errors.New("max_bytes and max_files must be whole numbers")
	}
	if t.cfg.MaxAge != "" {
		d, err := time.ParseDuration(t.cfg.MaxAge)
		if err != nil || d <= 0 {
			return fmt.Errorf("max_age %q is not a positive duration", t.cfg.MaxAge)
		}
		t.maxAge = d
	}
	return nil
}

// clockGranted: without allow { clock = true } the sandbox's clock is a
// fixed fake in the past.
func clockGranted() bool { return time.Now().After(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)) }

// Open implements plugin.Transport.
func (t *Transport) Open() error {
	if t.maxAge > 0 && !clockGranted() {
		return errors.New("max_age needs the clock: grant it with allow { clock = true }")
	}
	return t.open()
}

func (t *Transport) open() error {
	f, err := openAppend(t.cfg.Path)
	if err != nil {
		return fmt.Errorf("opening %s (is its directory granted in allow { directories }?): %w", t.cfg.Path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	size := st.Size()
	if whole, err := wholeEntries(t.cfg.Path, t.cfg.Framing, size); err != nil {
		f.Close()
		return fmt.Errorf("reading %s for a torn last entry: %w", t.cfg.Path, err)
	} else if whole < size {
		// A process that died inside a write (the host's crash) left part
		// of an entry: it was never acknowledged and comes again.
		if err := f.Truncate(whole); err != nil {
			f.Close()
			return fmt.Errorf("cutting a torn last entry off %s: %w", t.cfg.Path, err)
		}
		size = whole
	}
	t.f, t.size, t.opened = f, size, time.Now()
	return nil
}

// wholeEntries returns where the last whole entry of the file at path,
// size bytes long, ends: after its last newline with framing "newline",
// after its last whole uvarint-prefixed entry with "length-prefixed".
// With "raw" entries have no mark to know them by: size.
func wholeEntries(path, framing string, size int64) (int64, error) {
	if size == 0 || (framing != "newline" && framing != "length-prefixed") {
		return size, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if framing == "newline" {
		const chunk = 64 << 10
		buf := make([]byte, chunk)
		for end := size; end > 0; {
			start := max(end-chunk, 0)
			n, err := f.ReadAt(buf[:end-start], start)
			if err != nil && n < int(end-start) {
				return 0, err
			}
			if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
				return start + int64(i) + 1, nil
			}
			end = start
		}
		return 0, nil
	}
	r := bufio.NewReaderSize(f, 256<<10)
	var whole int64
	for whole < size {
		l, err := binary.ReadUvarint(r)
		if err != nil {
			break
		}
		n := int64(protowire.SizeVarint(l)) + int64(l)
		if whole+n > size {
			break
		}
		if _, err := r.Discard(int(l)); err != nil {
			break
		}
		whole += n
	}
	return whole, nil
}

// Write implements plugin.Transport.
func (t *Transport) Write(b *plugin.Batch) error {
	if t.f == nil || (t.keep && t.mf == nil) {
		t.closeFiles()
		if err := t.open(); err != nil {
			return plugin.Retry(err)
		}
		if t.keep {
			if err := t.loadMarks(); err != nil {
				t.closeFiles()
				return plugin.Retry(err)
			}
		}
	}
	if t.keep && t.heldAll(b.Marks()) {
		return nil // in the file from a write whose answer was lost
	}
	t.buf = t.buf[:0]
	b.Each(func(e []byte) bool {
		switch t.cfg.Framing {
		case "length-prefixed":
			t.buf = protowire.AppendVarint(t.buf, uint64(len(e)))
			t.buf = append(t.buf, e...)
		case "newline":
			t.buf = append(append(t.buf, e...), '\n')
		default:
			t.buf = append(t.buf, e...)
		}
		return true
	})
	if t.needsRotation(int64(len(t.buf))) {
		if err := t.rotate(); err != nil {
			return plugin.Retry(err)
		}
	}
	before := t.size
	if t.keep {
		// The entry first: a death in the middle of the write leaves an
		// entry that names more than the file holds, and the next Marks
		// cuts the batch off.
		if err := t.noteMarks(int64(len(t.buf)), b.Marks()); err != nil {
			return plugin.Retry(err)
		}
	}
	n, err := t.f.Write(t.buf)
	if err == nil {
		t.size += int64(n)
		t.pending = true
		if t.cfg.Fsync == "" || t.cfg.Fsync == "batch" {
			err = t.sync()
		}
	}
	if err == nil && t.keep {
		err = t.heldMarks(b.Marks(), t.cfg.Fsync == "" || t.cfg.Fsync == "batch")
	}
	if err != nil {
		// A batch is in the file whole or not at all: what a full disk
		// took of it (or a sync may have lost) is cut off again, so that
		// no torn record is left and the host's retry of the whole batch
		// duplicates nothing; its entry goes too.
		if terr := t.f.Truncate(before); terr != nil {
			t.closeFiles()
			return plugin.Retry(fmt.Errorf("%w; cutting the %d bytes written of the batch off failed too (the next write starts again from the file): %v", err, n, terr))
		}
		t.size = before
		if t.keep && t.mf != nil {
			t.unnoteMarks()
		}
		return plugin.Retry(err)
	}
	return nil
}

// closeFiles closes the file and the marks log after a failure that
// leaves them in doubt: the next write reopens both and starts from what
// they hold.
func (t *Transport) closeFiles() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
	if t.mf != nil {
		t.mf.Close()
		t.mf = nil
	}
}

func (t *Transport) sync() error {
	if !t.pending {
		return nil
	}
	if err := t.f.Sync(); err != nil {
		return plugin.Retry(err)
	}
	t.pending = false
	return nil
}

func (t *Transport) needsRotation(incoming int64) bool {
	if t.size == 0 {
		return false
	}
	if t.cfg.MaxBytes > 0 && t.size+incoming > int64(t.cfg.MaxBytes) {
		return true
	}
	return t.maxAge > 0 && time.Since(t.opened) >= t.maxAge
}

// rotate renames the current file to <path>.<UTC time of its last write>
// and starts a new one, then deletes the oldest rotated files beyond
// max_files. The time is the file's modification time, which the host's
// kernel keeps: it is real even when the plugin's clock is not granted,
// and successive files' names sort in the order they were written.
func (t *Transport) rotate() error {
	if err := t.sync(); err != nil {
		return err
	}
	st, err := t.f.Stat()
	if err != nil {
		return err
	}
	if err := t.f.Close(); err != nil {
		return err
	}
	t.f = nil
	stamp := st.ModTime().UTC().Format("20060102T150405.000000000Z")
	dst := t.cfg.Path + "." + stamp
	for i := 1; ; i++ {
		if _, err := os.Stat(dst); errors.Is(err, os.ErrNotExist) {
			break
		}
		dst = fmt.Sprintf("%s.%s.%d", t.cfg.Path, stamp, i)
	}
	if err := os.Rename(t.cfg.Path, dst); err != nil {
		return err
	}
	if t.keep {
		// The marks log's sizes are the current file's: the rename must
		// not be undone by a power loss after the log says so.
		syncDir(filepath.Dir(t.cfg.Path))
	}
	if err := t.open(); err != nil {
		return err
	}
	if t.keep {
		// The new file's first entry, a checkpoint: the last one named
		// the rotated file's bytes.
		if err := t.noteMarks(0, nil); err != nil {
			return err
		}
		if err := t.heldMarks(nil, true); err != nil {
			return err
		}
	}
	return t.prune()
}

// Rotated lists the rotated files of path, oldest first: by modification
// time, then by name.
func Rotated(path string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	base := filepath.Base(path) + "."
	type rotated struct {
		path string
		mod  time.Time
	}
	var found []rotated
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), base) || e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		found = append(found, rotated{filepath.Join(filepath.Dir(path), e.Name()), info.ModTime()})
	}
	slices.SortFunc(found, func(a, b rotated) int {
		if c := a.mod.Compare(b.mod); c != 0 {
			return c
		}
		return strings.Compare(a.path, b.path)
	})
	out := make([]string, len(found))
	for i, r := range found {
		out[i] = r.path
	}
	return out, nil
}

func (t *Transport) prune() error {
	if t.cfg.MaxFiles <= 0 {
		return nil
	}
	old, err := Rotated(t.cfg.Path)
	if err != nil {
		return err
	}
	for len(old) > int(t.cfg.MaxFiles) {
		if err := os.Remove(old[0]); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		old = old[1:]
	}
	return nil
}

// Flush implements plugin.Transport.
func (t *Transport) Flush() error {
	if t.f == nil {
		return nil
	}
	err := t.sync()
	if err == nil && t.mf != nil {
		err = t.mf.Sync()
	}
	return err
}

// Close implements plugin.Transport.
func (t *Transport) Close() error {
	err := t.Flush()
	if t.mf != nil {
		err = errors.Join(err, t.mf.Close())
		t.mf = nil
	}
	if t.f != nil {
		err = errors.Join(err, t.f.Close())
		t.f = nil
	}
	return err
}
