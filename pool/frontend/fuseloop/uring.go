package fuseloop

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A minimal io_uring over golang.org/x/sys/unix, just what the FUSE
// transport (uringserve.go) needs: 128-byte SQEs (IORING_SETUP_SQE128, which
// FUSE's IORING_OP_URING_CMD requires), submission, and reaping of 16-byte
// CQEs. x/sys/unix has the syscall numbers only; the structures and
// constants below are copied from <linux/io_uring.h> (offsets pinned by
// TestURingLayout).

const (
	ioringSetupCQSize    = 1 << 3
	ioringSetupSubmitAll = 1 << 7
	ioringSetupSQE128    = 1 << 10

	ioringOpNop      = 0
	ioringOpRead     = 22
	ioringOpURingCmd = 46

	ioringOffSQRing = 0
	ioringOffCQRing = 0x8000000
	ioringOffSQEs   = 0x10000000

	ioringFeatSingleMmap = 1 << 0

	ioringEnterGetEvents = 1 << 0
)

// uringSQE is struct io_uring_sqe of a ring set up with
// IORING_SETUP_SQE128: the 64-byte SQE whose last 16 bytes (addr3, __pad2)
// begin the 80-byte command area of IORING_OP_URING_CMD.
type uringSQE struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64 // for URING_CMD: cmd_op (u32), then __pad1 (u32, must be 0)
	addr        uint64
	len         uint32
	opFlags     uint32
	userData    uint64
	bufIndex    uint16
	personality uint16
	fileIndex   uint32
	cmd         [80]byte
}

// uringCQE is struct io_uring_cqe (without CQE32).
type uringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

type uringSQOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type uringCQOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// uringParams is struct io_uring_params.
type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  uringSQOffsets
	cqOff                                                                  uringCQOffsets
}

// uring is one io_uring instance with its mapped rings. It is not safe for
// concurrent use: one goroutine (for the FUSE transport, one locked OS
// thread: the kernel runs an entry's task work in the thread that
// submitted it) prepares SQEs, submits and reaps.
type uring struct {
	fd      int
	ringMem []byte // the SQ ring, and the CQ ring too with IORING_FEAT_SINGLE_MMAP
	cqMem   []byte // the CQ ring when it is mapped apart
	sqeMem  []byte

	sqHead, sqTail *uint32
	sqMask         uint32
	sqEntries      uint32
	sqArray        []uint32
	sqes           []uringSQE
	localTail      uint32 // SQEs prepared, published to *sqTail by submit

	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []uringCQE
}

