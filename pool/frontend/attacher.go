package frontend

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/ballast-io/ballast/pool/block"
)

// Attacher exports volumes and mounts their filesystems: the node-side half
// of attaching a volume.
type Attacher struct {
	exp Exporter
	// MountOptions are extra mount options per filesystem type, e.g.
	// {"ext4": {"discard"}}. Read at Attach time; set before use.
	MountOptions map[string][]string

	mu       sync.Mutex
	attached map[string]string // volume name -> mount path
}

// NewAttacher returns an Attacher over exp.
func NewAttacher(exp Exporter) *Attacher {
	return &Attacher{exp: exp, attached: map[string]string{}}
}

// Exporter returns the Exporter the Attacher uses.
func (a *Attacher) Exporter() Exporter { return a.exp }

// Attach exports dev as volume name and mounts its filesystem (fstype ext4
// or xfs, "" meaning ext4) at mountPath, formatting the volume first if it
// is blank. Attaching an attached volume at the same path again succeeds
// and does nothing. On error, nothing Attach set up is left behind.
func (a *Attacher) Attach(ctx context.Context, name string, dev block.Device, fstype, mountPath string) (err error) {
	if err := ValidateName(name); err != nil {
		return err
	}
	fstype, err = CheckFSType(fstype)
	if err != nil {
		return err
	}
	if mountPath, err = filepath.Abs(mountPath); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if prev, ok := a.attached[name]; ok && prev != mountPath {
		return fmt.Errorf("volume %s is already attached at %s", name, prev)
	}
	_, wasAttached := a.attached[name]

	devPath, err := a.exp.Export(name, dev)
	if err != nil {
		return fmt.Errorf("attach %s: %w", name, err)
	}
	defer func() {
		if err != nil && !wasAttached {
			if src, _ := MountSource(mountPath); src == devPath {
				if uerr := Unmount(mountPath); uerr != nil {
					err = errors.Join(err, uerr)
				}
			}
			if uerr := a.exp.Unexport(name); uerr != nil {
				err = errors.Join(err, uerr)
			}
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := FormatAndMount(devPath, mountPath, fstype, a.MountOptions[fstype]); err != nil {
		return fmt.Errorf("attach %s: %w", name, err)
	}
	a.attached[name] = mountPath
	return nil
}

// Detach unmounts the filesystem at mountPath and unexports volume name.
// Detaching a detached volume succeeds. A busy filesystem is unmounted
// lazily; the export then lingers until the kernel lets go of it, and
// Detach returns an error if that takes longer than the Exporter allows
// (call Detach again).
func (a *Attacher) Detach(ctx context.Context, name, mountPath string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	mountPath, err := filepath.Abs(mountPath)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := Unmount(mountPath); err != nil {
		return fmt.Errorf("detach %s: %w", name, err)
	}
	if err := a.exp.Unexport(name); err != nil {
		return fmt.Errorf("detach %s: %w", name, err)
	}
	delete(a.attached, name)
	return nil
}

// Recover runs at daemon start, before any Attach: it lazily unmounts the
// stale filesystems a crashed daemon left under mountRoot, then lets the
// Exporter detach its block devices and FUSE mounts. The next Attach of a
// volume remounts it (for ext4, after fsck replays the journal).
func (a *Attacher) Recover(mountRoot string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	if mountRoot != "" {
		if _, err := UnmountAllUnder(mountRoot); err != nil {
			errs = append(errs, err)
		}
	}
	if err := a.exp.Recover(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
