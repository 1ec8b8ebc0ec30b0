package fuseloop

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// FUSE over io_uring (FUSE_OVER_IO_URING, Linux 6.14+, with the fuse
// module's enable_uring parameter on). After INIT, which still goes through
// /dev/fuse, the server registers buffers on one queue per possible CPU;
// once every queue has one, the kernel delivers requests into those buffers
// and the server answers in place (COMMIT_AND_FETCH), with no read(2) or
// write(2) per request. FORGET, INTERRUPT and the server's notifications
// stay on /dev/fuse, which go-fuse's Server keeps serving. The research
// behind this, with the kernel code quoted, and what the transport
// measured are in docs/fuse-uring-research.md.
//
// Restart support is missing: when the process that registered the
// entries dies, the requests it held are stranded in the kernel and
// FUSE_NOTIFY_RESEND does not bring them back, so the Exporter refuses io_uring
// together with a Keeper.

// Layout of struct fuse_uring_req_header (uapi fuse.h, 7.42+), the
// per-entry header buffer.
const (
	uringInOut       = 0   // fuse_in_header (request), fuse_out_header (reply)
	uringOpIn        = 128 // the opcode's first in-argument
	uringOpInSize    = 128
	uringEntCommitID = 256 + 8  // ring_ent_in_out.commit_id
	uringEntPayload  = 256 + 16 // ring_ent_in_out.payload_sz
	uringHeaderSize  = 288      // sizeof(struct fuse_uring_req_header)

	inHeaderSize  = 40
	outHeaderSize = 16
)

// The FUSE io_uring commands (sqe->cmd_op) and the layout of struct
// fuse_uring_cmd_req in the SQE's command area.
const (
	fuseURingCmdRegister       = 1
	fuseURingCmdCommitAndFetch = 2

	cmdReqCommitID = 8
	cmdReqQID      = 16
)

// eventfdTag is the user_data of a queue's eventfd read; the entries' are
// their index.
const eventfdTag = ^uint64(0)

// defaultURingDepth is the number of entries (requests in flight) per
// queue. The loop device sends up to its queue depth (fio's iodepth) of
// requests at once, mostly from one CPU: a queue with no free entry makes
// that CPU's requests wait, with no spill to the other queues.
const defaultURingDepth = 16

// defaultURingThreads is the number of threads per queue. A thread serves
// a lone request itself and hands more to goroutines; with a thread per
// entry no request is handed between threads (a wake-up, costly on VMs).
const defaultURingThreads = 16

// pinURingQueues pins the threads of queue q to CPU q, as libfuse does
// (with one thread per queue): the kernel puts a request on the queue of
// the CPU that issued it, and the copy into the entry's buffers runs on
// the thread that serves the entry. Off: with several threads per queue,
// pinning keeps a queue's requests off the other CPUs, and the loop
// device issues most of them from one CPU.
var pinURingQueues = false

// uringInline makes a queue's thread serve a request itself, rather than
// on a goroutine of its own, when it is the only one the queue has: that
// saves two thread wake-ups (to the goroutine and back) per request at
// queue depth 1, and costs requests that arrive meanwhile on the same CPU
// the wait for it.
var uringInline = true

// uringSetupFlags are added to the queues' io_uring setup flags (for
// measurements: IORING_SETUP_COOP_TASKRUN, SINGLE_ISSUER|DEFER_TASKRUN).
var uringSetupFlags uint32

// errURingFellBack reports that the io_uring transport could not be set
// up but the connection serves everything over /dev/fuse.
var errURingFellBack = errors.New("the connection falls back to /dev/fuse")

// uringServer serves the requests a FUSE connection delivers over io_uring
// to a RawFileSystem through go-fuse's ProtocolServer (which decodes the
// same byte layout a /dev/fuse read gives, here spread over the entry's
// buffers: READ and WRITE data are not copied).
type uringServer struct {
	ps      *fuse.ProtocolServer
	fuseFD  int // our own copy of the connection's /dev/fuse descriptor
	depth   int // entries per queue
	threads int // workers per queue
	nqueues int
	payload int // bytes per entry's payload buffer
	logger  *log.Logger
	workers []*uringWorker

	// active is set when every queue has an entry registered: the kernel
	// then sends every request (but FORGET and INTERRUPT) over the rings.
	active   bool
	requests atomic.Uint64 // requests answered over the rings
	done     chan struct{} // closed when every queue's thread ended
}

