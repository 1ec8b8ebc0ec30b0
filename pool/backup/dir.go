package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/ballast-io/ballast/pool/atomicfile"
)

// Dir is a target in a directory (file:///dir): each object is a file
// under it, written whole by an atomic rename and made durable before Put
// returns. The directory may be a mounted network filesystem.
type Dir struct{ root string }

// OpenDir opens (creating it if missing) the target directory root.
func OpenDir(root string) (*Dir, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("backup target %s: %w", root, err)
	}
	return &Dir{root: root}, nil
}

func (d *Dir) String() string { return "file://" + d.root }

// Check makes sure the directory is there.
func (d *Dir) Check(context.Context) error {
	if _, err := os.Stat(d.root); err != nil {
		return fmt.Errorf("backup target %s: %w", d, err)
	}
	return nil
}

func (d *Dir) file(key string) (string, error) {
	if key == "" || path.IsAbs(key) || path.Clean(key) != key || strings.HasPrefix(key, "../") || key == ".." {
		return "", fmt.Errorf("backup target %s: key %q: %w", d, key, ErrInvalid)
	}
	return filepath.Join(d.root, filepath.FromSlash(key)), nil
}

// Put writes data to key's file through a temporary file and a rename.
func (d *Dir) Put(_ context.Context, key string, data []byte) error {
	f, err := d.file(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
		return fmt.Errorf("backup target %s: put %s: %w", d, key, err)
	}
	if err := atomicfile.Write(f, data, 0o600); err != nil {
		return fmt.Errorf("backup target %s: put %s: %w", d, key, err)
	}
	return nil
}

// Get reads key's file.
func (d *Dir) Get(_ context.Context, key string) ([]byte, error) {
	f, err := d.file(key)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(f)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("backup target %s: %s: %w", d, key, ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("backup target %s: get %s: %w", d, key, err)
	}
	return b, nil
}

// Delete removes key's file.
func (d *Dir) Delete(_ context.Context, key string) error {
	f, err := d.file(key)
	if err != nil {
		return err
	}
	if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("backup target %s: delete %s: %w", d, key, err)
	}
	return nil
}

// List walks the directory of prefix (up to its last slash) for keys
// under prefix. Temporary files of a Put in progress are not listed.
func (d *Dir) List(_ context.Context, prefix string) ([]string, error) {
	var keys []string
	start := d.root
	if i := strings.LastIndexByte(prefix, '/'); i > 0 {
		sub, err := d.file(prefix[:i])
		if err != nil {
			return nil, err
		}
		start = sub
	}
	err := filepath.WalkDir(start, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() || atomicfile.IsTemp(e.Name()) {
			return nil
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		if k := filepath.ToSlash(rel); strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("backup target %s: list %s: %w", d, prefix, err)
	}
	return keys, nil
}
