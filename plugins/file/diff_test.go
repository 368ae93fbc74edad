package file_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/logtk/logtk/internal/wasm"
	"github.com/logtk/logtk/plugins/builtin"
	"github.com/logtk/logtk/plugins/file"
	"github.com/logtk/logtk/sdk/plugin"
)

// side is one implementation's run of a differential test: its
// directory, and the transport open on it (nil between runs).
type side struct {
	im   impl
	path string
	tr   transport
	keep bool
}

// snapshot is what a transport leaves on disk: the file, its rotated
// files oldest first, and the marks log.
func snapshot(t *testing.T, path string) string {
	t.Helper()
	var b bytes.Buffer
	rotated, err := file.Rotated(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rotated {
		c, _ := os.ReadFile(p)
		fmt.Fprintf(&b, "rotated %q\n", c)
	}
	c, _ := os.ReadFile(path)
	fmt.Fprintf(&b, "file %q\n", c)
	c, _ = os.ReadFile(marksFile(path))
	fmt.Fprintf(&b, "marks log %x\n", c)
	return b.String()
}

// TestSameFilesAsTheReference drives the Go transport and the C module
// through the same random runs: batches of random entries and marks
// (some held already), rotations, flushes, runs with and without marks,
// and deaths in the middle of a write (a torn batch after its log
// entry, a torn log entry). After every step the two must have answered
// alike and left the same bytes: the file, the rotated files, the marks
// log, and the marks they answer.
func TestSameFilesAsTheReference(t *testing.T) {
	runs := 60
	if testing.Short() {
		runs = 15
	}
	for run := range runs {
		rng := rand.New(rand.NewPCG(uint64(run), 7))
		framing := []string{"raw", "newline", "length-prefixed"}[rng.IntN(3)]
		cfg := map[string]any{"framing": framing, "fsync": []string{"batch", "never"}[rng.IntN(2)]}
		if rng.IntN(2) == 0 {
			cfg["max_bytes"] = 20 + rng.IntN(200)
			cfg["max_files"] = rng.IntN(4)
		}
		sides := []*side{{im: impls[0]}, {im: impls[1]}}
		for _, s := range sides {
			s.path = filepath.Join(t.TempDir(), "app.log")
		}
		seqs := map[plugin.Mark]uint64{} // the next seq of each worker instance
		var step string
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("run %d (%v), step %s: %s", run, cfg, step, fmt.Sprintf(format, args...))
		}
		compare := func() {
			t.Helper()
			if a, b := snapshot(t, sides[0].path), snapshot(t, sides[1].path); a != b {
				fail("the files differ:\ngo:\n%s\nc:\n%s", a, b)
			}
		}
		for i := range 40 {
			op := rng.IntN(10)
			step = fmt.Sprintf("%d (op %d)", i, op)
			switch {
			case sides[0].tr == nil || op == 0: // a new run
				keep := rng.IntN(4) > 0
				var held [2][]plugin.Mark
				for k, s := range sides {
					if s.tr != nil {
						s.tr.Close()
					}
					c := map[string]any{"path": s.path}
					for k, v := range cfg {
						c[k] = v
					}
					s.tr, s.keep = s.im.open(t, c, nil), keep
					if keep {
						var err error
						if held[k], err = s.tr.Marks(); err != nil {
							fail("%s: marks: %v", s.im.name, err)
						}
					}
				}
				if !reflect.DeepEqual(held[0], held[1]) {
					fail("marks: go %v, c %v", held[0], held[1])
				}
			case op == 1: // a death in the middle of a write
				for _, s := range sides {
					s.tr.Close()
					s.tr = nil
				}
				torn := rng.IntN(3)
				st, _ := os.Stat(sides[0].path)
				size := int64(0)
				if st != nil {
					size = st.Size()
				}
				n := 1 + rng.Int64N(20)
				for _, s := range sides {
					if torn != 1 && s.keep {
						appendEntry(t, s.path, size, size+n, plugin.Mark{Worker: "w", Index: 0, Seq: seqs[plugin.Mark{Worker: "w"}] + 1})
					}
					if torn != 2 {
						appendTo(t, s.path, string(bytes.Repeat([]byte{0x85}, int(n-1))))
					}
				}
			case op == 2:
				for _, s := range sides {
					if err := s.tr.Flush(); err != nil {
						fail("%s: flush: %v", s.im.name, err)
					}
				}
			default: // a batch
				var entries [][]byte
				for range rng.IntN(5) {
					e := make([]byte, rng.IntN(30))
					for j := range e {
						e[j] = "ab\n\x80"[rng.IntN(4)]
					}
					entries = append(entries, e)
				}
				var marks []plugin.Mark
				for range rng.IntN(3) {
					k := plugin.Mark{Worker: []string{"w", "api", "db"}[rng.IntN(3)], Index: uint32(rng.IntN(2))}
					if rng.IntN(5) > 0 || seqs[k] == 0 {
						seqs[k] += 1 + uint64(rng.IntN(3))
					}
					marks = append(marks, plugin.Mark{Worker: k.Worker, Index: k.Index, Seq: seqs[k]})
				}
				var b []byte
				for _, e := range entries {
					b = plugin.AppendEntry(b, e)
				}
				var errs [2]error
				for k, s := range sides {
					bt, err := plugin.NewMarkedBatch(uint64(i+1), marks, b)
					if err != nil {
						t.Fatal(err)
					}
					errs[k] = s.tr.Write(bt)
				}
				if (errs[0] == nil) != (errs[1] == nil) {
					fail("write: go %v, c %v", errs[0], errs[1])
				}
			}
			compare()
		}
		for _, s := range sides {
			if s.tr != nil {
				s.tr.Close()
			}
		}
	}
}