// uringWorker serves some of the entries of one FUSE queue (qid = CPU
// number) on a locked OS thread with an io_uring of its own.
type uringWorker struct {
	srv  *uringServer
	qid  int
	id   int // worker number within the queue
	n    int // entries
	ring *uring
	mem  []byte // mmapped: iovecs, eventfd counter, then per entry header and payload
	efd  int    // eventfd: handlers wake the thread with it
	ents []uringEnt

	ctl     chan uringCtl
	started chan error

	// armed and busy are the entries the kernel holds (an SQE pending) and
	// those a handler holds; only the queue's thread touches them.
	armed, busy int
	regOK       int   // entries registered successfully
	ready       []int // entries with a request, to hand to handlers
	served      uint64

	mu       sync.Mutex
	finished []int // entries whose reply is written, to commit
	spare    []int
	sleeping bool // the thread waits in io_uring_enter: wake it
}

type uringEnt struct {
	hdr      []byte // fuse_uring_req_header (a page)
	payload  []byte
	iov      *[2]unix.Iovec // REGISTER's iovec array (mmapped)
	commitID uint64
	in       [3][]byte
	out      [2][]byte
}

type uringCtl int

const (
	ctlRegister uringCtl = iota // register the entries and serve
	ctlPoison                   // make the kernel fall back to /dev/fuse, then end
	ctlQuit                     // end without registering
)

// possibleCPUs is num_possible_cpus(): the kernel makes one queue per
// possible CPU, and qid is the CPU number.
func possibleCPUs() (int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(string(b)), ",") {
		_, hi, _ := strings.Cut(part, "-")
		if hi == "" {
			hi = part
		}
		v, err := strconv.Atoi(hi)
		if err != nil {
			return 0, fmt.Errorf("parse /sys/devices/system/cpu/possible %q: %w", b, err)
		}
		n = max(n, v+1)
	}
	return n, nil
}

// uringPayloadSize is the kernel's ring->max_payload_sz for a connection
// with this max_write: max(8192, max_write, max_pages*PAGE_SIZE), with
// max_pages as go-fuse sends it (max_write in pages, rounded up).
func uringPayloadSize(maxWrite int) int {
	page := os.Getpagesize()
	return max(8192, maxWrite, (maxWrite+page-1)/page*page)
}

