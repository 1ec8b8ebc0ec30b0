// Package fuseloop exports a block.Device as a kernel block device: one
// regular file per volume, served over FUSE by this process
// (github.com/hanwen/go-fuse/v2), attached to a loop device with direct I/O
// and 4096-byte logical sectors. The kernel filesystem on the loop device
// gives full POSIX semantics; the daemon sees only block reads, writes,
// flushes (fsync) and discards (punch hole). See docs/architecture.md, "The
// data path", for why and for the measurements behind the tuning.
//
// # Tuning
//
// Measured untuned defaults reach only 0.2-0.45x of a plain loop device. The
// exporter therefore mounts with CAP_ASYNC_DIO, MaxWrite 256 KiB with
// splice off, MaxBackground 64 and DirectMount, and opens every file with
// FOPEN_DIRECT_IO (no kernel page cache: the loop device's direct I/O reaches
// the daemon). No passthrough, no writeback cache.
//
// MaxWrite is 256 KiB rather than the 1 MiB the prototype used (see
// docs/architecture.md, "The data path"): go-fuse gives every request,
// however small, a buffer of MaxWrite bytes, and idle readers keep theirs,
// so 1 MiB cost about 8 MiB of RSS per attached volume (112 MiB with 10
// volumes against 83 MiB at 256 KiB), while ballast-bench showed no
// difference in sequential or random throughput beyond run-to-run noise.
//
// go-fuse sizes its pool of request readers from runtime.GOMAXPROCS(0) at the
// time each volume is mounted (clamped to [2, 16]). The daemon must raise
// GOMAXPROCS before exporting volumes, e.g. with
//
//	frontend.TuneGOMAXPROCS() // raises GOMAXPROCS to at least 16
//
// # FUSE over io_uring (prototype)
//
// With Options.URing the exporter asks for FUSE_OVER_IO_URING at INIT and,
// where the kernel offers it, serves requests from buffers registered on
// io_uring queues (uringserve.go) while go-fuse's Server keeps serving
// /dev/fuse for what stays there (FORGET, INTERRUPT, notifications).
// Exporter.Transport tells which transport a volume uses. It does not yet
// survive daemon restarts, so it cannot be combined with a Keeper.
//
// # Crash behaviour
//
// The daemon holds an open file descriptor on each loop device; the loop
// device is LO_FLAGS_AUTOCLEAR. When the daemon dies its FUSE connections are
// aborted, so I/O on the loop device (and the filesystem on it) fails with
// EIO instead of hanging. Recover, called by the next daemon, detaches the
// leftover loop devices and lazily unmounts the dead FUSE mounts.
package fuseloop

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/frontend"
	"github.com/ballast-io/ballast/pool/hostfs"
	"github.com/ballast-io/ballast/pool/spec"
)

// Options tune the exporter. The zero value gives the measured defaults.
type Options struct {
	MaxWrite      int         // bytes per FUSE read/write request; default 256 KiB
	MaxBackground int         // kernel's async request limit; default 64
	Debug         bool        // log every FUSE request
	Logger        *log.Logger // device errors and debug output; default: discard
	// UnmountTimeout bounds how long Unexport waits for the kernel to
	// release a busy volume (e.g. a filesystem still mounted on it) after
	// lazily unmounting its FUSE mount. Default 10 s.
	UnmountTimeout time.Duration
	// Keeper, when set, keeps each exported volume's FUSE connection and
	// loop device open across daemon restarts; see Keeper.
	Keeper Keeper
	// URing serves FUSE requests over io_uring (FUSE_OVER_IO_URING, Linux
	// 6.14+) where the kernel offers it (the fuse module's enable_uring
	// parameter on), over /dev/fuse otherwise; Transport tells which. A
	// PROTOTYPE: it cannot be combined with Keeper yet.
	URing bool
	// URingDepth is the number of requests in flight per io_uring queue
	// (one queue per possible CPU); default 16.
	URingDepth int
	// URingThreads is the number of threads serving each queue, each with
	// its share of the entries; default 16 (a thread per entry: no hand-off
	// between threads per request).
	URingThreads int
}

