package fuseloop

import (
	"errors"
	"log"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/ballast-io/ballast/pool/block"
)

// DiskFile is the name of the single regular file in each volume's FUSE mount.
const DiskFile = "disk"

const (
	rootIno = fuse.FUSE_ROOT_ID
	diskIno = 2
	// Attributes change only when a volume grows, and then the exporter
	// tells the kernel (Exporter.Grow), so let it cache them for long.
	attrTimeout = time.Hour
)

// diskFS is a raw FUSE filesystem with one directory (the root) holding one
// regular file whose contents are a block.Device.
type diskFS struct {
	fuse.RawFileSystem
	dev    block.Device
	logger *log.Logger
	// rmwMu serialises read-modify-write of unaligned writes (which the loop
	// driver, with 4096-byte sectors, never sends; only direct users of the
	// file may).
	rmwMu sync.Mutex
	mtime uint64
}

func newDiskFS(dev block.Device, logger *log.Logger) *diskFS {
	return &diskFS{
		RawFileSystem: fuse.NewDefaultRawFileSystem(),
		dev:           dev,
		logger:        logger,
		mtime:         uint64(time.Now().Unix()),
	}
}

// size is the file's size: the device's, which grows (Exporter.Grow tells
// the kernel).
func (fs *diskFS) size() uint64 { return uint64(fs.dev.Size()) }

func (fs *diskFS) String() string { return "ballast-fuseloop" }

func (fs *diskFS) fill(ino uint64, a *fuse.Attr) bool {
	a.Ino = ino
	a.Nlink = 1
	a.Atime, a.Mtime, a.Ctime = fs.mtime, fs.mtime, fs.mtime
	a.Blksize = block.Size
	switch ino {
	case rootIno:
		a.Mode = syscall.S_IFDIR | 0o700
		a.Nlink = 2
	case diskIno:
		a.Mode = syscall.S_IFREG | 0o600
		a.Size = fs.size()
		a.Blocks = a.Size / 512
	default:
		return false
	}
	return true
}

func (fs *diskFS) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	if h.NodeId != rootIno || name != DiskFile {
		return fuse.ENOENT
	}
	out.NodeId = diskIno
	out.Generation = 1
	out.SetEntryTimeout(attrTimeout)
	out.SetAttrTimeout(attrTimeout)
	fs.fill(diskIno, &out.Attr)
	return fuse.OK
}

func (fs *diskFS) Forget(nodeid, nlookup uint64) {}

func (fs *diskFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	if !fs.fill(in.NodeId, &out.Attr) {
		return fuse.ENOENT
	}
	out.SetTimeout(attrTimeout)
	return fuse.OK
}

func (fs *diskFS) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	if !fs.fill(in.NodeId, &out.Attr) {
		return fuse.ENOENT
	}
	if sz, ok := in.GetSize(); ok && sz != fs.size() {
		return fuse.Status(syscall.EPERM) // only the volume itself grows
	}
	// mode, owner and times are accepted and ignored.
	out.SetTimeout(attrTimeout)
	return fuse.OK
}

func (fs *diskFS) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status { return fuse.OK }

func (fs *diskFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if in.NodeId != diskIno {
		return fuse.EISDIR
	}
	// No kernel page cache for the file: every read and write reaches the
	// daemon (and so the replicas). PARALLEL_DIRECT_WRITES lets the kernel
	// submit concurrent direct writes without the exclusive inode lock.
	out.OpenFlags = fuse.FOPEN_DIRECT_IO | fuse.FOPEN_PARALLEL_DIRECT_WRITES
	return fuse.OK
}

