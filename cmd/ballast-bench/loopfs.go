package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ballast-io/ballast/pool/hostfs"
)

// loopFS is ext4 (`mkfs.ext4 -F -m0`, as the daemon formats volumes) on a
// plain loop device (direct I/O, 4096-byte sectors, as the daemon attaches
// its volumes) over a sparse file on the host disk: the fastest block device
// this kernel offers, so the baseline every Ballast figure is a ratio to.
type loopFS struct {
	img, dev, mnt string
	log           *slog.Logger
}

// newLoopFS makes dir/name.img of size bytes, attaches, formats and mounts
// it at dir/mnt-name. On error nothing is left attached or mounted.
func newLoopFS(ctx context.Context, dir, name string, size int64, logger *slog.Logger) (_ *loopFS, err error) {
	l := &loopFS{img: filepath.Join(dir, name+".img"), mnt: filepath.Join(dir, "mnt-"+name), log: logger}
	defer func() {
		if err != nil {
			l.close()
			err = fmt.Errorf("ext4 on a loop device (%s): %w", name, err)
		}
	}()
	if err := os.WriteFile(l.img, nil, 0o600); err != nil {
		return nil, err
	}
	if err := os.Truncate(l.img, size); err != nil {
		return nil, err
	}
	out, err := exec.Command("losetup", "--find", "--show", "--direct-io=on", "--sector-size=4096", l.img).Output()
	if err != nil {
		return nil, fmt.Errorf("losetup %s: %w", l.img, exitDetail(err))
	}
	l.dev = strings.TrimSpace(string(out))
	if err := mkfsAndMount(ctx, l.dev, l.mnt); err != nil {
		return nil, err
	}
	return l, nil
}

// mkfsAndMount formats dev ext4 as the daemon formats volumes
// (`mkfs.ext4 -F -m0`, plus mkfsOpts) and mounts it at mnt, made if missing.
func mkfsAndMount(ctx context.Context, dev, mnt string, mkfsOpts ...string) error {
	args := append([]string{"-q", "-F", "-m0"}, mkfsOpts...)
	if out, err := exec.CommandContext(ctx, "mkfs.ext4", append(args, dev)...).CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.ext4 %s: %w: %s", dev, err, out)
	}
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "mount", dev, mnt).CombinedOutput(); err != nil {
		return fmt.Errorf("mount %s %s: %w: %s", dev, mnt, err, out)
	}
	return nil
}

// close unmounts and detaches what newLoopFS set up; the image file stays
// (the scratch dir's clean-up removes it).
func (l *loopFS) close() error {
	var errs []error
	if err := hostfs.Unmount(l.mnt); err != nil {
		errs = append(errs, fmt.Errorf("unmount %s: %w", l.mnt, err))
	}
	if l.dev != "" {
		if out, err := exec.Command("losetup", "-d", l.dev).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("losetup -d %s: %w: %s", l.dev, err, strings.TrimSpace(string(out))))
		}
		l.dev = ""
	}
	err := errors.Join(errs...)
	if err != nil {
		l.log.Error("remove ext4 on loop", "mnt", l.mnt, "err", err)
	}
	return err
}
