// Package logread reads stored records: files of logtk.v1.Record entries,
// each an unsigned LEB128 length and the record, as the log server's
// store writes them (records.pb, docs/wire-protocol.md) and the file
// transport does with the protobuf format and framing =
// "length-prefixed". It is what logtk-host logs reads.
//
// A file is read to its end; a last entry cut short (the writer killed
// in the middle of it, or writing it now) is reported, not fatal, and
// when following, waited for. Damage in the middle (a length that is
// not one, or that runs past the end while whole records follow) is
// reported, skipped to where whole records start again, and read on. Following also goes on into the next file
// when the one read is rotated away.
package logread

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	jsonfmt "github.com/logtk/logtk/plugins/json"

	"google.golang.org/protobuf/encoding/protowire"

	irecord "github.com/logtk/logtk/internal/record"
	"github.com/logtk/logtk/record"
	"github.com/logtk/logtk/record/textfmt"
)

// maxEntry bounds one entry's length: a larger one is a corrupt file,
// not a record.
const maxEntry = 64 << 20

// pollEvery is how often a followed file is looked at for more.
const pollEvery = 200 * time.Millisecond

// Files expands an argument of logs into the files to read, oldest
// first: a directory's record files (a log server application's
// records-<time>.pb, then records.pb), or a file with the files rotated
// from it before it (records-<time>.pb beside a records.pb; <path>.<time>
// beside a file transport's <path>).
func Files(arg string) ([]string, error) {
	st, err := os.Stat(arg)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return append(rotatedFrom(arg), arg), nil
	}
	live := filepath.Join(arg, "records.pb")
	files := rotatedFrom(live)
	if exists(live) {
		files = append(files, live)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s holds no records.pb (a log server application's directory has one)", arg)
	}
	return files, nil
}

