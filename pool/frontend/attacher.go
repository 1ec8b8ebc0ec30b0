package frontend

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/hostfs"
	"github.com/ballast-io/ballast/pool/keyed"
	"github.com/ballast-io/ballast/pool/spec"
)

// Attacher exports volumes and mounts their filesystems: the node-side half
// of attaching a volume.
type Attacher struct {
	exp Exporter
	// MountOptions are extra mount options per filesystem type, e.g.
	// {"ext4": {"discard"}}. Read at Attach time; set before use.
	MountOptions map[string][]string

	// Attaching, growing and detaching a volume hold its lock (and all,
	// shared), so that the slow parts (mkfs, mount, fsck, resize) of
	// different volumes run at once; Recover and FinishRecover hold all.
	all  sync.RWMutex
	vols keyed.Mutex

	mu       sync.Mutex          // guards attached
	attached map[string]attached // by volume name
}

// lock locks volume name against other attaches, grows and detaches of
// it, and against recovery.
func (a *Attacher) lock(name string) (unlock func()) {
	a.all.RLock()
	u := a.vols.Lock(name)
	return func() { u(); a.all.RUnlock() }
}

// record returns what is recorded of volume name.
func (a *Attacher) record(name string) (attached, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.attached[name]
	return at, ok
}

// setRecord records volume name as attached at, or as detached when at is
// the zero value.
func (a *Attacher) setRecord(name string, at attached) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if at == (attached{}) {
		delete(a.attached, name)
		return
	}
	a.attached[name] = at
}

// attached is a volume attached here: its device, and where its
// filesystem is mounted ("" for a raw block device).
type attached struct {
	devPath   string
	mountPath string
}

// NewAttacher returns an Attacher over exp.
func NewAttacher(exp Exporter) *Attacher {
	return &Attacher{exp: exp, attached: map[string]attached{}}
}

// Exporter returns the Exporter the Attacher uses.
func (a *Attacher) Exporter() Exporter { return a.exp }

// Attach exports dev as volume name and mounts its filesystem (fstype ext4
// or xfs, "" meaning ext4) at mountPath, formatting the volume first if it
// is blank, and returns the device. Attaching an attached volume at the
// same path again succeeds and does nothing. On error, nothing Attach set
// up is left behind.
func (a *Attacher) Attach(ctx context.Context, vol spec.Name, dev block.Device, fstype, mountPath string) (devPath string, err error) {
	fstype, err = hostfs.CheckFSType(fstype)
	if err != nil {
		return "", err
	}
	if mountPath, err = filepath.Abs(mountPath); err != nil {
		return "", err
	}
	return a.attach(ctx, vol, dev, func(devPath string) error {
		return mountGrown(devPath, mountPath, fstype, a.MountOptions[fstype])
	}, mountPath)
}

// mountGrown formats (if blank) and mounts devPath, growing a filesystem
// smaller than its device, which a volume that grew while detached has:
// ext4 before it is mounted, xfs (which grows only mounted) after.
func mountGrown(devPath, mountPath, fstype string, opts []string) error {
	size, err := hostfs.DeviceSize(devPath)
	if err != nil {
		return err
	}
	if err := hostfs.GrowOffline(devPath, size); err != nil {
		return err
	}
	if err := hostfs.FormatAndMount(devPath, mountPath, fstype, opts); err != nil {
		return err
	}
	if fstype == hostfs.FSXFS {
		err = hostfs.GrowOnline(devPath, mountPath, size)
	}
	return err
}

// AttachBlock exports dev as volume name and returns the block device,
// with no filesystem made or mounted: a raw block volume. Attaching it
// again succeeds and does nothing.
func (a *Attacher) AttachBlock(ctx context.Context, vol spec.Name, dev block.Device) (devPath string, err error) {
	return a.attach(ctx, vol, dev, nil, "")
}