// Transports, as Exporter.Transport names them.
const (
	TransportDevFUSE = "/dev/fuse"
	TransportURing   = "io_uring"
)

// Exporter implements frontend.Exporter with FUSE + loop devices. Each
// volume NAME is served at <stateDir>/NAME/disk.
type Exporter struct {
	stateDir string
	opts     Options

	mu   sync.Mutex
	vols map[string]*export
	// adoptable are the volumes a previous daemon left with the keeper,
	// found by Recover: Export takes them over instead of cleaning up.
	adoptable  map[string]heldState
	heldLoaded bool
}

var _ frontend.Exporter = (*Exporter)(nil)

type export struct {
	name    string
	mnt     string
	dev     block.Device
	srv     *fuse.Server
	ring    *uringServer  // io_uring queues, if any were set up
	served  chan struct{} // closed when srv.Serve and the ring's queues ended
	loop    *os.File      // open loop device (nil after detach)
	devPath string
	mounted bool // its FUSE mount is up
	held    bool // the keeper holds its descriptors
}

// DaemonDir is the state dir (New's) of the daemon whose data dir is
// dataDir: the daemon and the tools that clean up after a killed daemon
// (Recover) agree on where its FUSE mounts are through here.
func DaemonDir(dataDir string) string { return filepath.Join(dataDir, "fuse") }

// New returns an Exporter keeping its FUSE mounts under stateDir (a
// directory under the daemon's data dir, created if missing).
func New(stateDir string, opts Options) (*Exporter, error) {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	if opts.MaxWrite <= 0 {
		opts.MaxWrite = 256 << 10
	}
	if opts.MaxBackground <= 0 {
		opts.MaxBackground = 64
	}
	if opts.UnmountTimeout <= 0 {
		opts.UnmountTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = log.New(io.Discard, "", 0)
	}
	if opts.URing && opts.Keeper != nil {
		return nil, errors.New("fuseloop: io_uring transport does not survive daemon restarts yet: URing and Keeper cannot be combined")
	}
	return &Exporter{stateDir: abs, opts: opts, vols: map[string]*export{}, adoptable: map[string]heldState{}}, nil
}

// StateDir is the directory holding the per-volume FUSE mounts.
func (e *Exporter) StateDir() string { return e.stateDir }

// MountPoint is where volume name's FUSE filesystem is mounted.
func (e *Exporter) MountPoint(name string) string { return filepath.Join(e.stateDir, name) }

func (e *Exporter) mountOptions(name string) *fuse.MountOptions {
	return &fuse.MountOptions{
		FsName:             "ballast:" + name,
		Name:               "ballast",
		MaxWrite:           e.opts.MaxWrite,
		MaxBackground:      e.opts.MaxBackground,
		DisableSplice:      true,
		DirectMount:        true, // falls back to fusermount if mount(2) fails
		DisableXAttrs:      true,
		DisableReadDirPlus: true,
		ExtraCapabilities:  fuse.CAP_ASYNC_DIO,
		// Never passthrough, never the writeback cache: the daemon must
		// see every I/O to replicate and fence it.
		DisabledCapabilities: fuse.CAP_PASSTHROUGH | fuse.CAP_WRITEBACK_CACHE,
		Debug:                e.opts.Debug,
		Logger:               e.opts.Logger,
	}
}

// volName is vol's name, and an error for the zero Name, which names
// nothing (and would make the state dir itself a volume's directory).
func volName(vol spec.Name) (string, error) {
	if vol.IsZero() {
		return "", errors.New("fuseloop: no volume name given")
	}
	return vol.String(), nil
}