// rotatedFrom returns the files rotated from path, oldest first, by
// either naming: the log server's records-<time>.pb beside records.pb,
// the file transport's <path>.<time> (which may well write records.pb).
func rotatedFrom(path string) []string {
	dir, base := filepath.Dir(path), filepath.Base(path)
	rotated, _ := filepath.Glob(path + ".*")
	if ext := filepath.Ext(base); base == "records"+ext {
		server, _ := filepath.Glob(filepath.Join(dir, "records-*"+ext))
		rotated = append(rotated, server...)
	}
	rotated = slices.DeleteFunc(rotated, func(p string) bool { return !rotationStamp.MatchString(p) })
	slices.SortFunc(rotated, func(a, b string) int { // the stamps sort as times
		return strings.Compare(rotationStamp.FindString(a)[1:], rotationStamp.FindString(b)[1:])
	})
	return rotated
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// rotationStamp matches the UTC times rotated files are named with.
var rotationStamp = regexp.MustCompile(`[-.]\d{8}T\d{6}\.\d{9}Z(\.[a-z]+)?$`)

// Options configure Read.
type Options struct {
	// Follow keeps reading the last file as it grows (and past its
	// rotation) until ctx ends.
	Follow bool
	// Warn receives what is wrong with a file (a torn or malformed
	// entry), with the file and offset; reading goes on where it can.
	Warn func(string)
}

// Read calls fn with each valid record of the files in order (the
// record's bytes are valid only during the call). A record that does
// not validate is reported through Warn and skipped. An entry whose
// length cannot be read or is absurd ends that file's reading, reported.
func Read(ctx context.Context, files []string, opts Options, fn func(rec []byte) error) error {
	if opts.Warn == nil {
		opts.Warn = func(string) {}
	}
	for i, path := range files {
		last := i == len(files)-1
		if err := readFile(ctx, path, opts.Follow && last, opts.Warn, fn); err != nil {
			return err
		}
	}
	return nil
}

func readFile(ctx context.Context, path string, follow bool, warn func(string), fn func([]byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { f.Close() }()
	r := bufio.NewReaderSize(f, 1<<20)
	var off int64 // of the next entry
	var buf []byte
	// Damage (not a torn last entry): read on from where whole
	// records start again, if they do.
	skip := func(why string) bool {
		at, err := resync(f, off)
		if err != nil || at < 0 {
			return false
		}
		warn(fmt.Sprintf("%s: offset %d: %s: the file is damaged there; %d bytes skipped, read on from offset %d", path, off, why, at-off, at))
		if _, err := f.Seek(at, io.SeekStart); err != nil {
			return false
		}
		r.Reset(f)
		off = at
		return true
	}
	for {
		n, lenBytes, err := readLength(r)
		if err == nil && n > maxEntry {
			why := fmt.Sprintf("an entry of %d bytes is not a record (more than %d)", n, maxEntry)
			if skip(why) {
				continue
			}
			warn(fmt.Sprintf("%s: offset %d: %s: the file is corrupt from here; the rest of it is not read", path, off, why))
			return nil
		}
		if err == nil {
			buf = slices.Grow(buf[:0], int(n))[:n]
			_, err = io.ReadFull(r, buf)
		}
		if err == nil {
			if verr := irecord.Validate(buf); verr != nil {
				warn(fmt.Sprintf("%s: offset %d: not a valid record (%v); skipped", path, off, verr))
			} else if err := fn(buf); err != nil {
				return err
			}
			off += int64(lenBytes) + int64(n)
			continue
		}
		if errors.Is(err, errBadLength) {
			if skip(err.Error()) {
				continue
			}
			warn(fmt.Sprintf("%s: offset %d: %v: the file is corrupt from here; the rest of it is not read", path, off, err))
			return nil
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%s: %w", path, err)
		}
		// At the end: whole, or cut off in an entry (errUnexpectedEOF or
		// a length without its record).
		torn := errors.Is(err, io.ErrUnexpectedEOF) || lenBytes > 0
		if torn && !follow && skip(fmt.Sprintf("an entry claims %d bytes, past the end of the file", n)) {
			continue // a damaged length, with whole records after it
		}
		if !follow {
			if torn {
				warn(fmt.Sprintf("%s: offset %d: the last entry is cut short (the writer was stopped in the middle of it, or is writing it now); the records before it are whole", path, off))
			}
			return nil
		}
		// Wait for more, or for the file to be rotated away.
		select {
		case <-ctx.Done():
			if torn {
				warn(fmt.Sprintf("%s: offset %d: the last entry is still cut short", path, off))
			}
			return nil
		case <-time.After(pollEvery):
		}
		if rotated(f, path) && !grew(f, off) {
			nf, err := os.Open(path)
			if err != nil {
				continue // between the rename and the new file
			}
			f.Close()
			f, off = nf, 0
			r.Reset(f)
			continue
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		r.Reset(f)
	}
}

// resync returns the first offset after from at which the file's
// entries read as records again (two whole ones in a row, or one ending
// the file), or -1: where reading goes on after damage. It reads the
// file a window at a time (windows overlapping by half, so that memory
// stays bounded on any file), so a resync point is found when its two
// records fit in half a window. A record is at least minRecord bytes,
// so that zero bytes (empty entries) do not pass for records.
func resync(f *os.File, from int64) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return -1, err
	}
	size := st.Size()
	win := make([]byte, min(resyncWindow, max(size-from, 0)))
	for start := from; start < size; start += int64(len(win)) / 2 {
		w := win[:min(int64(len(win)), size-start)]
		if _, err := f.ReadAt(w, start); err != nil && !errors.Is(err, io.EOF) {
			return -1, err
		}
		atEnd := start+int64(len(w)) == size
		entry := func(at int) int { // the end of a record entry at at, or -1
			n, k := protowire.ConsumeVarint(w[at:])
			if k < 0 || n < minRecord || n > uint64(len(w)-at-k) {
				return -1
			}
			end := at + k + int(n)
			if irecord.Validate(w[at+k:end]) != nil {
				return -1
			}
			return end
		}
		first := 0
		if start == from {
			first = 1
		}
		for at := first; at < len(w); at++ {
			if end := entry(at); (end == len(w) && atEnd) || (end > 0 && entry(end) > 0) {
				return start + int64(at), nil
			}
		}
		if atEnd {
			break
		}
	}
	return -1, nil
}

// resyncWindow is what resync holds of a file at a time (a variable for
// the tests).
var resyncWindow int64 = 8 << 20

// minRecord is the least a stored record takes: its time, level and
// the host's stamp.
const minRecord = 8

// readLength reads an entry's uvarint length; lenBytes counts what it read.
func readLength(r *bufio.Reader) (n uint64, lenBytes int, err error) {
	var b [binaryMaxVarint]byte
	for i := 0; i < len(b); i++ {
		c, err := r.ReadByte()
		if err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				return 0, i, io.ErrUnexpectedEOF
			}
			return 0, i, err
		}
		b[i] = c
		if c < 0x80 {
			v, m := protowire.ConsumeVarint(b[:i+1])
			if m < 0 {
				return 0, i + 1, fmt.Errorf("%w: malformed", errBadLength)
			}
			return v, m, nil
		}
	}
	return 0, len(b), fmt.Errorf("%w: more than %d bytes", errBadLength, len(b))
}