// FuzzMarksLogAsTheReference: a marks log of any bytes beside a file of
// any size is read by the C module as by the Go transport: the same
// marks, the same file left, the same log rewritten.
func FuzzMarksLogAsTheReference(f *testing.F) {
	log := file.AppendMarksEntry(nil, 0, 0, nil)
	log = file.AppendMarksEntry(log, 0, 10, []plugin.Mark{{Worker: "api", Index: 0, Seq: 5}})
	log = file.AppendMarksEntry(log, 10, 25, []plugin.Mark{{Worker: "api", Index: 0, Seq: 9}, {Worker: "db", Index: 2, Seq: 1}})
	for _, size := range []uint16{0, 10, 17, 25, 30} {
		f.Add(log, size)
		f.Add(log[:len(log)-3], size)
	}
	f.Add([]byte{0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 2, 3, 4, 5, 6}, uint16(3))
	ctx := context.Background()
	goDir, cDir := f.TempDir(), f.TempDir()
	b, _ := builtin.Module("file")
	mod, err := wasm.Load(ctx, b, wasm.Options{Name: "file", Grants: wasm.Grants{Dirs: []wasm.Dir{{Host: cDir}}}})
	if err != nil {
		f.Fatal(err)
	}
	defer mod.Close(ctx)
	f.Fuzz(func(t *testing.T, log []byte, size uint16) {
		data := bytes.Repeat([]byte{'x'}, int(size))
		put := func(dir string) string {
			path := filepath.Join(dir, "app.log")
			os.WriteFile(path, data, 0o644)
			os.WriteFile(marksFile(path), log, 0o644)
			return path
		}
		goPath := put(goDir)
		tr := file.New()
		cfg, _ := json.Marshal(map[string]any{"path": goPath})
		if err := tr.Configure(cfg); err != nil {
			t.Fatal(err)
		}
		if err := tr.Open(); err != nil {
			t.Fatal(err)
		}
		want, werr := tr.Marks()
		tr.Close()

		cPath := put(cDir)
		inst, err := mod.NewInstance(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer inst.Close(ctx)
		cfg, _ = json.Marshal(map[string]any{"path": cPath})
		if err := inst.Configure(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		if err := inst.Open(ctx); err != nil {
			t.Fatal(err)
		}
		enc, _, gerr := inst.KeepMarks(ctx)
		inst.ClosePlugin(ctx)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("marks: go %v, c %v", werr, gerr)
		}
		got, err := plugin.ParseMarks(nil, enc)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) != 0 || len(got) != 0 {
			if !reflect.DeepEqual(want, got) {
				t.Fatalf("marks: go %v, c %v", want, got)
			}
		}
		if a, b := snapshot(t, goPath), snapshot(t, cPath); a != b {
			t.Fatalf("the files differ:\ngo:\n%s\nc:\n%s", a, b)
		}
	})
}