// attach exports dev and runs mount on its device, if given, undoing the
// export (and the mount) on error.
func (a *Attacher) attach(ctx context.Context, vol spec.Name, dev block.Device, mount func(devPath string) error, mountPath string) (devPath string, err error) {
	name := vol.String()
	defer a.lock(name)()
	if err := ctx.Err(); err != nil {
		return "", err
	}
	prev, wasAttached := a.record(name)
	if wasAttached && prev.mountPath != mountPath {
		return "", fmt.Errorf("volume %s is already attached %s", name, prev.where())
	}
	devPath, err = a.exp.Export(vol, dev)
	if err != nil {
		return "", fmt.Errorf("attach %s: %w", name, err)
	}
	defer func() {
		if err != nil && !wasAttached {
			if src, _ := hostfs.MountSource(mountPath); mountPath != "" && src == devPath {
				if uerr := hostfs.Unmount(mountPath); uerr != nil {
					err = errors.Join(err, uerr)
				}
			}
			if uerr := a.exp.Unexport(vol); uerr != nil {
				err = errors.Join(err, uerr)
			}
		}
	}()
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if mount != nil && !mountedFrom(mountPath, devPath) {
		if err := mount(devPath); err != nil {
			return "", fmt.Errorf("attach %s: %w", name, err)
		}
	}
	a.setRecord(name, attached{devPath: devPath, mountPath: mountPath})
	return devPath, nil
}

func (at attached) where() string {
	if at.mountPath == "" {
		return "as the raw block device " + at.devPath
	}
	return "at " + at.mountPath
}

// Grow makes a grown volume's new size seen: by its block device, and by
// its filesystem when it is mounted (resize2fs or xfs_growfs, online; an
// ext4 filesystem that the kernel does not let this process grow online
// fails with hostfs.ErrGrowAtAttach and grows at its next attach). Idempotent: a
// filesystem that fills its device already is left as it is.
func (a *Attacher) Grow(ctx context.Context, vol spec.Name) error {
	name := vol.String()
	defer a.lock(name)()
	at, ok := a.record(name)
	if !ok {
		return fmt.Errorf("grow %s: not attached on this node", name)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := a.exp.Grow(vol); err != nil {
		return fmt.Errorf("grow %s: %w", name, err)
	}
	if at.mountPath == "" {
		return nil
	}
	size, err := hostfs.DeviceSize(at.devPath)
	if err != nil {
		return fmt.Errorf("grow %s: %w", name, err)
	}
	if err := hostfs.GrowOnline(at.devPath, at.mountPath, size); err != nil {
		return fmt.Errorf("grow %s: %w", name, err)
	}
	return nil
}

// Detach unmounts the filesystem at mountPath (none for a raw block
// volume: mountPath "") and unexports volume name. Detaching a detached
// volume succeeds. A busy filesystem is unmounted
// lazily; the export then lingers until the kernel lets go of it, and
// Detach returns an error if that takes longer than the Exporter allows
// (call Detach again).
func (a *Attacher) Detach(ctx context.Context, vol spec.Name, mountPath string) error {
	name := vol.String()
	defer a.lock(name)()
	if err := ctx.Err(); err != nil {
		return err
	}
	if mountPath != "" {
		mountPath, err := filepath.Abs(mountPath)
		if err != nil {
			return err
		}
		if err := hostfs.Unmount(mountPath); err != nil {
			return fmt.Errorf("detach %s: %w", name, err)
		}
	}
	if err := a.exp.Unexport(vol); err != nil {
		return fmt.Errorf("detach %s: %w", name, err)
	}
	a.setRecord(name, attached{})
	return nil
}

// Abandon lets go of volume name at once: its filesystem (at mountPath;
// "" for a raw block volume) is unmounted, lazily when busy, and its
// device removed without waiting for its users (Exporter.Abort), whose
// I/O fails from then on. For a volume another node took over: the
// containers still on it are on a dead filesystem either way, and the
// next Docker or CSI call about it finds nothing left to undo here.
func (a *Attacher) Abandon(ctx context.Context, vol spec.Name, mountPath string) error {
	name := vol.String()
	defer a.lock(name)()
	var errs []error
	if mountPath != "" {
		if err := hostfs.Unmount(mountPath); err != nil {
			errs = append(errs, err)
		}
	}
	if err := a.exp.Abort(vol); err != nil {
		errs = append(errs, err)
	}
	a.setRecord(name, attached{})
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("abandon %s: %w", name, err)
	}
	return nil
}