// Export serves dev as <stateDir>/name/disk and attaches it to a loop
// device, returning the device path (/dev/loopN). Exporting the same name
// with the same device again returns the same path.
func (e *Exporter) Export(vol spec.Name, dev block.Device) (devPath string, err error) {
	name, err := volName(vol)
	if err != nil {
		return "", err
	}
	if dev == nil || dev.Size() <= 0 || dev.Size()%block.Size != 0 {
		return "", fmt.Errorf("fuseloop: export %s: device size must be a positive multiple of %d", name, block.Size)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.vols[name]; ok {
		if x.dev != dev {
			return "", fmt.Errorf("fuseloop: %s is already exported with another device", name)
		}
		if x.loop != nil {
			return x.devPath, nil
		}
		// A previous Unexport did not finish; finish it and start over.
		if err := e.teardown(x); err != nil {
			return "", fmt.Errorf("fuseloop: export %s: previous export still busy: %w", name, err)
		}
	}

	mnt := e.MountPoint(name)
	if _, ok := e.adoptable[name]; ok {
		delete(e.adoptable, name)
		x, err := e.takeOver(name, mnt, dev)
		if err == nil {
			x.held = true
			e.vols[name] = x
			e.opts.Logger.Printf("fuseloop: took over %s from the previous daemon (%s stayed mounted)", name, x.devPath)
			return x.devPath, nil
		}
		e.opts.Logger.Printf("fuseloop: cannot take %s over from the previous daemon, starting it afresh: %v", name, err)
		if derr := e.opts.Keeper.Drop(name); derr != nil {
			e.opts.Logger.Printf("fuseloop: release %s's held descriptors: %v", name, derr)
		}
	}
	// Leftovers of a crashed daemon at this path: clean them first.
	if err := e.cleanStale(mnt); err != nil {
		return "", err
	}
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		return "", err
	}
	x := &export{name: name, mnt: mnt, dev: dev, served: make(chan struct{})}
	defer func() {
		if err != nil {
			if terr := e.teardown(x); terr != nil {
				e.opts.Logger.Printf("fuseloop: cleaning up failed export %s: %v", name, terr)
			}
		}
	}()

	opts := e.mountOptions(name)
	if e.opts.URing {
		// A connection that negotiated io_uring holds every request back
		// until its rings are up: make sure they can be.
		if err := probeURing(); err != nil {
			e.opts.Logger.Printf("fuseloop: %s: io_uring unavailable, serving over /dev/fuse: %v", name, err)
		} else {
			opts.ExtraCapabilities |= fuse.CAP_OVER_IO_URING
		}
	}
	fuseDev, err := mountFUSE(mnt, name, opts)
	if err != nil {
		close(x.served)
		return "", fmt.Errorf("fuseloop: %w", err)
	}
	defer fuseDev.Close() // go-fuse serves a copy; the keeper may hold another
	x.mounted = true      // unmounted on failure from here on
	fs := newDiskFS(dev, e.opts.Logger)
	srv, err := serveFD(fs, fuseDev, opts)
	if err != nil {
		close(x.served)
		return "", fmt.Errorf("fuseloop: serve %s: %w", mnt, err)
	}
	x.srv = srv
	ringErr := e.startURing(x, fuseDev, fs, opts)
	go func() {
		defer close(x.served)
		srv.Serve()
		if x.ring != nil {
			<-x.ring.done
		}
	}()
	if ringErr != nil {
		return "", fmt.Errorf("fuseloop: serve %s: %w", mnt, ringErr)
	}
	if err := srv.WaitMount(); err != nil {
		return "", fmt.Errorf("fuseloop: mount %s: %w", mnt, err)
	}
	if err := pollHack(mnt); err != nil {
		return "", fmt.Errorf("fuseloop: mount %s: %w", mnt, err)
	}
	backing, err := openNoPoll(filepath.Join(mnt, DiskFile), unix.O_RDWR|unix.O_DIRECT)
	if err != nil {
		return "", fmt.Errorf("fuseloop: open %s with O_DIRECT: %w", filepath.Join(mnt, DiskFile), err)
	}
	defer backing.Close() // the loop device keeps its own reference
	lf, err := attachLoop(backing, block.Size)
	if err != nil {
		return "", fmt.Errorf("fuseloop: attach loop device for %s: %w", name, err)
	}
	x.loop = lf
	x.devPath = lf.Name()
	if e.opts.Keeper != nil {
		st, _ := json.Marshal(heldState{Mount: mnt, Device: x.devPath, MaxWrite: e.opts.MaxWrite, MTime: fs.mtime})
		if err := e.opts.Keeper.Hold(name, st, fuseDev, lf); err != nil {
			// The volume works; only a restart of this daemon fails its I/O.
			e.opts.Logger.Printf("fuseloop: the keeper cannot hold %s (its I/O will not survive a daemon restart): %v", name, err)
		} else {
			x.held = true
		}
	}
	e.vols[name] = x
	return x.devPath, nil
}

