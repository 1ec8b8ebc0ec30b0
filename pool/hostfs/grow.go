package hostfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ballast-io/ballast/pool/block"
)

// ErrGrowAtAttach is wrapped by the error of Grow when a mounted ext4
// filesystem cannot grow online: the kernel lets only a process with
// CAP_SYS_RESOURCE do that. The filesystem then grows, offline, at its
// next attach (Attacher.Attach grows a filesystem smaller than its device
// before mounting it).
var ErrGrowAtAttach = errors.New("the filesystem grows at its next attach")

// FS is what a device's superblock says of the filesystem on it.
type FS struct {
	Type string // "ext4" (also ext2/3) or "xfs"; "" when none is recognised
	Size int64  // bytes the filesystem spans
}

// ReadFS reads the superblock at the start of devPath, bypassing the page
// cache (a mounted filesystem writes its superblock through its own).
func ReadFS(devPath string) (FS, error) {
	f, err := os.OpenFile(devPath, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return FS{}, err
	}
	defer f.Close()
	buf := block.Aligned(block.Size)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return FS{}, fmt.Errorf("read the superblock of %s: %w", devPath, err)
	}
	return parseSuperblock(buf), nil
}

// parseSuperblock recognises ext2/3/4 and xfs from the first 4 KiB of a
// device.
func parseSuperblock(b []byte) FS {
	if len(b) >= 4096 && string(b[0:4]) == "XFSB" {
		bs := int64(binary.BigEndian.Uint32(b[4:8]))
		blocks := binary.BigEndian.Uint64(b[8:16])
		if bs >= 512 && bs <= 65536 && blocks < 1<<48 {
			return FS{Type: FSXFS, Size: bs * int64(blocks)}
		}
	}
	if len(b) >= 2048 {
		sb := b[1024:2048]
		if binary.LittleEndian.Uint16(sb[0x38:]) == 0xEF53 {
			logBS := binary.LittleEndian.Uint32(sb[0x18:])
			blocks := uint64(binary.LittleEndian.Uint32(sb[0x4:]))
			if binary.LittleEndian.Uint32(sb[0x60:])&0x80 != 0 { // INCOMPAT_64BIT
				blocks |= uint64(binary.LittleEndian.Uint32(sb[0x150:])) << 32
			}
			if logBS <= 6 && blocks < 1<<48 {
				return FS{Type: FSExt4, Size: int64(1024<<logBS) * int64(blocks)}
			}
		}
	}
	return FS{}
}

// GrowOffline grows an unmounted ext4 filesystem on devPath to fill the
// device (e2fsck -f, which resize2fs insists on, then resize2fs). Other
// filesystems grow once mounted.
func GrowOffline(devPath string, devSize int64) error {
	fs, err := ReadFS(devPath)
	if err != nil || fs.Type != FSExt4 || fs.Size >= devSize {
		return err
	}
	// e2fsck -p: exit 1 means errors were fixed, which is fine here.
	out, err := exec.Command("e2fsck", "-f", "-p", devPath).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		return fmt.Errorf("e2fsck -f -p %s before growing it: %w: %s", devPath, err, strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command("resize2fs", devPath).CombinedOutput(); err != nil {
		return fmt.Errorf("resize2fs %s: %w: %s", devPath, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// GrowOnline grows the filesystem on devPath, mounted at target, to
// fill devSize bytes if it is smaller: resize2fs for ext4 (the kernel
// wants CAP_SYS_RESOURCE: without it the error wraps ErrGrowAtAttach),
// xfs_growfs for xfs.
func GrowOnline(devPath, target string, devSize int64) error {
	fs, err := ReadFS(devPath)
	if err != nil {
		return err
	}
	if fs.Type == "" {
		return fmt.Errorf("no ext4 or xfs filesystem found on %s", devPath)
	}
	if fs.Size >= devSize {
		return nil
	}
	if fs.Type == FSExt4 && !hasCapability(unix.CAP_SYS_RESOURCE) {
		return fmt.Errorf("ext4 on %s has %d bytes of the device's %d and cannot grow while mounted: the kernel lets only a process with CAP_SYS_RESOURCE grow ext4 online, and this daemon lacks it: %w",
			devPath, fs.Size, devSize, ErrGrowAtAttach)
	}
	return GrowFS(devPath, target)
}

// DeviceSize returns the size in bytes of a block device such as
// /dev/loop3, from sysfs.
func DeviceSize(devPath string) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/sys/class/block", filepath.Base(devPath), "size"))
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", devPath, err)
	}
	sectors, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", devPath, err)
	}
	return sectors * 512, nil
}

// CanGrowExt4Online reports whether this process may grow a mounted ext4
// filesystem (it has CAP_SYS_RESOURCE).
func CanGrowExt4Online() bool { return hasCapability(unix.CAP_SYS_RESOURCE) }

// hasCapability reports whether this process has capability c in its
// effective set.
func hasCapability(c int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[c/32].Effective&(1<<(uint(c)%32)) != 0
}
