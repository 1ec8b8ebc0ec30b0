// Package atomicfile replaces small files whole and durably: a reader sees
// the old content or the new, never a part, and after a crash the new
// content is there once Write returned.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Write replaces the file at path with b, with the given mode: it writes
// a temporary file in the same directory, fsyncs it, renames it over
// path and fsyncs the directory.
func Write(path string, b []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".*"+tempSuffix)
	if err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil {
		err = SyncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

// tempSuffix ends the name of Write's temporary files.
const tempSuffix = ".tmp"

// IsTemp reports whether a file name is that of a temporary file Write
// made (and, after a crash, may have left).
func IsTemp(name string) bool { return strings.HasSuffix(name, tempSuffix) }

// SyncDir fsyncs a directory, making the entries created, renamed or
// removed in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