// startURing starts serving x's connection over io_uring if INIT
// negotiated it. An error means the connection cannot serve at all.
func (e *Exporter) startURing(x *export, fuseDev *os.File, fs fuse.RawFileSystem, opts *fuse.MountOptions) error {
	if opts.ExtraCapabilities&fuse.CAP_OVER_IO_URING == 0 {
		return nil
	}
	if x.srv.KernelSettings().Flags64()&fuse.CAP_OVER_IO_URING == 0 {
		e.opts.Logger.Printf("fuseloop: %s: the kernel does not offer FUSE over io_uring (is /sys/module/fuse/parameters/enable_uring Y?); serving over /dev/fuse", x.name)
		return nil
	}
	rs, err := startURing(fuseDev, fs, opts, e.opts.URingDepth, e.opts.URingThreads, e.opts.Logger)
	x.ring = rs
	if err != nil && !errors.Is(err, errURingFellBack) {
		return err
	}
	if err != nil {
		e.opts.Logger.Printf("fuseloop: %s: serving over /dev/fuse: %v", x.name, err)
		return nil
	}
	e.opts.Logger.Printf("fuseloop: %s: serving over io_uring (%d queues of %d entries, %d threads each)", x.name, rs.nqueues, rs.depth, rs.threads)
	return nil
}

// Transport tells how volume name's FUSE requests reach this process:
// TransportURing or TransportDevFUSE; "" if it is not exported.
func (e *Exporter) Transport(name string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.vols[name]
	switch {
	case !ok || x.srv == nil:
		return ""
	case x.ring != nil && x.ring.active:
		return TransportURing
	default:
		return TransportDevFUSE
	}
}

// Grow makes the kernel see the new size of volume name after its device
// grew: the FUSE file takes the size (the kernel's cached attributes are
// invalidated and read again) and the loop device its new capacity
// (LOOP_SET_CAPACITY). A filesystem on the device is left as it is.
func (e *Exporter) Grow(vol spec.Name) error {
	name, err := volName(vol)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.vols[name]
	if !ok || x.loop == nil {
		return fmt.Errorf("fuseloop: grow %s: not exported", name)
	}
	size := uint64(x.dev.Size())
	if st := x.srv.InodeNotify(diskIno, -1, 0); !st.Ok() && st != fuse.ENOENT {
		return fmt.Errorf("fuseloop: grow %s: invalidate the file's attributes: %v", name, st)
	}
	disk := filepath.Join(x.mnt, DiskFile)
	fi, err := os.Stat(disk) // reads the attributes again: the kernel's i_size
	if err != nil {
		return fmt.Errorf("fuseloop: grow %s: %w", name, err)
	}
	if uint64(fi.Size()) != size {
		return fmt.Errorf("fuseloop: grow %s: the kernel sees %s with %d bytes, not %d", name, disk, fi.Size(), size)
	}
	if err := unix.IoctlSetInt(int(x.loop.Fd()), unix.LOOP_SET_CAPACITY, 0); err != nil {
		return fmt.Errorf("fuseloop: grow %s: LOOP_SET_CAPACITY on %s: %w", name, x.devPath, err)
	}
	if got, err := hostfs.DeviceSize(x.devPath); err != nil {
		return fmt.Errorf("fuseloop: grow %s: %w", name, err)
	} else if uint64(got) != size {
		return fmt.Errorf("fuseloop: grow %s: %s has %d bytes after LOOP_SET_CAPACITY, not %d", name, x.devPath, got, size)
	}
	return nil
}

// Unexport detaches the loop device of volume name and unmounts its FUSE
// filesystem. It is a no-op for a name that is not exported. If a filesystem
// is still mounted on the loop device, the FUSE mount is detached lazily and
// Unexport waits up to Options.UnmountTimeout for the kernel to let go, then
// returns an error (call it again later).
func (e *Exporter) Unexport(vol spec.Name) error {
	name, err := volName(vol)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.vols[name]
	if !ok {
		// Not ours; still remove stale leftovers at its path.
		return e.cleanStale(e.MountPoint(name))
	}
	if err := e.teardown(x); err != nil {
		return err
	}
	delete(e.vols, name)
	return nil
}

