package shmring

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCreateFileOnAFullFileSystem: a ring file the file system has no
// room for fails to be made, instead of being made sparse and killing
// the worker with SIGBUS at its first write to a page that cannot be
// had (an outsider's workers died so with a full runtime_dir). It needs
// a small tmpfs, so root (as CI runs).
func TestCreateFileOnAFullFileSystem(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		if os.Geteuid() != 0 && errors.Is(err, unix.EPERM) {
			t.Skip("mounting a small tmpfs needs root")
		}
		t.Fatalf("mounting a 256 KiB tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	path := filepath.Join(dir, "w.ring")
	s, f, err := CreateFile(path, 1<<20)
	if err == nil {
		s.Close()
		f.Close()
		t.Fatal("a 1 MiB ring was made in a 256 KiB file system")
	}
	if !errors.Is(err, unix.ENOSPC) {
		t.Errorf("err = %v, want ENOSPC", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	// One that fits is made.
	s, f, err = CreateFile(path, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	f.Close()
}
