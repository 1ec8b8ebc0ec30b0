package hostfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	mount "k8s.io/mount-utils"
	utilexec "k8s.io/utils/exec"
)

// Filesystem types FormatAndMount accepts.
const (
	FSExt4 = "ext4"
	FSXFS  = "xfs"
)

// FIFREEZE / FITHAW from <linux/fs.h>: _IOWR('X', 119, int), _IOWR('X', 120, int).
const (
	fiFreeze = 0xc0045877
	fiThaw   = 0xc0045878
)

var safeMounter = mount.NewSafeFormatAndMount(mount.New(""), utilexec.New())

// CheckFSType returns the normalised filesystem type ("" means ext4) or an
// error for an unsupported one.
func CheckFSType(fstype string) (string, error) {
	switch fstype {
	case "", FSExt4:
		return FSExt4, nil
	case FSXFS:
		return FSXFS, nil
	}
	return "", fmt.Errorf("unsupported filesystem type %q (want ext4 or xfs)", fstype)
}

// FormatAndMount mounts the block device devPath at target (created if
// missing), formatting it first with fstype only if it holds no filesystem
// (k8s.io/mount-utils SafeFormatAndMount: an existing filesystem is never
// reformatted, it is checked with fsck -a, which also replays an ext4
// journal). XFS is mounted with nouuid, so a stale mount of the same
// filesystem left by a crashed daemon does not block it. If target is
// already a mount of devPath, FormatAndMount does nothing.
func FormatAndMount(devPath, target, fstype string, options []string) error {
	fstype, err := CheckFSType(fstype)
	if err != nil {
		return err
	}
	target, err = filepath.Abs(target)
	if err != nil {
		return err
	}
	if m, err := mountAt(target); err != nil {
		return err
	} else if m != nil {
		if m.Source == devPath {
			return nil
		}
		return fmt.Errorf("%s is already a mount of %s, not %s", target, m.Source, devPath)
	}
	if err := os.MkdirAll(target, 0o750); err != nil {
		return err
	}
	opts := slices.Clone(options)
	if fstype == FSXFS && !slices.Contains(opts, "nouuid") {
		opts = append(opts, "nouuid")
	}
	if err := safeMounter.FormatAndMount(devPath, target, fstype, opts); err != nil {
		return fmt.Errorf("format and mount %s on %s as %s: %w", devPath, target, fstype, err)
	}
	return nil
}

// GrowFS grows the filesystem on devPath, mounted at target, to fill the
// device, online (k8s.io/mount-utils ResizeFs: resize2fs for ext4,
// xfs_growfs for xfs).
func GrowFS(devPath, target string) error {
	if _, err := mount.NewResizeFs(utilexec.New()).Resize(devPath, target); err != nil {
		return fmt.Errorf("grow the filesystem on %s at %s: %w", devPath, target, err)
	}
	return nil
}

// mountAt returns the topmost mount whose mount point is exactly target,
// or nil.
func mountAt(target string) (*mountinfo.Info, error) {
	ms, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(target))
	if err != nil || len(ms) == 0 {
		return nil, err
	}
	return ms[len(ms)-1], nil
}

// IsMounted reports whether target is a mount point.
func IsMounted(target string) (bool, error) {
	target, err := filepath.Abs(target)
	if err != nil {
		return false, err
	}
	m, err := mountAt(target)
	return m != nil, err
}

// MountSource returns the source (device) of the mount at target, or "" if
// target is not a mount point.
func MountSource(target string) (string, error) {
	target, err := filepath.Abs(target)
	if err != nil {
		return "", err
	}
	m, err := mountAt(target)
	if m == nil || err != nil {
		return "", err
	}
	return m.Source, nil
}