// newURing sets up an io_uring with room for sqEntries SQEs and cqEntries
// CQEs (both rounded up to powers of two by the kernel). flags are added to
// IORING_SETUP_SQE128|IORING_SETUP_CQSIZE|IORING_SETUP_SUBMIT_ALL.
func newURing(sqEntries, cqEntries, flags uint32) (*uring, error) {
	p := uringParams{
		flags:     ioringSetupSQE128 | ioringSetupCQSize | ioringSetupSubmitAll | flags,
		cqEntries: cqEntries,
	}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(sqEntries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup(%d entries, flags %#x): %w", sqEntries, p.flags, errno)
	}
	r := &uring{fd: int(fd)}
	if err := r.mmap(&p); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *uring) mmap(p *uringParams) error {
	sqSize := int(p.sqOff.array) + int(p.sqEntries)*4
	cqSize := int(p.cqOff.cqes) + int(p.cqEntries)*int(unsafe.Sizeof(uringCQE{}))
	single := p.features&ioringFeatSingleMmap != 0
	if single {
		sqSize = max(sqSize, cqSize)
	}
	const prot, flags = unix.PROT_READ | unix.PROT_WRITE, unix.MAP_SHARED | unix.MAP_POPULATE
	var err error
	if r.ringMem, err = unix.Mmap(r.fd, ioringOffSQRing, sqSize, prot, flags); err != nil {
		return fmt.Errorf("mmap io_uring SQ ring: %w", err)
	}
	cq := r.ringMem
	if !single {
		if r.cqMem, err = unix.Mmap(r.fd, ioringOffCQRing, cqSize, prot, flags); err != nil {
			return fmt.Errorf("mmap io_uring CQ ring: %w", err)
		}
		cq = r.cqMem
	}
	sqeSize := int(unsafe.Sizeof(uringSQE{}))
	if r.sqeMem, err = unix.Mmap(r.fd, ioringOffSQEs, int(p.sqEntries)*sqeSize, prot, flags); err != nil {
		return fmt.Errorf("mmap io_uring SQEs: %w", err)
	}
	u32 := func(mem []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
	r.sqHead, r.sqTail = u32(r.ringMem, p.sqOff.head), u32(r.ringMem, p.sqOff.tail)
	r.sqMask, r.sqEntries = *u32(r.ringMem, p.sqOff.ringMask), p.sqEntries
	r.sqArray = unsafe.Slice(u32(r.ringMem, p.sqOff.array), p.sqEntries)
	r.sqes = unsafe.Slice((*uringSQE)(unsafe.Pointer(&r.sqeMem[0])), p.sqEntries)
	r.cqHead, r.cqTail = u32(cq, p.cqOff.head), u32(cq, p.cqOff.tail)
	r.cqMask = *u32(cq, p.cqOff.ringMask)
	r.cqes = unsafe.Slice((*uringCQE)(unsafe.Pointer(&cq[p.cqOff.cqes])), p.cqEntries)
	r.localTail = atomic.LoadUint32(r.sqTail)
	return nil
}

// errSQFull is returned by getSQE when every SQE slot waits for submission.
var errSQFull = errors.New("io_uring submission queue full")

// getSQE returns a zeroed SQE slot to fill in; submit hands it to the
// kernel.
func (r *uring) getSQE() (*uringSQE, error) {
	if r.localTail-atomic.LoadUint32(r.sqHead) >= r.sqEntries {
		return nil, errSQFull
	}
	i := r.localTail & r.sqMask
	s := &r.sqes[i]
	*s = uringSQE{}
	r.sqArray[i] = i
	r.localTail++
	return s, nil
}

// submit hands the prepared SQEs to the kernel and, if wait > 0, waits
// until at least wait CQEs are ready. It returns the number of SQEs the
// kernel consumed. EINTR (the Go runtime preempts with SIGURG) is returned
// as is; the caller calls again: SQEs not consumed stay queued.
func (r *uring) submit(wait uint32) (int, error) {
	atomic.StoreUint32(r.sqTail, r.localTail)
	toSubmit := r.localTail - atomic.LoadUint32(r.sqHead)
	var flags uintptr
	if wait > 0 {
		flags = ioringEnterGetEvents
	}
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(wait), flags, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// reap calls fn for every ready CQE, in order, and returns how many there
// were.
func (r *uring) reap(fn func(userData uint64, res int32)) int {
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail)
	n := 0
	for ; head != tail; head++ {
		c := &r.cqes[head&r.cqMask]
		ud, res := c.userData, c.res
		// Release the slot before fn runs: fn may submit, and the kernel
		// may post into it.
		atomic.StoreUint32(r.cqHead, head+1)
		fn(ud, res)
		n++
	}
	return n
}

// close unmaps the rings and closes the io_uring. The kernel cancels what
// is still pending.
func (r *uring) close() error {
	var errs []error
	for _, m := range [][]byte{r.sqeMem, r.cqMem, r.ringMem} {
		if m != nil {
			errs = append(errs, unix.Munmap(m))
		}
	}
	r.sqeMem, r.cqMem, r.ringMem = nil, nil, nil
	if r.fd >= 0 {
		errs = append(errs, unix.Close(r.fd))
		r.fd = -1
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close io_uring: %w", err)
	}
	return nil
}

// probeURing checks that this process may create an io_uring with 128-byte
// SQEs (io_uring may be disabled by the kernel.io_uring_disabled sysctl or
// a seccomp filter). A FUSE connection that negotiated io_uring waits for
// its rings before serving anything, so this is checked before mounting.
func probeURing() error {
	r, err := newURing(1, 2, 0)
	if err != nil {
		return err
	}
	return r.close()
}