// errBadLength is an entry length that is not a uvarint.
var errBadLength = errors.New("not an entry length")

const binaryMaxVarint = 10

// rotated reports whether path now names another file than f.
func rotated(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	if err1 != nil || err2 != nil {
		return err2 != nil && err1 == nil // renamed, the new one not there yet
	}
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && (sa.Ino != sb.Ino || sa.Dev != sb.Dev)
}

// grew reports whether f holds more than off bytes.
func grew(f *os.File, off int64) bool {
	st, err := f.Stat()
	return err == nil && st.Size() > off
}

// Filter selects records.
type Filter struct {
	Worker string // NAME or NAME#i; empty: all
	// MinLevel is the lowest level shown (a record.Level* value; 0: all).
	MinLevel int32
	Since    time.Time      // records at or after; zero: all
	Grep     *regexp.Regexp // matched against the record's text line
}

// Match reports whether the filter selects r, whose text line is text
// (only read with Grep).
func (f *Filter) Match(r *record.Record, text func() []byte) bool {
	if f.Worker != "" {
		name, idx, one, _ := ParseWorker(f.Worker)
		if string(r.Worker) != name || one && int(r.WorkerIndex) != idx {
			return false
		}
	}
	if r.Level < f.MinLevel {
		return false
	}
	if !f.Since.IsZero() && r.Time().Before(f.Since) {
		return false
	}
	return f.Grep == nil || f.Grep.Match(bytes.TrimSuffix(text(), []byte("\n")))
}

// ParseWorker splits NAME#i.
func ParseWorker(s string) (name string, index int, one bool, err error) {
	name, idx, one := strings.Cut(s, "#")
	if !one {
		return name, 0, false, nil
	}
	_, err = fmt.Sscanf(idx, "%d", &index)
	if err != nil || index < 0 {
		return "", 0, false, fmt.Errorf("%q: want NAME or NAME#index", s)
	}
	return name, index, true, nil
}

// Printer renders records as logs prints them: a text line as the console
// prints it, or a JSON object on a line as the json plugin encodes it.
type Printer struct {
	JSON bool
	tc   textfmt.TimeCache
	jf   *jsonfmt.Formatter
}

// Append appends r's line to dst.
func (p *Printer) Append(dst []byte, r *record.Record) ([]byte, error) {
	if !p.JSON {
		return textfmt.None.AppendWith(dst, r, &p.tc), nil
	}
	if p.jf == nil {
		p.jf = jsonfmt.New()
	}
	return p.jf.Format(dst, r)
}

// Levels are the level names a filter takes.
var Levels = map[string]int32{
	"trace": record.LevelTrace, "debug": record.LevelDebug, "info": record.LevelInfo, "notice": record.LevelNotice,
	"warn": record.LevelWarn, "warning": record.LevelWarn, "error": record.LevelError, "fatal": record.LevelFatal,
}