// Abort ends the export of name at once, without waiting for its users
// to let go: the keeper's copies are dropped, the loop device is set to
// clear itself when its last user closes it, the FUSE connection is
// aborted (I/O queued or still to come fails with EIO) and its mount
// detached lazily. It is for a volume another node took over (its I/O
// fails anyway) and for a busy volume at a shutdown that nobody keeps it
// across; Unexport is the clean way.
func (e *Exporter) Abort(vol spec.Name) error {
	name, err := volName(vol)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.vols[name]
	if !ok {
		return e.cleanStale(e.MountPoint(name))
	}
	errs := []error{e.releaseHeld(x), releaseLoop(x)}
	if x.mounted {
		abortConn(x.mnt)
		if err := unix.Unmount(x.mnt, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("fuseloop: lazy unmount %s: %w", x.mnt, err))
		}
		x.mounted = false
		select {
		case <-x.served:
		case <-time.After(time.Second):
			e.opts.Logger.Printf("fuseloop: the server of aborted volume %s has not stopped after 1s; going on", name)
		}
	}
	delete(e.vols, name)
	return errors.Join(errs...)
}

// teardown undoes whatever part of an export exists. Safe to call again.
func (e *Exporter) teardown(x *export) error {
	errs := []error{e.releaseHeld(x), releaseLoop(x)}
	if x.mounted {
		if err := e.unmountFUSE(x.mnt, x.served); err != nil {
			errs = append(errs, err)
		} else {
			x.mounted = false
		}
	}
	err := errors.Join(errs...)
	if err == nil {
		_ = os.Remove(x.mnt) // only if empty (i.e. unmounted)
	}
	return err
}

// releaseHeld makes the keeper drop its copies of x's descriptors.
func (e *Exporter) releaseHeld(x *export) error {
	if !x.held {
		return nil
	}
	if err := e.opts.Keeper.Drop(x.name); err != nil {
		return fmt.Errorf("release held descriptors: %w", err)
	}
	x.held = false
	return nil
}

// releaseLoop detaches x's loop device (it clears itself once its last
// user closes it, if busy) and closes it.
func releaseLoop(x *export) error {
	if x.loop == nil {
		return nil
	}
	err := detachLoop(x.loop)
	x.loop.Close()
	x.loop = nil
	return err
}

// unmountFUSE unmounts a FUSE mount we serve and waits for its server loop
// to end. The loop device releases its file reference asynchronously, so a
// busy unmount is retried for a short while before falling back to a lazy
// unmount.
func (e *Exporter) unmountFUSE(mnt string, served chan struct{}) error {
	deadline := time.Now().Add(time.Second)
	for {
		err := unix.Unmount(mnt, 0)
		if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			break // unmounted, or not mounted any more
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("fuseloop: lazy unmount %s: %w", mnt, err)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-served:
		return nil
	case <-time.After(e.opts.UnmountTimeout):
		return fmt.Errorf("fuseloop: %s is still in use (is a filesystem still mounted on its loop device?)", mnt)
	}
}

// cleanStale detaches loop devices backed by files under mnt and lazily
// unmounts any mount at mnt. It leaves alone volumes this exporter serves.
func (e *Exporter) cleanStale(mnt string) error {
	var errs []error
	for _, lp := range loopsBackedUnder(mnt) {
		if e.ownsLoop(lp) {
			continue
		}
		if err := detachLoopPath(lp); err != nil {
			errs = append(errs, err)
		}
	}
	mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return !(m.Mountpoint == mnt || strings.HasPrefix(m.Mountpoint, mnt+"/")), false
	})
	if err != nil {
		return err
	}
	// deepest first
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := unix.Unmount(mounts[i].Mountpoint, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("lazy unmount %s: %w", mounts[i].Mountpoint, err))
		}
	}
	return errors.Join(errs...)
}