// startURing sets up the io_uring queues of the connection dev (INIT
// done, FUSE_OVER_IO_URING negotiated) and serves them with fs. Until
// every queue has an entry the kernel holds every request back, so on
// failure it makes the kernel fall back to /dev/fuse (a failed REGISTER
// does that) and returns an error wrapping errURingFellBack, with a
// non-nil server if queue threads still run (they end with the
// connection). Any other error leaves the connection unusable: the caller
// must abort it.
func startURing(dev *os.File, fs fuse.RawFileSystem, opts *fuse.MountOptions, depth, threads int, logger *log.Logger) (*uringServer, error) {
	nq, err := possibleCPUs()
	if err != nil {
		return nil, fmt.Errorf("count the FUSE queues: %w", err)
	}
	fd, err := unix.FcntlInt(dev.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup /dev/fuse: %w", err)
	}
	if depth <= 0 {
		depth = defaultURingDepth
	}
	if threads <= 0 {
		threads = defaultURingThreads
	}
	threads = min(threads, depth)
	s := &uringServer{
		ps:      fuse.NewProtocolServer(fs, opts),
		fuseFD:  fd,
		depth:   depth,
		threads: threads,
		nqueues: nq,
		payload: uringPayloadSize(opts.MaxWrite),
		logger:  logger,
		done:    make(chan struct{}),
	}
	var wg sync.WaitGroup
	for q := range nq {
		for w := range threads {
			n := depth / threads
			if w < depth%threads {
				n++
			}
			wk := &uringWorker{srv: s, qid: q, id: w, n: n, efd: -1, ctl: make(chan uringCtl, 1), started: make(chan error, 1)}
			s.workers = append(s.workers, wk)
			wg.Add(1)
			go func() {
				defer wg.Done()
				wk.run()
			}()
		}
	}
	go func() {
		wg.Wait()
		unix.Close(s.fuseFD)
		perQueue := make([]uint64, nq)
		var total uint64
		for _, wk := range s.workers {
			perQueue[wk.qid] += wk.served
			total += wk.served
		}
		if total > 0 {
			logger.Printf("fuseloop: FUSE io_uring queues ended; requests per queue: %v", perQueue)
		}
		close(s.done)
	}()

	// Every worker first sets up its ring and buffers; only then do they
	// register, so that a failure leaves no queue half served.
	var setupErrs []error
	var poisoner *uringWorker
	for _, wk := range s.workers {
		if err := <-wk.started; err != nil {
			setupErrs = append(setupErrs, fmt.Errorf("queue %d worker %d: %w", wk.qid, wk.id, err))
		} else if poisoner == nil {
			poisoner = wk
		}
	}
	if len(setupErrs) > 0 {
		for _, wk := range s.workers {
			if wk == poisoner {
				wk.ctl <- ctlPoison
			} else {
				wk.ctl <- ctlQuit
			}
		}
		<-s.done
		err := errors.Join(setupErrs...)
		if poisoner == nil {
			return nil, fmt.Errorf("set up FUSE io_uring queues: %w", err)
		}
		if perr := <-poisoner.started; perr != nil {
			return nil, fmt.Errorf("set up FUSE io_uring queues: %w; make the kernel fall back to /dev/fuse: %v", err, perr)
		}
		return nil, fmt.Errorf("set up FUSE io_uring queues: %w: %w", err, errURingFellBack)
	}
	for _, wk := range s.workers {
		wk.ctl <- ctlRegister
	}
	var regErrs []error
	registered := make([]int, nq)
	for _, wk := range s.workers {
		if err := <-wk.started; err != nil {
			regErrs = append(regErrs, fmt.Errorf("queue %d worker %d: %w", wk.qid, wk.id, err))
		}
		registered[wk.qid] += wk.regOK // written before started
	}
	// The kernel uses the rings once every queue has an entry.
	s.active = !slices.Contains(registered, 0)
	if !s.active {
		// A failed REGISTER made the kernel fall back to /dev/fuse; the
		// entries that did register idle until the connection ends.
		return s, fmt.Errorf("register FUSE io_uring entries: %w: %w", errors.Join(regErrs...), errURingFellBack)
	}
	if len(regErrs) > 0 {
		logger.Printf("fuseloop: some FUSE io_uring entries did not register (the queues serve with fewer): %v", errors.Join(regErrs...))
	}
	return s, nil
}

// run is the worker's thread: set up, register, then serve until the
// connection ends. The goroutine stays locked to its thread and ends with
// it: the kernel ties each pending command to the thread that submitted
// it (and cancels them when it exits), and the thread may be pinned.
func (q *uringWorker) run() {
	runtime.LockOSThread()
	if pinURingQueues {
		var set unix.CPUSet
		set.Set(q.qid)
		_ = unix.SchedSetaffinity(0, &set) // an offline CPU: serve from anywhere
	}
	defer q.cleanup()
	if err := q.setup(); err != nil {
		q.started <- err
		<-q.ctl
		return
	}
	q.started <- nil
	switch <-q.ctl {
	case ctlQuit:
		return
	case ctlPoison:
		q.started <- q.poison()
		return
	}
	q.started <- q.register()
	q.loop()
}