// Unmount unmounts target (every mount stacked on it). It is a no-op when
// target is not mounted or does not exist. A busy filesystem is detached
// lazily (MNT_DETACH): it disappears from the namespace at once and is
// really unmounted when its last user goes away.
func Unmount(target string) error {
	target, err := filepath.Abs(target)
	if err != nil {
		return err
	}
	for i := 0; i < 16; i++ {
		m, err := mountAt(target)
		if err != nil {
			return err
		}
		if m == nil {
			return nil
		}
		err = unix.Unmount(target, 0)
		if errors.Is(err, unix.EBUSY) {
			err = unix.Unmount(target, unix.MNT_DETACH)
		}
		if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted", target)
}

// UnmountIdle unmounts target (every mount stacked on it) unless it is
// busy: then it leaves it mounted and says so. Not mounted is idle.
func UnmountIdle(target string) (busy bool, err error) {
	target, err = filepath.Abs(target)
	if err != nil {
		return false, err
	}
	for i := 0; i < 16; i++ {
		m, err := mountAt(target)
		if err != nil {
			return false, err
		}
		if m == nil {
			return false, nil
		}
		err = unix.Unmount(target, 0)
		if errors.Is(err, unix.EBUSY) {
			return true, nil
		}
		if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return false, fmt.Errorf("unmount %s: %w", target, err)
		}
	}
	return false, fmt.Errorf("unmount %s: still mounted", target)
}

// SyncWithin writes what the kernel caches for path out to its device:
// syncfs(2) of the filesystem mounted at path, or fsync(2) of a block
// device. It gives up waiting after d (the sync goes on in the
// background): a volume whose replicas stopped answering must not hold a
// shutdown up.
func SyncWithin(path string, d time.Duration) error {
	done := make(chan error, 1)
	go func() {
		f, err := os.Open(path)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err == nil && st.Mode()&os.ModeDevice != 0 {
			err = f.Sync()
		} else if err == nil {
			err = unix.Syncfs(int(f.Fd()))
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("sync %s: %w", path, err)
		}
		return nil
	case <-time.After(d):
		return fmt.Errorf("sync %s: not done after %s", path, d)
	}
}

// Freeze blocks new writes to the filesystem mounted at target and flushes
// it to its device (FIFREEZE), for a crash-consistent snapshot. Undo with
// Thaw.
func Freeze(target string) error { return fsIoctl(target, fiFreeze, "FIFREEZE") }

// Thaw undoes Freeze (FITHAW).
func Thaw(target string) error { return fsIoctl(target, fiThaw, "FITHAW") }

func fsIoctl(target string, req uint, name string) error {
	f, err := os.Open(target)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.IoctlSetPointerInt(int(f.Fd()), req, 0); err != nil {
		return fmt.Errorf("%s %s: %w", name, target, err)
	}
	return nil
}

// MountsUnder lists the mount points strictly under root, deepest first
// (the order to unmount them in).
func MountsUnder(root string) ([]string, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if real, err := filepath.EvalSymlinks(root); err == nil {
		root = real
	}
	prefix := strings.TrimSuffix(root, "/") + "/"
	ms, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return !strings.HasPrefix(m.Mountpoint, prefix), false
	})
	if err != nil {
		return nil, err
	}
	var out []string
	for i := len(ms) - 1; i >= 0; i-- { // mountinfo lists parents before children
		out = append(out, ms[i].Mountpoint)
	}
	sort.SliceStable(out, func(i, j int) bool {
		return strings.Count(out[i], "/") > strings.Count(out[j], "/")
	})
	return out, nil
}

// UnmountAllUnder lazily unmounts every mount strictly under root (the
// stale filesystems of a crashed daemon) and returns what it unmounted.
func UnmountAllUnder(root string) ([]string, error) {
	return UnmountUnder(root, func(string) bool { return true })
}

// UnmountUnder lazily unmounts the mounts strictly under root whose
// source device pick chooses.
func UnmountUnder(root string, pick func(source string) bool) ([]string, error) {
	mps, err := MountsUnder(root)
	if err != nil {
		return nil, err
	}
	var done []string
	var errs []error
	for _, mp := range mps {
		if src, err := MountSource(mp); err == nil && !pick(src) {
			continue
		}
		err := unix.Unmount(mp, unix.MNT_DETACH)
		switch {
		case err == nil:
			done = append(done, mp)
		case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT):
		default:
			errs = append(errs, fmt.Errorf("lazy unmount %s: %w", mp, err))
		}
	}
	return done, errors.Join(errs...)
}