func (e *Exporter) ownsLoop(devPath string) bool {
	for _, x := range e.vols {
		if x.devPath == devPath && x.loop != nil {
			return true
		}
	}
	for _, st := range e.adoptable {
		if st.Device == devPath {
			return true
		}
	}
	return false
}

func (e *Exporter) owns(mnt string) bool {
	for _, x := range e.vols {
		if x.mnt == mnt {
			return true
		}
	}
	for _, st := range e.adoptable {
		if st.Mount == mnt {
			return true
		}
	}
	return false
}

// Adoptable returns the block devices of the volumes a previous daemon
// left with the keeper (found by Recover) that no Export took over yet,
// by volume name. A filesystem mounted on one stays mounted.
func (e *Exporter) Adoptable() (map[string]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	err := e.loadHeld()
	out := map[string]string{}
	for name, st := range e.adoptable {
		out[name] = st.Device
	}
	return out, err
}

// loadHeld asks the keeper, once, what a previous daemon left with it.
func (e *Exporter) loadHeld() error {
	if e.opts.Keeper == nil || e.heldLoaded {
		return nil
	}
	held, err := e.held()
	if err != nil {
		return fmt.Errorf("fuseloop: ask the keeper what it holds: %w", err)
	}
	e.heldLoaded = true
	for name, st := range held {
		if _, ok := e.vols[name]; !ok {
			e.adoptable[name] = st
		}
	}
	return nil
}

// ReleaseUnadopted lets go of the volumes Recover found held that no
// Export took over (say the volume moved to another node meanwhile): the
// keeper closes them, their I/O fails, and their leftovers are cleaned up
// as a crashed daemon's are.
func (e *Exporter) ReleaseUnadopted() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for name, st := range e.adoptable {
		delete(e.adoptable, name)
		e.opts.Logger.Printf("fuseloop: %s was held for this daemon but not attached again; releasing it", name)
		if err := e.opts.Keeper.Drop(name); err != nil {
			errs = append(errs, fmt.Errorf("release %s: %w", name, err))
		}
		if err := e.cleanStale(st.Mount); err != nil {
			errs = append(errs, fmt.Errorf("release %s: %w", name, err))
		}
		_ = os.Remove(st.Mount)
	}
	return errors.Join(errs...)
}

// Recover cleans up after a crashed daemon that used the same state dir:
// detaches loop devices whose backing file lies under the state dir and
// lazily unmounts the FUSE mounts left there. Volumes exported by this
// Exporter are left alone. Filesystems mounted on those loop devices should
// be unmounted first (frontend.Attacher.Recover does): a loop device still
// in use is only marked to detach when its last user goes away.
//
// With a Keeper, the volumes it still holds are left as they are, for
// Export to take over; ReleaseUnadopted cleans up those no Export took.
func (e *Exporter) Recover() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	if err := e.loadHeld(); err != nil {
		errs = append(errs, err)
	}
	for _, lp := range loopsBackedUnder(e.stateDir) {
		if e.ownsLoop(lp) {
			continue
		}
		if err := detachLoopPath(lp); err != nil {
			errs = append(errs, err)
		}
	}
	mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return !strings.HasPrefix(m.Mountpoint, e.stateDir+"/"), false
	})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		mp := mounts[i].Mountpoint
		if e.owns(mp) {
			continue
		}
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("lazy unmount %s: %w", mp, err))
		}
	}
	// Remove the now-empty mount point directories of dead volumes.
	if ents, err := os.ReadDir(e.stateDir); err == nil {
		for _, ent := range ents {
			p := filepath.Join(e.stateDir, ent.Name())
			if ent.IsDir() && !e.owns(p) {
				_ = os.Remove(p)
			}
		}
	}
	return errors.Join(errs...)
}

// Close unexports every volume.
func (e *Exporter) Close() error {
	e.mu.Lock()
	names := make([]string, 0, len(e.vols))
	for n := range e.vols {
		names = append(names, n)
	}
	e.mu.Unlock()
	var errs []error
	for _, n := range names {
		errs = append(errs, e.Unexport(spec.MustName(n))) // every key was a Name
	}
	return errors.Join(errs...)
}
