package demo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// lockPath is the demo's lock file.
func lockPath(cfg Config) string { return filepath.Join("/run", "ballast-demo-"+cfg.Name+".lock") }

// lock takes the demo's lock (lockPath), so that an Up and a Down of one
// demo never run at once (a Down still removing the state dir while a new
// Up fills it); unlock releases it.
func lock(cfg Config) (unlock func(), err error) {
	path := lockPath(cfg)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("demo lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("demo %s: another `ballast demo` is bringing it up or down (it holds %s); wait for it", cfg.Name, path)
		}
		return nil, fmt.Errorf("demo lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
