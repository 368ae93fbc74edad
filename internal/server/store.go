// Package server is the log server's engine: it accepts wire protocol v1
// connections, authenticates them, and stores batches exactly once.
package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logtk/logtk/internal/entries"
)

// The store keeps, per application and format, a data file holding the
// records (records.log: raw, for text formats; records.pb: uvarint-length-
// prefixed, for logtk.v1.Record) and beside it an index (records.log.idx)
// with one line per stored batch:
//
//	<end offset of the batch in the data file> <batch id> <sender>
//
// A batch is acknowledged only once both are written (and synced, in
// "batch" fsync mode). On start the store reads the indexes to learn each
// sender's last stored batch id, and cuts any data past the last indexed
// batch: that tail was never acknowledged, so its sender will resend it.
// Together with the senders' increasing batch ids this stores each batch
// exactly once.

// StoreOptions configure a Store.
type StoreOptions struct {
	Dir string
	// Fsync syncs data and index before a batch is acknowledged.
	Fsync bool
	// MaxBytes rotates a data file that would grow past it (0: never).
	MaxBytes int64
}

// Store writes batches into per-application files.
type Store struct {
	opts StoreOptions

	mu    sync.Mutex
	files map[string]*appFile // key: application/name
	last  map[string]uint64   // key: application/sender
}

type appFile struct {
	mu        sync.Mutex
	dir, name string // data: dir/name.<ext>, index: dir/name.idx
	ext       string
	prefixed  bool
	data, idx *os.File
	size      int64
	buf       []byte
}

// OpenStore opens (and recovers) the store in dir.
func OpenStore(opts StoreOptions) (*Store, error) {
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	s := &Store{opts: opts, files: map[string]*appFile{}, last: map[string]uint64{}}
	idxs, err := filepath.Glob(filepath.Join(opts.Dir, "*", "*.idx"))
	if err != nil {
		return nil, err
	}
	for _, idx := range idxs {
		if err := s.recover(idx); err != nil {
			return nil, fmt.Errorf("recovering %s: %w", idx, err)
		}
	}
	return s, nil
}

// recover reads an index, learns the senders' last batch ids, and for a
// live (unrotated) file cuts data and index after the last complete batch.
func (s *Store) recover(idxPath string) error {
	app := filepath.Base(filepath.Dir(idxPath))
	f, err := os.OpenFile(idxPath, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	dataPath := strings.TrimSuffix(idxPath, ".idx")
	if _, err := os.Stat(dataPath); err != nil {
		dataPath = ""
	}
	var dataSize int64 = -1
	if dataPath != "" {
		st, err := os.Stat(dataPath)
		if err != nil {
			return err
		}
		dataSize = st.Size()
	}
	r := bufio.NewReader(f)
	var goodIdx, goodData int64
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break // a partial last line is cut below
		}
		fields := strings.Fields(line)
		if len(fields) != 3 {
			break
		}
		end, err1 := strconv.ParseInt(fields[0], 10, 64)
		id, err2 := strconv.ParseUint(fields[1], 10, 64)
		if err1 != nil || err2 != nil || (dataSize >= 0 && end > dataSize) {
			break // the data of this batch did not reach the disk
		}
		key := app + "/" + fields[2]
		if id > s.last[key] {
			s.last[key] = id
		}
		goodIdx += int64(len(line))
		goodData = end
	}
	if dataSize >= 0 && dataSize > goodData {
		if err := os.Truncate(dataPath, goodData); err != nil {
			return err
		}
	}
	return f.Truncate(goodIdx)
}

// LastBatch returns the highest batch id stored for sender in application.
func (s *Store) LastBatch(application, sender string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[application+"/"+sender]
}

