package fuseloop

import (
	"encoding/json"
	"fmt"
	"github.com/moby/sys/mountinfo"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/ballast-io/ballast/pool/block"
)

// Keeper keeps an exported volume's kernel-side descriptors (its
// /dev/fuse connection and its loop device) open across daemon restarts;
// pool/keeper's Client is the real one. With one, a daemon that dies
// leaves its volumes mounted and their I/O waiting, and the next daemon
// takes the same connections over (Export of a held volume) instead of
// cleaning them up.
type Keeper interface {
	// Hold gives the keeper copies of files under name, with state.
	Hold(name string, state []byte, files ...*os.File) error
	// Drop closes what the keeper holds under name.
	Drop(name string) error
	// Held lists the held names and their states.
	Held() (map[string][]byte, error)
	// Take returns name's state and copies of its files.
	Take(name string) ([]byte, []*os.File, error)
}

// heldState is what a daemon needs to take a held volume over.
type heldState struct {
	Mount    string `json:"mount"`     // the FUSE mount point
	Device   string `json:"device"`    // the loop device
	MaxWrite int    `json:"max_write"` // negotiated at INIT: the new reader's buffers must fit it
	// MTime is the file's times (seconds), the same for every daemon that
	// serves it: the kernel caches the attributes, and a change of mtime
	// would make it drop the file's cached data.
	MTime uint64 `json:"mtime"`
}

// mountFUSE opens /dev/fuse and mounts it at mnt, as go-fuse's DirectMount
// does, but keeps the descriptor: the keeper holds a copy of it. go-fuse
// then serves it through its /dev/fd/N mount point (NewServer).
func mountFUSE(mnt, name string, opts *fuse.MountOptions) (*os.File, error) {
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/fuse: %w", err)
	}
	dev := os.NewFile(uintptr(fd), "/dev/fuse")
	data := fmt.Sprintf("fd=%d,rootmode=%o,user_id=0,group_id=0,max_read=%d", fd, unix.S_IFDIR, opts.MaxWrite)
	if err := unix.Mount(opts.FsName, mnt, "fuse."+opts.Name, unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
		dev.Close()
		return nil, fmt.Errorf("mount FUSE at %s: %w", mnt, err)
	}
	return dev, nil
}

// serveFD starts a go-fuse server on a copy of dev (go-fuse owns and
// closes its copy). go-fuse's NewServer reads the first request itself:
// on a new mount that is INIT; on a taken-over connection it is whatever
// waits, and NewServer blocks until one comes, so the caller makes sure
// one does.
func serveFD(fs fuse.RawFileSystem, dev *os.File, opts *fuse.MountOptions) (*fuse.Server, error) {
	fd, err := unix.FcntlInt(dev.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup /dev/fuse: %w", err)
	}
	o := *opts
	o.DirectMount = false // the /dev/fd/N mount point: already mounted
	srv, err := fuse.NewServer(fs, fmt.Sprintf("/dev/fd/%d", fd), &o)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return srv, nil
}

// pollHack makes the kernel learn, once per connection, that the server
// does not implement POLL, as go-fuse's WaitMount does for the mounts it
// makes itself (not for /dev/fd/N ones). Otherwise a file of the mount
// opened by this process through Go's os package is added to the runtime's
// epoll, which sends POLL from inside the runtime while it holds its
// processor: a garbage collection then waits for that thread while the
// server's readers wait for the collection, and nothing answers the POLL
// (seen in the CSI sanity suite: the daemon hung in epoll_ctl). go-fuse
// answers a lookup of its hack file, and POLL with ENOSYS, which the
// kernel remembers for the connection.
func pollHack(mnt string) error {
	fd, err := unix.Open(filepath.Join(mnt, ".go-fuse-epoll-hack"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("poll hack: %w", err)
	}
	defer unix.Close(fd)
	_, _ = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLPRI | unix.POLLOUT}}, 0)
	return nil
}

