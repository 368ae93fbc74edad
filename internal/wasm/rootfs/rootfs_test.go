package rootfs

import (
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// setup makes base/{granted,outside} with a secret outside and a link to
// it inside, and returns the FS on granted.
func setup(t *testing.T) (fs *FS, g, out string) {
	t.Helper()
	base := t.TempDir()
	g, out = filepath.Join(base, "granted"), filepath.Join(base, "outside")
	for _, d := range []string{g, out} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(out, "secret"), []byte("s3cret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside", filepath.Join(g, "outdir")); err != nil {
		t.Fatal(err)
	}
	fs, err := New(g, Options{MaxOpen: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	return fs, g, out
}

func TestErrnos(t *testing.T) {
	fs, g, _ := setup(t)
	os.Mkdir(filepath.Join(g, "dir"), 0o755)
	os.WriteFile(filepath.Join(g, "file"), []byte("abc"), 0o644)
	os.Symlink("file", filepath.Join(g, "link"))
	for _, tc := range []struct {
		name string
		got  experimentalsys.Errno
		want experimentalsys.Errno
	}{
		{"unlink a directory", fs.Unlink("dir"), experimentalsys.EISDIR},
		{"rmdir a file", fs.Rmdir("file"), experimentalsys.ENOTDIR},
		{"rmdir the root", fs.Rmdir("."), experimentalsys.EINVAL},
		{"unlink ..", fs.Unlink(".."), experimentalsys.EINVAL},
		{"unlink through a link out", fs.Unlink("outdir/secret"), experimentalsys.EPERM},
		{"rmdir through a link out", fs.Rmdir("outdir"), experimentalsys.ENOTDIR},
		{"mkdir under a missing dir", fs.Mkdir("none/x", 0), experimentalsys.ENOENT},
		{"mkdir twice", fs.Mkdir("dir", 0), experimentalsys.EEXIST},
		{"symlink absolute", fs.Symlink("/etc", "a"), experimentalsys.EPERM},
		{"symlink up", fs.Symlink("..", "a"), experimentalsys.EPERM},
		{"symlink empty", fs.Symlink("", "a"), experimentalsys.EPERM},
		{"symlink down", fs.Symlink("dir/x", "a"), 0},
		{"rename out", fs.Rename("file", "../file"), experimentalsys.EPERM},
		{"chmod out", fs.Chmod("outdir/secret", 0o777), experimentalsys.EPERM},
		{"utimens out", fs.Utimens("outdir/secret", 0, 0), experimentalsys.EPERM},
		{"link from out", fs.Link("outdir/secret", "b"), experimentalsys.EPERM},
		{"unlink a link (not its target)", fs.Unlink("link"), 0},
		{"rename a missing name onto itself", fs.Rename("missing", "missing"), experimentalsys.ENOENT},
		{"unlink a file named with a slash", fs.Unlink("file/"), experimentalsys.ENOTDIR},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(g, "file")); err != nil {
		t.Errorf("unlinking the link removed its target: %v", err)
	}
	if _, en := fs.Stat("outdir/secret"); en != experimentalsys.EPERM {
		t.Errorf("stat through a link out: %v", en)
	}
	if st, en := fs.Lstat("outdir"); en != 0 || st.Mode&os.ModeSymlink == 0 {
		t.Errorf("lstat of the link: %v %v", st.Mode, en)
	}
	if _, en := fs.OpenFile("link2", experimentalsys.O_CREAT|experimentalsys.O_WRONLY, 0); en != 0 {
		t.Fatal(en)
	}
	os.Symlink("file", filepath.Join(g, "link3"))
	if _, en := fs.OpenFile("link3", experimentalsys.O_NOFOLLOW, 0); en != experimentalsys.ELOOP {
		t.Errorf("O_NOFOLLOW on a link: %v, want ELOOP", en)
	}
	if _, en := fs.OpenFile("outdir/new", experimentalsys.O_CREAT|experimentalsys.O_WRONLY, 0); en != experimentalsys.EPERM {
		t.Errorf("creating through a link out: %v", en)
	}
}

func TestFile(t *testing.T) {
	fs, g, _ := setup(t)
	f, en := fs.OpenFile("f", experimentalsys.O_CREAT|experimentalsys.O_RDWR, 0)
	if en != 0 {
		t.Fatal(en)
	}
	defer f.Close()
	if n, en := f.Write([]byte("hello world")); n != 11 || en != 0 {
		t.Fatal(n, en)
	}
	if off, en := f.Seek(0, io.SeekStart); off != 0 || en != 0 {
		t.Fatal(off, en)
	}
	if en := f.SetAppend(true); en != 0 || !f.IsAppend() {
		t.Fatalf("SetAppend: %v", en)
	}
	f.Write([]byte("!"))
	if en := f.SetAppend(false); en != 0 || f.IsAppend() {
		t.Fatalf("SetAppend(false): %v", en)
	}
	f.Pwrite([]byte("J"), 6)
	buf := make([]byte, 32)
	n, _ := f.Pread(buf, 0)
	if got := string(buf[:n]); got != "hello Jorld!" {
		t.Fatalf("file holds %q", got)
	}
	if en := f.Truncate(5); en != 0 {
		t.Fatal(en)
	}
	if st, en := f.Stat(); en != 0 || st.Size != 5 {
		t.Fatalf("size %d, %v", st.Size, en)
	}
	if en := f.Utimens(experimentalsys.UTIME_OMIT, time.Unix(1e9, 0).UnixNano()); en != 0 {
		t.Fatal(en)
	}
	if fi, _ := os.Stat(filepath.Join(g, "f")); !fi.ModTime().Equal(time.Unix(1e9, 0)) {
		t.Errorf("mtime %v", fi.ModTime())
	}
	if en := f.Close(); en != 0 {
		t.Fatal(en)
	}
	if en := f.Close(); en != 0 {
		t.Errorf("a second close: %v", en)
	}
	if _, en := f.Write([]byte("x")); en != experimentalsys.EBADF {
		t.Errorf("write after close: %v", en)
	}

	// A directory lists its entries again after a seek to its start.
	d, en := fs.OpenFile(".", experimentalsys.O_DIRECTORY, 0)
	if en != 0 {
		t.Fatal(en)
	}
	defer d.Close()
	for round := range 2 {
		ents, en := d.Readdir(-1)
		if en != 0 || len(ents) != 2 {
			t.Fatalf("round %d: %v %v", round, ents, en)
		}
		for _, e := range ents {
			if e.Ino == 0 {
				t.Errorf("%s has no inode number", e.Name)
			}
		}
		if _, en := d.Seek(0, io.SeekStart); en != 0 {
			t.Fatal(en)
		}
	}
	if _, en := d.Read(buf); en != experimentalsys.EISDIR {
		t.Errorf("reading a directory: %v", en)
	}
}

func TestMaxOpen(t *testing.T) {
	fs, _, _ := setup(t) // MaxOpen 8
	var files []experimentalsys.File
	for i := range 8 {
		f, en := fs.OpenFile(string(rune('a'+i)), experimentalsys.O_CREAT|experimentalsys.O_WRONLY, 0)
		if en != 0 {
			t.Fatalf("file %d: %v", i, en)
		}
		files = append(files, f)
	}
	if _, en := fs.OpenFile("z", experimentalsys.O_CREAT|experimentalsys.O_WRONLY, 0); en != experimentalsys.EAGAIN {
		t.Fatalf("a ninth file: %v", en)
	}
	files[0].Close()
	files[0].Close() // twice: counted once
	if _, en := fs.OpenFile("none", 0, 0); en != experimentalsys.ENOENT {
		t.Fatalf("a missing file: %v", en) // and a failed open holds nothing
	}
	if _, en := fs.OpenFile("z", experimentalsys.O_CREAT|experimentalsys.O_WRONLY, 0); en != 0 {
		t.Fatalf("after a close: %v", en)
	}
	if _, en := fs.OpenFile("y", experimentalsys.O_CREAT|experimentalsys.O_WRONLY, 0); en != experimentalsys.EAGAIN {
		t.Fatalf("after a double close: %v", en)
	}
}

// TestRace: a directory swapped for a link out of the root while files are
// opened and made through it never lets one out (a check-then-open on
// paths would).
func TestRace(t *testing.T) {
	fs, g, out := setup(t)
	sub := filepath.Join(g, "sub")
	os.Mkdir(sub, 0o755)
	os.WriteFile(filepath.Join(sub, "secret"), []byte("inside"), 0o644)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tmp := filepath.Join(g, "tmp")
		for !stop.Load() {
			os.Rename(sub, filepath.Join(g, "parked"))
			os.Symlink(out, tmp)
			os.Rename(tmp, sub)
			os.Remove(sub)
			os.Rename(filepath.Join(g, "parked"), sub)
		}
	}()
	deadline := time.Now().Add(500 * time.Millisecond)
	buf := make([]byte, 16)
	for tries := 0; time.Now().Before(deadline) || tries < 2000; tries++ {
		if f, en := fs.OpenFile("sub/secret", experimentalsys.O_RDONLY, 0); en == 0 {
			n, _ := f.Read(buf)
			f.Close()
			if string(buf[:n]) == "s3cret" {
				stop.Store(true)
				wg.Wait()
				t.Fatal("read the secret outside the root")
			}
		}
		if f, en := fs.OpenFile("sub/made", experimentalsys.O_CREAT|experimentalsys.O_WRONLY, 0); en == 0 {
			f.Close()
		}
	}
	stop.Store(true)
	wg.Wait()
	if _, err := os.Stat(filepath.Join(out, "made")); err == nil {
		t.Fatal("made a file outside the root")
	}
}

// TestFIFODoesNotBlock: a FIFO in the directory (another process made it)
// is opened without blocking: a plugin cannot hold the host function
// that opens it, which the call's time budget could not interrupt.
func TestFIFODoesNotBlock(t *testing.T) {
	fs, g, _ := setup(t)
	if err := syscall.Mkfifo(filepath.Join(g, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan experimentalsys.Errno, 3)
	go func() {
		f, en := fs.OpenFile("fifo", experimentalsys.O_RDONLY, 0)
		if en == 0 {
			f.Close()
		}
		done <- en
		_, en = fs.OpenFile("fifo", experimentalsys.O_WRONLY, 0) // no reader: ENXIO, not a wait
		done <- 0
		done <- fs.Utimens("fifo", experimentalsys.UTIME_OMIT, experimentalsys.UTIME_OMIT)
	}()
	for range 3 {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("opening a FIFO blocked")
		}
	}
}
