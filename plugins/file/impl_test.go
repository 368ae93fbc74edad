package file_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"

	"github.com/logtk/logtk/internal/wasm"
	"github.com/logtk/logtk/plugins/builtin"
	"github.com/logtk/logtk/plugins/file"
	"github.com/logtk/logtk/sdk/plugin"
	"github.com/logtk/logtk/sdk/plugintest"
)

// Two implementations of the file transport, one behaviour: the Go
// reference called directly, and the C module compiled into logtk-host
// (plugins/c/file.c) called through the ABI in its sandbox. Every test
// here runs against each (each), so they write the same bytes, keep the
// same marks log, and fail alike.

// transport is what the tests use of either.
type transport interface {
	Write(*plugin.Batch) error
	Flush() error
	Close() error
	Marks() ([]plugin.Mark, error)
}

// disk fills: a write to a file whose name match says yes gets room
// more bytes; past them it writes what fits and fails with ENOSPC.
type disk struct {
	match func(name string) bool
	room  atomic.Int64
}

func (d *disk) take(n int) (int, bool) {
	r := d.room.Load()
	if int64(n) <= r {
		d.room.Add(-int64(n))
		return n, true
	}
	d.room.Store(0)
	return int(r), false
}

type impl struct {
	name string
	// open configures and opens a transport on cfg; full, when set, is
	// its disk.
	open func(t *testing.T, cfg map[string]any, full *disk) transport
	// configure returns the configuration's error.
	configure func(t *testing.T, cfg string) error
}

var impls = []impl{
	{"go", openGo, func(t *testing.T, cfg string) error { return file.New().Configure([]byte(cfg)) }},
	{"c", openC, configureC},
}

// each runs fn for each implementation.
func each(t *testing.T, fn func(t *testing.T, im impl)) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) { fn(t, im) })
	}
}

// fullDisk is a file of the Go transport on a disk that fills.
type fullDisk struct {
	*os.File
	d *disk
}