func (fs *diskFS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {}

// ioStatus maps a device error (including *block.ChecksumError) to EIO.
func (fs *diskFS) ioStatus(op string, off int64, n int, err error) fuse.Status {
	if fs.logger != nil {
		var ce *block.ChecksumError
		if errors.As(err, &ce) {
			fs.logger.Printf("fuseloop: %s at %d+%d: %v", op, off, n, err)
		} else {
			fs.logger.Printf("fuseloop: %s at %d+%d: device error: %v", op, off, n, err)
		}
	}
	return fuse.EIO
}

// clamp limits [off, off+n) to the device and returns the new length.
func (fs *diskFS) clamp(off uint64, n int) int {
	size := fs.size()
	if off >= size {
		return 0
	}
	if rest := size - off; uint64(n) > rest {
		return int(rest)
	}
	return n
}

func isAligned(off int64, n int) bool { return off%block.Size == 0 && n%block.Size == 0 }

func (fs *diskFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	if in.NodeId != diskIno {
		return nil, fuse.EISDIR
	}
	n := fs.clamp(in.Offset, min(int(in.Size), len(buf)))
	off := int64(in.Offset)
	if n == 0 {
		return fuse.ReadResultData(nil), fuse.OK
	}
	p := buf[:n]
	if isAligned(off, n) {
		if _, err := fs.dev.ReadAt(p, off); err != nil {
			return nil, fs.ioStatus("read", off, n, err)
		}
		return fuse.ReadResultData(p), fuse.OK
	}
	if err := fs.readUnaligned(p, off); err != nil {
		return nil, fs.ioStatus("read", off, n, err)
	}
	return fuse.ReadResultData(p), fuse.OK
}

func (fs *diskFS) readUnaligned(p []byte, off int64) error {
	start := off &^ (block.Size - 1)
	end := (off + int64(len(p)) + block.Size - 1) &^ (block.Size - 1)
	tmp := make([]byte, end-start)
	if _, err := fs.dev.ReadAt(tmp, start); err != nil {
		return err
	}
	copy(p, tmp[off-start:])
	return nil
}

func (fs *diskFS) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	if in.NodeId != diskIno {
		return 0, fuse.EISDIR
	}
	total := 0
	for _, d := range data {
		total += len(d)
	}
	off := int64(in.Offset)
	if uint64(off)+uint64(total) > fs.size() {
		return 0, fuse.Status(syscall.ENOSPC) // writes do not grow a volume
	}
	var p []byte
	if len(data) == 1 {
		p = data[0]
	} else {
		p = make([]byte, 0, total)
		for _, d := range data {
			p = append(p, d...)
		}
	}
	if isAligned(off, total) {
		if _, err := fs.dev.WriteAt(p, off); err != nil {
			return 0, fs.ioStatus("write", off, total, err)
		}
		return uint32(total), fuse.OK
	}
	fs.rmwMu.Lock()
	defer fs.rmwMu.Unlock()
	start := off &^ (block.Size - 1)
	end := (off + int64(total) + block.Size - 1) &^ (block.Size - 1)
	tmp := make([]byte, end-start)
	if _, err := fs.dev.ReadAt(tmp, start); err != nil {
		return 0, fs.ioStatus("write(rmw read)", off, total, err)
	}
	copy(tmp[off-start:], p)
	if _, err := fs.dev.WriteAt(tmp, start); err != nil {
		return 0, fs.ioStatus("write", off, total, err)
	}
	return uint32(total), fuse.OK
}

func (fs *diskFS) flush(op string) fuse.Status {
	if err := fs.dev.Flush(); err != nil {
		return fs.ioStatus(op, 0, 0, err)
	}
	return fuse.OK
}

// Flush is sent on every close(2) of the file.
func (fs *diskFS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	if in.NodeId != diskIno {
		return fuse.OK
	}
	return fs.flush("flush")
}

func (fs *diskFS) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	if in.NodeId != diskIno {
		return fuse.OK
	}
	return fs.flush("fsync")
}