// Write stores a batch unless the sender's batch id shows it is stored
// already (dup). When it returns nil the batch is as durable as the
// store's fsync option makes it.
func (s *Store) Write(application, sender, format string, batchID uint64, batch []byte) (dup bool, err error) {
	af, err := s.file(application, format)
	if err != nil {
		return false, err
	}
	af.mu.Lock()
	defer af.mu.Unlock()
	key := application + "/" + sender
	s.mu.Lock()
	last := s.last[key]
	s.mu.Unlock()
	if batchID <= last {
		return true, nil
	}
	af.buf = af.buf[:0]
	entries.Each(batch, func(e []byte) {
		if af.prefixed {
			af.buf = protowire.AppendVarint(af.buf, uint64(len(e)))
		}
		af.buf = append(af.buf, e...)
	})
	if s.opts.MaxBytes > 0 && af.size > 0 && af.size+int64(len(af.buf)) > s.opts.MaxBytes {
		if err := af.rotate(); err != nil {
			return false, err
		}
	}
	n, err := af.data.Write(af.buf)
	af.size += int64(n)
	if err != nil {
		af.reopen()
		return false, err
	}
	line := fmt.Sprintf("%d %d %s\n", af.size, batchID, sender)
	if _, err := af.idx.WriteString(line); err != nil {
		af.reopen()
		return false, err
	}
	if s.opts.Fsync {
		if err := errors.Join(af.data.Sync(), af.idx.Sync()); err != nil {
			af.reopen()
			return false, err
		}
	}
	s.mu.Lock()
	s.last[key] = batchID
	s.mu.Unlock()
	return false, nil
}

func (s *Store) file(application, format string) (*appFile, error) {
	name, ext, prefixed := "records", ".log", false
	if format == "logtk.v1.Record" {
		ext, prefixed = ".pb", true
	}
	key := application + "/" + name + ext
	s.mu.Lock()
	defer s.mu.Unlock()
	if af, ok := s.files[key]; ok {
		return af, nil
	}
	af := &appFile{dir: filepath.Join(s.opts.Dir, application), name: name, ext: ext, prefixed: prefixed}
	if err := af.open(); err != nil {
		return nil, err
	}
	s.files[key] = af
	return af, nil
}

func (af *appFile) open() error {
	if err := os.MkdirAll(af.dir, 0o755); err != nil {
		return err
	}
	data, err := os.OpenFile(filepath.Join(af.dir, af.name+af.ext), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	idx, err := os.OpenFile(filepath.Join(af.dir, af.name+af.ext+".idx"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		data.Close()
		return err
	}
	st, err := data.Stat()
	if err != nil {
		data.Close()
		idx.Close()
		return err
	}
	af.data, af.idx, af.size = data, idx, st.Size()
	return nil
}

// reopen recovers from a failed write: the file is cut back to the last
// indexed batch on the next start anyway; here the handles are renewed and
// the size re-read so later batches are indexed at true offsets.
func (af *appFile) reopen() {
	af.data.Close()
	af.idx.Close()
	idxPath := filepath.Join(af.dir, af.name+af.ext+".idx")
	s := &Store{last: map[string]uint64{}}
	s.recover(idxPath)
	af.open()
}

func (af *appFile) rotate() error {
	if err := errors.Join(af.data.Sync(), af.idx.Sync(), af.data.Close(), af.idx.Close()); err != nil {
		return err
	}
	stamp := time.Now().UTC().Format("20060102T150405.000000000Z")
	base := filepath.Join(af.dir, af.name)
	if err := os.Rename(base+af.ext, base+"-"+stamp+af.ext); err != nil {
		return err
	}
	if err := os.Rename(base+af.ext+".idx", base+"-"+stamp+af.ext+".idx"); err != nil {
		return err
	}
	return af.open()
}

// Close syncs and closes every file.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, af := range s.files {
		af.mu.Lock()
		errs = append(errs, af.data.Sync(), af.idx.Sync(), af.data.Close(), af.idx.Close())
		af.mu.Unlock()
	}
	s.files = map[string]*appFile{}
	return errors.Join(errs...)
}

var _ io.Closer = (*Store)(nil)
