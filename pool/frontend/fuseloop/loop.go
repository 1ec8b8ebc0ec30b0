package fuseloop

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Loop flags from <linux/loop.h> (not all are in x/sys/unix).
const (
	loFlagsAutoclear = 4
	loFlagsDirectIO  = 16
	loopMajor        = 7
)

// attachLoop binds backing (a file opened O_RDWR|O_DIRECT) to a free loop
// device with direct I/O and blockSize-byte logical sectors. It returns the
// loop device, opened O_RDWR; the caller keeps it open for as long as the
// export lives (with LO_FLAGS_AUTOCLEAR the device detaches itself when its
// last opener -- the daemon or a filesystem mounted on it -- goes away).
func attachLoop(backing *os.File, blockSize uint32) (*os.File, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer ctl.Close()
	var lastErr error
	for attempt := 0; attempt < 100; attempt++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("LOOP_CTL_GET_FREE: %w", err)
		}
		lf, err := openLoopNode(n)
		if err != nil {
			return nil, err
		}
		err = configureLoop(lf, backing, blockSize)
		if err == nil {
			if err := checkLoop(lf.Name(), blockSize); err != nil {
				_ = unix.IoctlSetInt(int(lf.Fd()), unix.LOOP_CLR_FD, 0)
				lf.Close()
				return nil, err
			}
			return lf, nil
		}
		lf.Close()
		if errors.Is(err, unix.EBUSY) {
			// Another process took the device between GET_FREE and
			// configure: ask again.
			lastErr = err
			time.Sleep(time.Duration(attempt%10) * time.Millisecond)
			continue
		}
		return nil, fmt.Errorf("%s: %w", lf.Name(), err)
	}
	return nil, fmt.Errorf("no free loop device after retries: %w", lastErr)
}

// openLoopNode opens /dev/loopN, creating the node if it is missing (no
// udev in many containers).
func openLoopNode(n int) (*os.File, error) {
	path := fmt.Sprintf("/dev/loop%d", n)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		if err := unix.Mknod(path, unix.S_IFBLK|0o660, int(unix.Mkdev(loopMajor, uint32(n)))); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("mknod %s: %w", path, err)
		}
		f, err = os.OpenFile(path, os.O_RDWR, 0)
	}
	return f, err
}

func configureLoop(lf, backing *os.File, blockSize uint32) error {
	fd := int(lf.Fd())
	cfg := unix.LoopConfig{Fd: uint32(backing.Fd()), Size: blockSize}
	cfg.Info.Flags = loFlagsDirectIO | loFlagsAutoclear
	copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], backing.Name())
	err := unix.IoctlLoopConfigure(fd, &cfg)
	if err == nil || errors.Is(err, unix.EBUSY) {
		return err
	}
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTTY) {
		return fmt.Errorf("LOOP_CONFIGURE: %w", err)
	}
	// Kernels before 5.8 have no LOOP_CONFIGURE.
	if err := unix.IoctlSetInt(fd, unix.LOOP_SET_FD, int(backing.Fd())); err != nil {
		return err // EBUSY is retried by the caller
	}
	fail := func(what string, err error) error {
		_ = unix.IoctlSetInt(fd, unix.LOOP_CLR_FD, 0)
		return fmt.Errorf("%s: %w", what, err)
	}
	info, err := unix.IoctlLoopGetStatus64(fd)
	if err != nil {
		return fail("LOOP_GET_STATUS64", err)
	}
	info.Flags |= loFlagsAutoclear
	copy(info.File_name[:len(info.File_name)-1], backing.Name())
	if err := unix.IoctlLoopSetStatus64(fd, info); err != nil {
		return fail("LOOP_SET_STATUS64", err)
	}
	if err := unix.IoctlSetInt(fd, unix.LOOP_SET_BLOCK_SIZE, int(blockSize)); err != nil {
		return fail("LOOP_SET_BLOCK_SIZE", err)
	}
	if err := unix.IoctlSetInt(fd, unix.LOOP_SET_DIRECT_IO, 1); err != nil {
		return fail("LOOP_SET_DIRECT_IO", err)
	}
	return nil
}

// checkLoop verifies through sysfs that direct I/O is on and the logical
// block size is right: the kernel may silently fall back to buffered I/O.
func checkLoop(devPath string, blockSize uint32) error {
	name := filepath.Base(devPath)
	if v, err := readSys("/sys/block/" + name + "/loop/dio"); err == nil && v != "1" {
		return fmt.Errorf("%s: kernel did not enable direct I/O on the loop device (dio=%s)", devPath, v)
	}
	if v, err := readSys("/sys/block/" + name + "/queue/logical_block_size"); err == nil && v != strconv.Itoa(int(blockSize)) {
		return fmt.Errorf("%s: logical block size is %s, want %d", devPath, v, blockSize)
	}
	return nil
}

func readSys(p string) (string, error) {
	b, err := os.ReadFile(p)
	return strings.TrimSpace(string(b)), err
}

// detachLoop detaches a loop device. When the device is still open
// elsewhere (a mounted filesystem), the kernel only marks it autoclear; it
// detaches when the last opener closes it.
func detachLoop(lf *os.File) error {
	err := unix.IoctlSetInt(int(lf.Fd()), unix.LOOP_CLR_FD, 0)
	if err != nil && !errors.Is(err, unix.ENXIO) { // ENXIO: not bound
		return fmt.Errorf("LOOP_CLR_FD %s: %w", lf.Name(), err)
	}
	return nil
}

// loopsBackedUnder lists loop devices (as /dev/loopN) whose backing file
// lies under dir, on a filesystem mounted under dir in this process's
// mount namespace. Loop devices are host-global and sysfs shows a backing
// file's path as its own mount namespace sees it: a daemon in another
// container, or on the host, whose state dir has the same path has its
// loop devices listed with the same paths. Those are not ours; the device
// number of the backing file's filesystem (unique on the host while it is
// mounted anywhere) tells them apart.
func loopsBackedUnder(dir string) []string {
	ours := map[uint64]bool{}
	ms, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return !(m.Mountpoint == dir || strings.HasPrefix(m.Mountpoint, dir+"/")), false
	})
	if err != nil || len(ms) == 0 {
		return nil
	}
	for _, m := range ms {
		ours[unix.Mkdev(uint32(m.Major), uint32(m.Minor))] = true
	}
	var out []string
	matches, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, m := range matches {
		bf, err := readSys(m)
		if err != nil {
			continue
		}
		bf = strings.TrimSuffix(bf, " (deleted)")
		if bf != dir && !strings.HasPrefix(bf, dir+"/") {
			continue
		}
		dev := "/dev/" + filepath.Base(filepath.Dir(filepath.Dir(m)))
		if back, ok := loopBackingDev(dev); ok && ours[back] {
			out = append(out, dev)
		}
	}
	return out
}

// loopBackingDev returns the device number of the filesystem holding the
// backing file of the loop device at path.
func loopBackingDev(path string) (uint64, bool) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	info, err := unix.IoctlLoopGetStatus64(int(f.Fd()))
	if err != nil {
		return 0, false
	}
	// The kernel encodes lo_device with huge_encode_dev, which for every
	// 32-bit device number is the encoding of unix.Mkdev: it compares with
	// the mounts' numbers as it is.
	return info.Device, true
}

// detachLoopPath detaches the loop device at path (idempotent).
func detachLoopPath(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENXIO) {
			return nil
		}
		return err
	}
	defer f.Close()
	return detachLoop(f)
}