func (fs *diskFS) FsyncDir(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status { return fuse.OK }

const (
	fallocKeepSize  = 0x01
	fallocPunchHole = 0x02
	fallocZeroRange = 0x10
)

func (fs *diskFS) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	if in.NodeId != diskIno {
		return fuse.EISDIR
	}
	off, n := int64(in.Offset), int64(in.Length)
	if size := fs.size(); in.Offset+in.Length > size {
		if in.Mode&fallocKeepSize == 0 {
			return fuse.Status(syscall.EFBIG)
		}
		n = int64(fs.clamp(in.Offset, int(min(in.Length, size))))
	}
	switch in.Mode &^ fallocKeepSize {
	case 0: // preallocate: the whole device already "exists".
		return fuse.OK
	case fallocPunchHole:
		if in.Mode&fallocKeepSize == 0 {
			return fuse.Status(syscall.EOPNOTSUPP)
		}
		return fs.zero("discard", off, n, true)
	case fallocZeroRange:
		return fs.zero("zero-range", off, n, false)
	default:
		return fuse.Status(syscall.EOPNOTSUPP)
	}
}

// zero makes [off, off+n) read back as zeros: whole blocks by Discard when
// discard is set, by writing zeros otherwise; partial blocks at the edges by
// read-modify-write.
func (fs *diskFS) zero(op string, off, n int64, discard bool) fuse.Status {
	if n <= 0 {
		return fuse.OK
	}
	end := off + n
	a := (off + block.Size - 1) &^ (block.Size - 1)
	b := end &^ (block.Size - 1)
	if a >= b { // within a single block
		return fs.zeroPartial(op, off, end)
	}
	if off < a {
		if st := fs.zeroPartial(op, off, a); !st.Ok() {
			return st
		}
	}
	if end > b {
		if st := fs.zeroPartial(op, b, end); !st.Ok() {
			return st
		}
	}
	if discard {
		if err := fs.dev.Discard(a, b-a); err != nil {
			return fs.ioStatus(op, a, int(b-a), err)
		}
		return fuse.OK
	}
	zeros := make([]byte, min(b-a, 1<<20))
	for o := a; o < b; o += int64(len(zeros)) {
		c := min(int64(len(zeros)), b-o)
		if _, err := fs.dev.WriteAt(zeros[:c], o); err != nil {
			return fs.ioStatus(op, o, int(c), err)
		}
	}
	return fuse.OK
}

func (fs *diskFS) zeroPartial(op string, from, to int64) fuse.Status {
	fs.rmwMu.Lock()
	defer fs.rmwMu.Unlock()
	start := from &^ (block.Size - 1)
	tmp := make([]byte, block.Size)
	if _, err := fs.dev.ReadAt(tmp, start); err != nil {
		return fs.ioStatus(op, start, block.Size, err)
	}
	clear(tmp[from-start : to-start])
	if _, err := fs.dev.WriteAt(tmp, start); err != nil {
		return fs.ioStatus(op, start, block.Size, err)
	}
	return fuse.OK
}

func (fs *diskFS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if in.NodeId != rootIno {
		return fuse.ENOTDIR
	}
	return fuse.OK
}

func (fs *diskFS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	if in.NodeId != rootIno {
		return fuse.ENOTDIR
	}
	entries := []fuse.DirEntry{
		{Name: ".", Ino: rootIno, Mode: syscall.S_IFDIR, Off: 1},
		{Name: "..", Ino: rootIno, Mode: syscall.S_IFDIR, Off: 2},
		{Name: DiskFile, Ino: diskIno, Mode: syscall.S_IFREG, Off: 3},
	}
	for _, e := range entries[min(int(in.Offset), len(entries)):] {
		if !out.AddDirEntry(e) {
			break
		}
	}
	return fuse.OK
}

func (fs *diskFS) ReleaseDir(in *fuse.ReleaseIn) {}

func (fs *diskFS) StatFs(cancel <-chan struct{}, in *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	// The loop driver takes its discard granularity from f_bsize.
	out.Bsize = block.Size
	out.Frsize = block.Size
	out.Blocks = fs.size() / block.Size
	out.NameLen = 255
	out.Files = 2
	return fuse.OK
}
