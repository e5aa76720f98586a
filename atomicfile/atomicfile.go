// Package atomicfile writes files so that a reader, or a crash, never sees
// a torn one: the data goes to a temporary file in the same directory, is
// synced, and is then put in place by one rename (Write) or link (Create),
// after which the directory itself is synced so that the new name survives
// a power cut.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces path with data, mode perm (not subject to the umask).
// Readers see either the old file or the whole new one, never a part.
func Write(path string, data []byte, perm fs.FileMode) error {
	return put(path, data, perm, os.Rename)
}

// Create writes data to path, mode perm, only if path does not exist yet:
// it fails with an error wrapping fs.ErrExist otherwise, also when another
// writer creates path at the same moment (the hard link that puts the file
// in place refuses an existing name). Use it for keys that must never be
// overwritten.
func Create(path string, data []byte, perm fs.FileMode) error {
	return put(path, data, perm, os.Link)
}

// put writes a synced temporary file beside path and calls place to give
// it its name. The temporary file is removed in every case: after a
// rename it no longer exists, after a link path keeps the data.
func put(path string, data []byte, perm fs.FileMode, place func(oldname, newname string) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if rerr := os.Remove(tmp.Name()); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
			err = fmt.Errorf("write %s: remove temporary file: %w", path, rerr)
		}
	}()
	if err := fill(tmp, data, perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := place(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}

// fill sets the mode, writes and syncs the temporary file, and closes it.
func fill(f *os.File, data []byte, perm fs.FileMode) error {
	err := f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