func (q *uringWorker) setup() error {
	s := q.srv
	var err error
	// SQ: every entry's command plus the eventfd read; CQ: twice that.
	n := uint32(q.n + 1)
	if q.ring, err = newURing(n, 2*n, uringSetupFlags); err != nil {
		return err
	}
	if q.efd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	// The kernel keeps the buffers' addresses and writes them long after
	// REGISTER, so they are mmapped, never Go heap; payloads are page
	// aligned for the O_DIRECT I/O that reads and writes them.
	page := os.Getpagesize()
	ctlSize := (q.n*int(unsafe.Sizeof([2]unix.Iovec{})) + 8 + page - 1) / page * page
	entSize := page + (s.payload+page-1)/page*page
	q.mem, err = unix.Mmap(-1, 0, ctlSize+q.n*entSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("mmap %d FUSE io_uring buffers: %w", q.n, err)
	}
	q.ents = make([]uringEnt, q.n)
	for i := range q.ents {
		e := &q.ents[i]
		base := ctlSize + i*entSize
		e.hdr = q.mem[base : base+page : base+page]
		e.payload = q.mem[base+page : base+page+s.payload : base+page+s.payload]
		e.iov = (*[2]unix.Iovec)(unsafe.Pointer(&q.mem[i*int(unsafe.Sizeof([2]unix.Iovec{}))]))
		e.iov[0].Base, e.iov[1].Base = &e.hdr[0], &e.payload[0]
		e.iov[0].SetLen(len(e.hdr))
		e.iov[1].SetLen(len(e.payload))
	}
	q.finished = make([]int, 0, q.n)
	q.spare = make([]int, 0, q.n)
	q.ready = make([]int, 0, q.n)
	return nil
}

// eventfdBuf is where the eventfd read lands (mmapped, after the iovecs).
func (q *uringWorker) eventfdBuf() *byte {
	return &q.mem[q.n*int(unsafe.Sizeof([2]unix.Iovec{}))]
}

func (q *uringWorker) cleanup() {
	if q.ring != nil {
		if err := q.ring.close(); err != nil {
			q.srv.logger.Printf("fuseloop: FUSE io_uring queue %d/%d: %v", q.qid, q.id, err)
		}
	}
	if q.efd >= 0 {
		unix.Close(q.efd)
	}
	if q.mem != nil {
		_ = unix.Munmap(q.mem)
	}
}

// fuseCmd prepares a FUSE io_uring command for entry i.
func (q *uringWorker) fuseCmd(i int, op uint32) error {
	sqe, err := q.ring.getSQE()
	if err != nil {
		return err
	}
	sqe.opcode = ioringOpURingCmd
	sqe.fd = int32(q.srv.fuseFD)
	sqe.off = uint64(op) // cmd_op; __pad1 stays 0
	sqe.userData = uint64(i)
	binary.LittleEndian.PutUint16(sqe.cmd[cmdReqQID:], uint16(q.qid))
	if op == fuseURingCmdRegister {
		e := &q.ents[i]
		sqe.addr = uint64(uintptr(unsafe.Pointer(e.iov)))
		sqe.len = 2
	} else {
		binary.LittleEndian.PutUint64(sqe.cmd[cmdReqCommitID:], q.ents[i].commitID)
	}
	q.armed++
	return nil
}

func (q *uringWorker) armEventfd() error {
	sqe, err := q.ring.getSQE()
	if err != nil {
		return err
	}
	sqe.opcode = ioringOpRead
	sqe.fd = int32(q.efd)
	sqe.addr = uint64(uintptr(unsafe.Pointer(q.eventfdBuf())))
	sqe.len = 8
	sqe.userData = eventfdTag
	return nil
}

// submitNow submits what is prepared without waiting, retrying EINTR.
func (q *uringWorker) submitNow() error {
	for {
		_, err := q.ring.submit(0)
		if err != unix.EINTR {
			return err
		}
	}
}

