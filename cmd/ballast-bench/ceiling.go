package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/frontend"
	"github.com/ballast-io/ballast/pool/frontend/fuseloop"
	"github.com/ballast-io/ballast/pool/hostfs"
	"github.com/ballast-io/ballast/pool/spec"
)

// ceilingLabel heads the column of the FUSE + loop transport over memory.
const ceilingLabel = "FUSE + loop over memory"

// fuseCeiling is ext4 on the transport every Ballast volume uses here (a
// FUSE file served by fuseloop, attached to a loop device with direct I/O)
// but with an in-memory device behind it instead of the engine and its
// replicas: no disk, no replication, no checksums. What it reaches is the
// most any volume can reach through FUSE and a loop device on this
// machine, so a Ballast figure can be read against both it and the disk.
type fuseCeiling struct {
	exp  *fuseloop.Exporter
	dev  string // the loop device
	mnt  string
	name spec.Name
	log  *slog.Logger
}

// newFuseCeiling exports a size-byte memory device (its pages are taken
// as they are written: about the fio file's size) from this process, formats and mounts it at
// dir/mnt-ceiling. On error nothing is left exported or mounted.
func newFuseCeiling(ctx context.Context, dir string, size int64, logger *slog.Logger) (_ *fuseCeiling, err error) {
	c := &fuseCeiling{mnt: filepath.Join(dir, "mnt-ceiling"), name: spec.MustName("ceiling"), log: logger}
	defer func() {
		if err != nil {
			c.close()
			err = fmt.Errorf("%s: %w", ceilingLabel, err)
		}
	}()
	// go-fuse sizes its readers from GOMAXPROCS, as in the daemon.
	frontend.TuneGOMAXPROCS()
	// Where a daemon with data dir dir/ceiling/data would have it, so
	// that cleanDir recovers the leftovers of a killed run.
	c.exp, err = fuseloop.New(fuseloop.DaemonDir(filepath.Join(dir, "ceiling", "data")), fuseloop.Options{})
	if err != nil {
		return nil, err
	}
	if c.dev, err = c.exp.Export(c.name, block.NewMem(size)); err != nil {
		return nil, err
	}
	// nodiscard: mkfs's discard of the whole device would clear, and so
	// take, all of its memory.
	if err := mkfsAndMount(ctx, c.dev, c.mnt, "-E", "nodiscard"); err != nil {
		return nil, err
	}
	return c, nil
}

// close unmounts, unexports and stops the exporter; the memory goes with
// the device.
func (c *fuseCeiling) close() error {
	var errs []error
	if mounted, _ := hostfs.IsMounted(c.mnt); mounted {
		if err := hostfs.Unmount(c.mnt); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", c.mnt, err))
		}
	}
	if c.exp != nil {
		if c.dev != "" {
			if err := c.exp.Unexport(c.name); err != nil {
				errs = append(errs, fmt.Errorf("unexport: %w", err))
			}
			c.dev = ""
		}
		if err := c.exp.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close exporter: %w", err))
		}
		c.exp = nil
	}
	err := errors.Join(errs...)
	if err != nil {
		c.log.Error("remove the FUSE + loop ceiling", "mnt", c.mnt, "err", err)
	}
	return err
}

// runCeiling runs the jobs on ext4 on FUSE + loop over memory.
func runCeiling(ctx context.Context, c config, fr *fioRunner, sel []job) (map[string]result, error) {
	fc, err := newFuseCeiling(ctx, c.dir, c.size, fr.log)
	if err != nil {
		return nil, err
	}
	defer fc.close()
	return fr.runAll(ctx, "ceiling", fc.mnt, sel)
}