// Shutdown lets go of volume name when the daemon stops and nothing keeps
// its device for the next daemon: its data is synced first; an idle
// filesystem is then unmounted and its device removed as Detach does, a
// busy one (a container still uses it) is abandoned at once (Abandon)
// rather than waited for: the daemon's exit would end its I/O anyway.
// A raw block volume is always abandoned after the sync: who holds it
// open cannot be told.
func (a *Attacher) Shutdown(ctx context.Context, vol spec.Name, mountPath string) error {
	name := vol.String()
	at, _ := a.record(name)
	target := at.devPath
	if mountPath != "" {
		target = mountPath
	}
	var syncErr error
	if target != "" {
		syncErr = hostfs.SyncWithin(target, 2*time.Second)
	}
	if mountPath != "" {
		busy, err := hostfs.UnmountIdle(mountPath)
		if err != nil {
			return fmt.Errorf("shut down %s: %w", name, errors.Join(syncErr, err))
		}
		if !busy {
			return errors.Join(syncErr, a.Detach(ctx, vol, ""))
		}
	}
	return errors.Join(syncErr, a.Abandon(ctx, vol, mountPath))
}

// Recover runs at daemon start, before any Attach: it lazily unmounts the
// stale filesystems a crashed daemon left under mountRoot, then lets the
// Exporter detach its block devices and FUSE mounts. The next Attach of a
// volume remounts it (for ext4, after fsck replays the journal).
//
// Volumes the Exporter can take over (Adopter) stay as they are, their
// filesystems mounted and in use; the next Attach takes them over, and
// FinishRecover cleans up those no Attach took.
func (a *Attacher) Recover(mountRoot string) error {
	a.all.Lock()
	defer a.all.Unlock()
	var errs []error
	keep := map[string]bool{}
	if ad, ok := a.exp.(Adopter); ok {
		devs, err := ad.Adoptable()
		if err != nil {
			errs = append(errs, err)
		}
		for _, d := range devs {
			keep[d] = true
		}
	}
	if mountRoot != "" {
		if _, err := hostfs.UnmountUnder(mountRoot, func(src string) bool { return !keep[src] }); err != nil {
			errs = append(errs, err)
		}
	}
	if err := a.exp.Recover(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// FinishRecover runs after the daemon attached again what it had attached
// before its restart: the volumes a previous daemon left to take over that
// no Attach took (moved to another node meanwhile, say) are unmounted from
// under mountRoot and given up.
func (a *Attacher) FinishRecover(mountRoot string) error {
	a.all.Lock()
	defer a.all.Unlock()
	ad, ok := a.exp.(Adopter)
	if !ok {
		return nil
	}
	devs, err := ad.Adoptable()
	if err != nil || len(devs) == 0 {
		return err
	}
	drop := map[string]bool{}
	for _, d := range devs {
		drop[d] = true
	}
	var errs []error
	if mountRoot != "" {
		if _, err := hostfs.UnmountUnder(mountRoot, func(src string) bool { return drop[src] }); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(append(errs, ad.ReleaseUnadopted())...)
}

// mountedFrom tells whether devPath is mounted at mountPath already: a
// volume taken over from a previous daemon is.
func mountedFrom(mountPath, devPath string) bool {
	src, err := hostfs.MountSource(mountPath)
	return err == nil && src == devPath
}