// register submits REGISTER for every entry. A REGISTER the kernel
// refuses completes at once with the error; one it accepts completes only
// when a request arrives, which the reap here may already see.
func (q *uringWorker) register() error {
	for i := range q.ents {
		if err := q.fuseCmd(i, fuseURingCmdRegister); err != nil {
			return err
		}
	}
	if err := q.armEventfd(); err != nil {
		return err
	}
	if err := q.submitNow(); err != nil {
		q.armed = 0
		return fmt.Errorf("submit FUSE_IO_URING_CMD_REGISTER: %w", err)
	}
	var errs []error
	failed := 0
	q.ring.reap(func(ud uint64, res int32) {
		if ud == eventfdTag || res >= 0 {
			q.complete(ud, res)
			return
		}
		q.armed--
		// EAGAIN (INIT not finished) and EINTR are retried, as libfuse
		// does; the loop submits the retry.
		if (res == -int32(unix.EAGAIN) || res == -int32(unix.EINTR)) && q.fuseCmd(int(ud), fuseURingCmdRegister) == nil {
			return
		}
		failed++
		if len(errs) == 0 {
			errs = append(errs, fmt.Errorf("FUSE_IO_URING_CMD_REGISTER: %w", syscall.Errno(-res)))
		}
	})
	q.regOK = q.n - failed
	q.dispatch()
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d entries: %w", failed, q.n, errors.Join(errs...))
	}
	return nil
}

// poison submits a REGISTER the kernel refuses (qid out of range): that
// makes it clear the connection's io_uring flag and serve everything over
// /dev/fuse.
func (q *uringWorker) poison() error {
	sqe, err := q.ring.getSQE()
	if err != nil {
		return err
	}
	sqe.opcode = ioringOpURingCmd
	sqe.fd = int32(q.srv.fuseFD)
	sqe.off = fuseURingCmdRegister
	sqe.addr = uint64(uintptr(unsafe.Pointer(q.ents[0].iov)))
	sqe.len = 2
	binary.LittleEndian.PutUint16(sqe.cmd[cmdReqQID:], 0xffff)
	for {
		if _, err := q.ring.submit(1); err == nil {
			break
		} else if err != unix.EINTR {
			return fmt.Errorf("submit the fallback REGISTER: %w", err)
		}
	}
	var res int32 = 1
	q.ring.reap(func(_ uint64, r int32) { res = r })
	if res >= 0 {
		return fmt.Errorf("the fallback REGISTER (qid 0xffff) was accepted (res %d)", res)
	}
	return nil
}

// complete handles a CQE on the queue's thread.
func (q *uringWorker) complete(ud uint64, res int32) {
	if ud == eventfdTag {
		if res < 0 && res != -int32(unix.EAGAIN) && res != -int32(unix.EINTR) {
			q.srv.logger.Printf("fuseloop: FUSE io_uring queue %d/%d: eventfd read: %v", q.qid, q.id, syscall.Errno(-res))
		}
		if err := q.armEventfd(); err != nil {
			q.srv.logger.Printf("fuseloop: FUSE io_uring queue %d/%d: re-arm eventfd: %v", q.qid, q.id, err)
		}
		return
	}
	q.armed--
	i := int(ud)
	switch {
	case res == 0: // a request is in the entry's buffers
		e := &q.ents[i]
		e.commitID = binary.LittleEndian.Uint64(e.hdr[uringEntCommitID:])
		q.busy++
		q.served++
		q.ready = append(q.ready, i)
	case res == -int32(unix.ENOTCONN): // the connection ends
	default:
		q.srv.logger.Printf("fuseloop: FUSE io_uring queue %d/%d entry %d ended: %v", q.qid, q.id, i, syscall.Errno(-res))
	}
}

// dispatch hands the requests reaped to handlers, or serves a lone one on
// the queue's thread (uringInline).
func (q *uringWorker) dispatch() {
	if uringInline && len(q.ready) == 1 && q.busy == 1 {
		i := q.ready[0]
		q.ready = q.ready[:0]
		q.srv.serve(&q.ents[i])
		q.busy--
		if err := q.fuseCmd(i, fuseURingCmdCommitAndFetch); err != nil {
			q.srv.logger.Printf("fuseloop: FUSE io_uring queue %d/%d: commit entry %d: %v", q.qid, q.id, i, err)
		}
		return
	}
	for _, i := range q.ready {
		go q.handle(i)
	}
	q.ready = q.ready[:0]
}

