package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ballast-io/ballast/pool/frontend/fuseloop"
	"github.com/ballast-io/ballast/pool/hostfs"
)

// cleanDir removes what a run left mounted or attached under dir: mounts
// (volumes, FUSE, the baseline), the daemons' loop devices and FUSE state
// and the loop devices of the loopFS images.
func cleanDir(dir string, logger *slog.Logger) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var errs []error
	if left, err := hostfs.UnmountAllUnder(dir); err != nil {
		errs = append(errs, err)
	} else if len(left) > 0 {
		logger.Warn("unmounted leftovers", "mounts", left)
	}
	states, _ := filepath.Glob(fuseloop.DaemonDir(filepath.Join(dir, "*", "data")))
	more, _ := filepath.Glob(fuseloop.DaemonDir(filepath.Join(dir, "*", "*", "data"))) // the clusters' nodes
	for _, state := range append(states, more...) {
		exp, err := fuseloop.New(state, fuseloop.Options{})
		if err == nil {
			err = exp.Recover()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("recover %s: %w", state, err))
		}
	}
	imgs, _ := filepath.Glob(filepath.Join(dir, "*.img")) // loopFS images
	for _, img := range imgs {
		out, err := exec.Command("losetup", "-j", img).Output()
		if err != nil {
			errs = append(errs, fmt.Errorf("losetup -j %s: %w", img, exitDetail(err)))
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if dev, _, ok := strings.Cut(line, ":"); ok && strings.HasPrefix(dev, "/dev/loop") {
				logger.Warn("detaching leftover loop device", "dev", dev)
				if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
					errs = append(errs, fmt.Errorf("losetup -d %s: %w: %s", dev, err, out))
				}
			}
		}
	}
	if left, err := hostfs.MountsUnder(dir); err == nil && len(left) > 0 {
		errs = append(errs, fmt.Errorf("still mounted: %s", strings.Join(left, ", ")))
	}
	return errors.Join(errs...)
}

// exitDetail adds a failed command's standard error to err.
func exitDetail(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	return err
}
