// Package fsutil holds the two file-system steps that durable writes
// share: a file written and synced whole, and a directory synced so that
// the names created or renamed in it survive a power loss.
package fsutil

import (
	"errors"
	"os"
)

// WriteSynced writes b to a file at path opened with flag (with
// os.O_WRONLY|os.O_CREATE added), mode 0644, and syncs and closes it.
func WriteSynced(path string, b []byte, flag int) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|flag, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

// SyncDir syncs directory dir: the entries created or renamed in it.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