// handle serves entry i's request on a goroutine of its own (the device
// blocks) and hands the entry back to the queue's thread to commit.
func (q *uringWorker) handle(i int) {
	q.srv.serve(&q.ents[i])
	q.mu.Lock()
	q.finished = append(q.finished, i)
	wake := q.sleeping
	q.sleeping = false
	q.mu.Unlock()
	if wake {
		one := [8]byte{1}
		if _, err := unix.Write(q.efd, one[:]); err != nil {
			q.srv.logger.Printf("fuseloop: FUSE io_uring queue %d/%d: wake: %v", q.qid, q.id, err)
		}
	}
}

// serve decodes the request in e, calls the filesystem and writes the
// reply into e: fuse_out_header in the header buffer, every out-argument
// in the payload, its size in ring_ent_in_out.payload_sz.
func (s *uringServer) serve(e *uringEnt) {
	h := e.hdr
	inLen := int(binary.LittleEndian.Uint32(h[uringInOut:]))
	unique := binary.LittleEndian.Uint64(h[uringInOut+8:])
	psz := int(binary.LittleEndian.Uint32(h[uringEntPayload:]))
	// The kernel puts the first in-argument in op_in and the rest in the
	// payload; in_header.len still counts them all.
	opSize := inLen - inHeaderSize - psz
	reply := 0
	if opSize < 0 || opSize > uringOpInSize || psz > len(e.payload) {
		s.logger.Printf("fuseloop: malformed FUSE io_uring request (len %d, payload %d)", inLen, psz)
		errorReply(h, unique, syscall.EIO)
	} else {
		e.in = [3][]byte{h[uringInOut : uringInOut+inHeaderSize], h[uringOpIn : uringOpIn+opSize], e.payload[:psz]}
		e.out = [2][]byte{h[uringInOut : uringInOut+outHeaderSize], e.payload}
		n, st := s.ps.HandleRequest(e.in[:], e.out[:])
		switch {
		case !st.Ok():
			errorReply(h, unique, syscall.Errno(st))
		case n == 0: // a request without reply: never sent over io_uring
			errorReply(h, unique, syscall.ENOSYS)
		default:
			reply = n - outHeaderSize
		}
	}
	binary.LittleEndian.PutUint32(h[uringEntPayload:], uint32(reply))
	s.requests.Add(1)
}

func errorReply(h []byte, unique uint64, errno syscall.Errno) {
	binary.LittleEndian.PutUint32(h[0:], outHeaderSize)
	binary.LittleEndian.PutUint32(h[4:], uint32(-int32(errno)))
	binary.LittleEndian.PutUint64(h[8:], unique)
}

// loop commits the entries handlers finished and waits for the next
// CQEs, until the kernel gave back every entry (the connection ended) and
// no handler holds one.
func (q *uringWorker) loop() {
	for {
		q.mu.Lock()
		fin := q.finished
		q.finished = q.spare[:0]
		q.sleeping = true // from now on a finishing handler wakes us
		q.mu.Unlock()
		for _, i := range fin {
			q.busy--
			if err := q.fuseCmd(i, fuseURingCmdCommitAndFetch); err != nil {
				// Cannot happen: the SQ has a slot per entry.
				q.srv.logger.Printf("fuseloop: FUSE io_uring queue %d/%d: commit entry %d: %v", q.qid, q.id, i, err)
			}
		}
		q.spare = fin
		if q.armed == 0 && q.busy == 0 {
			return
		}
		_, err := q.ring.submit(1)
		q.mu.Lock()
		q.sleeping = false
		q.mu.Unlock()
		switch err {
		case nil, unix.EINTR, unix.EAGAIN, unix.EBUSY:
			// EINTR: a signal (Go's preemption); EAGAIN/EBUSY: reap first.
		default:
			q.srv.logger.Printf("fuseloop: FUSE io_uring queue %d/%d: io_uring_enter: %v", q.qid, q.id, err)
			time.Sleep(100 * time.Millisecond)
		}
		q.ring.reap(q.complete)
		q.dispatch()
	}
}