// openNoPoll opens a file of a FUSE mount this process serves without
// adding it to Go's netpoller (see pollHack): os.NewFile keeps a blocking
// descriptor out of it.
func openNoPoll(path string, flags int) (*os.File, error) {
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// notifyResend asks the kernel to queue again every request a dead daemon
// read from this connection and never answered (FUSE_NOTIFY_RESEND,
// protocol 7.40, Linux 6.9); they come back with bit 63 of their unique
// set. Every request Ballast's file gets is idempotent (a block read,
// write, flush or discard), so serving one twice is safe. It must be sent
// before the first read of the new daemon.
func notifyResend(dev *os.File) error {
	const notifyResendCode = 7
	var hdr [16]byte // fuse_out_header: len u32, error i32, unique u64
	hdr[0] = 16
	hdr[4] = notifyResendCode
	if _, err := unix.Write(int(dev.Fd()), hdr[:]); err != nil {
		return fmt.Errorf("FUSE_NOTIFY_RESEND: %w", err)
	}
	return nil
}

// takeOver serves the FUSE connection and loop device a previous daemon
// left held for volume name: the mount, the loop device and the filesystem
// on it never went away, and the I/O that waited is served now.
func (e *Exporter) takeOver(name, mnt string, dev block.Device) (x *export, err error) {
	raw, files, err := e.opts.Keeper.Take(name)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			closeAll(files)
		}
	}()
	var st heldState
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("held state %q: %w", raw, err)
	}
	if len(files) != 2 {
		return nil, fmt.Errorf("%d descriptors held, want 2 (FUSE and loop)", len(files))
	}
	if st.Mount != mnt {
		return nil, fmt.Errorf("held at %s, not %s", st.Mount, mnt)
	}
	if st.MaxWrite > e.opts.MaxWrite {
		return nil, fmt.Errorf("the connection was set up with max_write %d; this daemon's is %d (give --fuse-max-write %d)", st.MaxWrite, e.opts.MaxWrite, st.MaxWrite)
	}
	if !slices.Contains(loopsBackedUnder(mnt), st.Device) {
		return nil, fmt.Errorf("loop device %s is not backed by %s any more", st.Device, filepath.Join(mnt, DiskFile))
	}
	fuseDev, loopDev := files[0], files[1]
	if err := notifyResend(fuseDev); err != nil {
		return nil, err
	}
	type started struct {
		srv *fuse.Server
		err error
	}
	ch := make(chan started, 1)
	fs, opts := newDiskFS(dev, e.opts.Logger), e.mountOptions(name)
	if st.MTime != 0 {
		fs.mtime = st.MTime
	}
	go func() {
		srv, err := serveFD(fs, fuseDev, opts)
		ch <- started{srv, err}
	}()
	// NewServer returns after it served one request: make sure there is
	// one (statfs always reaches the daemon; nothing caches it).
	go func() {
		var s unix.Statfs_t
		_ = unix.Statfs(mnt, &s)
	}()
	var got started
	select {
	case got = <-ch:
		if got.err != nil {
			return nil, fmt.Errorf("serve the held connection: %w", got.err)
		}
	case <-time.After(30 * time.Second):
		// The connection is beyond use; abort it so nothing waits on it.
		abortConn(mnt)
		return nil, fmt.Errorf("the held connection sent no request in 30 s")
	}
	x = &export{name: name, mnt: mnt, dev: dev, srv: got.srv, mounted: true, served: make(chan struct{}), loop: loopDev, devPath: st.Device}
	go func() {
		defer close(x.served)
		got.srv.Serve()
	}()
	fuseDev.Close() // go-fuse serves its own copy; the keeper holds one
	return x, nil
}

// abortConn aborts the FUSE connection mounted at mnt through fusectl,
// mounting it if needed; best effort. The connection is found from the
// mount table, not by a stat that would ask the (possibly hung) server.
func abortConn(mnt string) {
	ms, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(mnt))
	if err != nil || len(ms) == 0 {
		return
	}
	dir := "/sys/fs/fuse/connections"
	if ents, err := os.ReadDir(dir); err != nil || len(ents) == 0 {
		_ = unix.Mount("fusectl", dir, "fusectl", 0, "")
	}
	_ = os.WriteFile(filepath.Join(dir, fmt.Sprint(ms[0].Minor), "abort"), []byte("1"), 0)
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// held reads what the keeper holds: volume name -> state, for volumes
// held at this exporter's state dir.
func (e *Exporter) held() (map[string]heldState, error) {
	raw, err := e.opts.Keeper.Held()
	if err != nil {
		return nil, err
	}
	out := map[string]heldState{}
	for name, b := range raw {
		var st heldState
		if json.Unmarshal(b, &st) != nil || !strings.HasPrefix(st.Mount, e.stateDir+"/") {
			continue
		}
		out[name] = st
	}
	return out, nil
}