func (f *fullDisk) Write(b []byte) (int, error) {
	n, ok := f.d.take(len(b))
	w, err := f.File.Write(b[:n])
	if err == nil && !ok {
		err = &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return w, err
}

func openGo(t *testing.T, cfg map[string]any, full *disk) transport {
	t.Helper()
	if full != nil {
		t.Cleanup(file.SetOpen(func(f *os.File) file.AppendFile {
			if full.match(f.Name()) {
				return &fullDisk{f, full}
			}
			return f
		}))
	}
	tr := file.New()
	b, _ := json.Marshal(cfg)
	if err := tr.Configure(b); err != nil {
		t.Fatal(err)
	}
	if err := tr.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// cTransport is the C module through the ABI, as the host calls it.
type cTransport struct {
	ctx    context.Context
	mod    *wasm.Module
	inst   *wasm.Instance
	keeps  bool
	closed bool
}

// fullFS is a granted directory on a disk that fills.
type fullFS struct {
	experimentalsys.FS
	d *disk
}

func (f *fullFS) OpenFile(p string, flag experimentalsys.Oflag, perm os.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	fl, en := f.FS.OpenFile(p, flag, perm)
	if en != 0 || !f.d.match(p) {
		return fl, en
	}
	return &fullFile{fl, f.d}, 0
}

type fullFile struct {
	experimentalsys.File
	d *disk
}

func (f *fullFile) Write(b []byte) (int, experimentalsys.Errno) {
	n, ok := f.d.take(len(b))
	w, en := f.File.Write(b[:n])
	if en == 0 && !ok {
		en = experimentalsys.UnwrapOSError(syscall.ENOSPC) // wazero has no ENOSPC: EIO
	}
	return w, en
}

func loadC(t *testing.T, dir string, full *disk, clock bool, limits wasm.Limits) *wasm.Module {
	t.Helper()
	b, ok := builtin.Module("file")
	if !ok {
		t.Fatal("no built-in file module")
	}
	d := wasm.Dir{Host: dir}
	if full != nil {
		d.Wrap = func(fs experimentalsys.FS) experimentalsys.FS { return &fullFS{fs, full} }
	}
	mod, err := wasm.Load(context.Background(), b, wasm.Options{Name: "file", Grants: wasm.Grants{Dirs: []wasm.Dir{d}, Clock: clock}, Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	return mod
}

func openC(t *testing.T, cfg map[string]any, full *disk) transport {
	t.Helper()
	return openCLimited(t, cfg, full, wasm.Limits{})
}

// openCLimited is openC with the module's limits.
func openCLimited(t *testing.T, cfg map[string]any, full *disk, limits wasm.Limits) transport {
	t.Helper()
	ctx := context.Background()
	path, _ := cfg["path"].(string)
	tr := &cTransport{ctx: ctx, mod: loadC(t, filepath.Dir(path), full, true, limits)}
	t.Cleanup(func() { tr.Close() })
	var err error
	if tr.inst, err = tr.mod.NewInstance(ctx); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(cfg)
	if err := tr.inst.Configure(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := tr.inst.Open(ctx); err != nil {
		t.Fatal(err)
	}
	return tr
}

func configureC(t *testing.T, cfg string) error {
	mod := loadC(t, t.TempDir(), nil, false, wasm.Limits{})
	defer mod.Close(context.Background())
	inst, err := mod.NewInstance(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(context.Background())
	return inst.Configure(context.Background(), []byte(cfg))
}

// status turns the module's failure into the Go transport's: a retry is
// plugin.Retry.
func status(err error) error {
	var ce *wasm.CallError
	if errors.As(err, &ce) && ce.Retryable() {
		return plugin.Retry(errors.New(ce.Msg))
	}
	return err
}

func (c *cTransport) Write(b *plugin.Batch) error {
	var err error
	if c.keeps {
		_, err = c.inst.WriteMarked(c.ctx, b.ID(), plugin.AppendMarks(nil, b.Marks()), b.Bytes())
	} else {
		_, err = c.inst.Write(c.ctx, b.ID(), b.Bytes())
	}
	return status(err)
}

func (c *cTransport) Flush() error { return status(c.inst.Flush(c.ctx)) }

func (c *cTransport) Marks() ([]plugin.Mark, error) {
	enc, keeps, err := c.inst.KeepMarks(c.ctx)
	if err != nil {
		return nil, status(err)
	}
	if !keeps {
		return nil, errors.New("the module does not keep marks")
	}
	c.keeps = true
	return plugin.ParseMarks(nil, enc)
}

func (c *cTransport) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	var err error
	if c.inst != nil {
		err = status(c.inst.ClosePlugin(c.ctx))
		c.inst.Close(c.ctx)
	}
	c.mod.Close(c.ctx)
	return err
}

// isMarksLog says whether a file (a guest or host path) is a marks log.
func isMarksLog(name string) bool { return strings.HasSuffix(name, ".marks") }

// inSandbox runs fn with each module of the transport: the Go reference
// built for wasip1, and the C module compiled into logtk-host.
func inSandbox(t *testing.T, fn func(t *testing.T, module []byte)) {
	t.Run("go", func(t *testing.T) {
		b, err := os.ReadFile(plugintest.Build(t, "plugin"))
		if err != nil {
			t.Fatal(err)
		}
		fn(t, b)
	})
	t.Run("c", func(t *testing.T) {
		b, _ := builtin.Module("file")
		fn(t, b)
	})
}

// TestCBatchFitsBesideItsCopy: the C module writes a batch of large
// records without a second copy of it, so a batch of most of the
// module's memory limit is written (an outsider's batches of 2 MB
// records were dead-lettered "out of memory" under the default limit
// while the host had them in hand).
func TestCBatchFitsBesideItsCopy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.log")
	tr := openCLimited(t, map[string]any{"path": path, "fsync": "never"}, nil, wasm.Limits{MemoryBytes: 16 << 20})
	var b []byte
	for i := range 4 {
		b = plugin.AppendEntry(b, []byte(strings.Repeat(string(rune('a'+i)), 5<<19)))
	}
	batch, err := plugin.NewBatch(1, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Write(batch); err != nil {
		t.Fatalf("a batch of 10 MiB under a limit of 16 MiB: %v", err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() != 4*(5<<19) {
		t.Fatalf("the file: %v, %v", st, err)
	}
}
