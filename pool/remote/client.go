package remote

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/clusterca"
	"github.com/ballast-io/ballast/pool/replica"
)

// DefaultTimeout is the per-request timeout of a client dialed with Dial.
const DefaultTimeout = 10 * time.Second

// ErrTimeout is wrapped by the error of a request that got no answer in
// time. The connection is then considered dead: every pending and later
// request on it fails too.
var ErrTimeout = errors.New("request timed out")

// ErrClientClosed is wrapped by the errors of requests made after Close.
var ErrClientClosed = errors.New("client closed")

// Dialer holds the options of Dial. The zero value is ready to use.
type Dialer struct {
	// Timeout bounds the connection handshake and each request, from the
	// moment it is sent to its answer; 0 means DefaultTimeout.
	Timeout time.Duration
	// TLS, when set, is the client side of mutual TLS with the cluster's
	// certificates (clusterca.MutualTLS): the connection is encrypted and
	// authenticated by it instead of the HMAC handshake.
	TLS *tls.Config
}

// Client is a replica on another node. It implements block.Device, plus
// Repair, Snapshot and DeleteSnapshot like a local replica, and Fence.
// It is safe for concurrent use; concurrent calls are pipelined over one
// connection. When the connection fails, or a request times out, every
// pending and later call fails: dial a new client.
type Client struct {
	name    string // replicaID@addr, for errors
	id      string
	epoch   uint64
	size    atomic.Int64 // grows by Resize
	timeout time.Duration
	conn    net.Conn

	w *frameWriter // sends requests, batching those of concurrent callers

	mu          sync.Mutex
	pending     map[uint64]chan *Frame // by request ID
	nextID      uint64
	err         error         // why the connection is dead; set once
	dead        chan struct{} // closed when err is set
	suspect     chan struct{} // closed by Suspect; a new one once an answer clears it
	suspectFor  time.Duration // while suspected, how long a request may go unanswered; else 0
	suspectedAt time.Time     // when Suspect was called

	readerDone chan struct{}
}

var _ block.Device = (*Client)(nil)

// Dial connects to the server at addr, authenticates with the cluster
// secret and opens replicaID, with epoch as the epoch of every request.
// It fails with an error wrapping ErrFenced if the replica was fenced at a
// newer epoch.
func Dial(ctx context.Context, addr string, secret []byte, replicaID string, epoch uint64) (*Client, error) {
	var d Dialer
	return d.Dial(ctx, addr, secret, replicaID, epoch)
}

// Dial is like the package's Dial, with d's options.
func (d *Dialer) Dial(ctx context.Context, addr string, secret []byte, replicaID string, epoch uint64) (*Client, error) {
	name := replicaID + "@" + addr
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if err := clusterca.CheckSecret(secret); err != nil {
		return nil, fmt.Errorf("remote %s: dial: %w", name, err)
	}
	if replicaID == "" || len(replicaID) > MaxReplicaID {
		return nil, fmt.Errorf("remote %s: dial: replica ID of %d bytes", name, len(replicaID))
	}
	return d.dial(ctx, addr, secret, replicaID, epoch, name, timeout)
}

// dial connects, authenticates and sends Hello naming replicaID.
func (d *Dialer) dial(ctx context.Context, addr string, secret []byte, replicaID string, epoch uint64, name string, timeout time.Duration) (*Client, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("remote %s: dial: %w", name, err)
	}
	c, err := handshake(ctx, conn, secret, d.TLS, replicaID, epoch)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("remote %s: dial: %w", name, err)
	}
	c.name, c.timeout = name, timeout
	c.w = newFrameWriter(c.conn, timeout)
	go c.readLoop(bufio.NewReaderSize(c.conn, 64<<10))
	return c, nil
}

// handshake authenticates conn, in TLS with cfg or else with the HMAC
// handshake, and sends Hello, within ctx.
func handshake(ctx context.Context, conn net.Conn, secret []byte, cfg *tls.Config, replicaID string, epoch uint64) (*Client, error) {
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	raw := conn
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var err error
	if cfg != nil {
		conn, err = tlsClient(ctx, conn, cfg)
	} else {
		conn, err = authClient(conn, secret)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
			err = fmt.Errorf("%w (does the server take replica connections over TLS only? then this node needs --replica-tls too)", err)
		}
	}
	if err != nil {
		return nil, err
	}
	if err := writeFrame(conn, &Frame{Op: OpHello, Epoch: epoch, ReplicaID: replicaID}); err != nil {
		return nil, fmt.Errorf("hello: %w", err)
	}
	// The hello answer is read unbuffered so no later frame is consumed.
	resp, err := ReadFrame(conn)
	if cfg != nil && err != nil && strings.Contains(err.Error(), "remote error: tls") {
		return nil, fmt.Errorf("hello: the server refused this node's certificate (another cluster secret?): %v: %w", err, ErrAuth)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("hello: the server closed the connection (does it run a Ballast version speaking another replica protocol? this node speaks version %d): %w", version, err)
	}
	if err != nil {
		return nil, fmt.Errorf("hello: %w", err)
	}
	if err := statusError(resp); err != nil {
		return nil, fmt.Errorf("hello: %w", err)
	}
	if resp.Op != OpHello || resp.Length <= 0 || resp.Length%block.Size != 0 {
		return nil, fmt.Errorf("hello: bad answer (op %v, size %d): %w", resp.Op, resp.Length, ErrBadFrame)
	}
	if !stop() {
		return nil, ctx.Err()
	}
	conn.SetDeadline(time.Time{})
	c := &Client{
		id:         replicaID,
		epoch:      epoch,
		conn:       conn,
		pending:    map[uint64]chan *Frame{},
		nextID:     1,
		dead:       make(chan struct{}),
		suspect:    make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	c.size.Store(resp.Length)
	return c, nil
}

// readLoop delivers each response to the call waiting for it.
func (c *Client) readLoop(br *bufio.Reader) {
	defer close(c.readerDone)
	for {
		f, err := ReadFrame(br)
		if err != nil {
			c.fail(fmt.Errorf("connection lost: %w", err))
			return
		}
		c.mu.Lock()
		ch := c.pending[f.ID]
		delete(c.pending, f.ID)
		if c.suspectFor > 0 { // an answer: the server is alive after all
			c.suspectFor, c.suspect = 0, make(chan struct{})
		}
		c.mu.Unlock()
		if ch == nil {
			c.fail(fmt.Errorf("answer to unknown request %d: %w", f.ID, ErrBadFrame))
			return
		}
		ch <- f // buffered
	}
}

// fail marks the connection dead because of err and closes it. Every
// pending and later call returns an error wrapping the first such err.
func (c *Client) fail(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
		c.pending = nil
		close(c.dead)
		c.conn.Close()
	}
	return c.err
}

// Suspect shortens to d the time a request may go unanswered, counted
// from now for the requests in flight and from when each is sent for
// later ones, until the server answers one; then in-flight requests get
// their full timeout back. The node says so when the replica's node was
// declared down: a live server answers in milliseconds, a dead host
// never does, and every write of the volume would wait the full timeout
// for it before the replica leaves the in-sync set.
func (c *Client) Suspect(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || c.suspectFor > 0 || d <= 0 {
		return
	}
	c.suspectFor, c.suspectedAt = d, time.Now()
	close(c.suspect)
}

// suspicion returns how long a request may go unanswered (0: the full
// timeout), since when, and the channel the next Suspect closes.
func (c *Client) suspicion() (time.Duration, time.Time, chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.suspectFor, c.suspectedAt, c.suspect
}

// call is one request in flight.
type call struct {
	ch       chan *Frame
	sent     time.Time
	deadline time.Time
	hurry    chan struct{} // the client's suspect channel when it was sent
}

// start sends req and returns the call to wait on. When the write returns,
// the connection no longer references req.Payload.
func (c *Client) start(req *Frame) (call, error) {
	now := time.Now()
	cl := call{ch: make(chan *Frame, 1), sent: now, deadline: now.Add(c.timeout)}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return cl, err
	}
	req.ID = c.nextID
	c.nextID++
	c.pending[req.ID] = cl.ch
	cl.hurry = c.suspect
	c.mu.Unlock()

	err := c.w.send(req)
	if err != nil {
		if errors.Is(err, ErrBadFrame) { // nothing was written
			c.mu.Lock()
			delete(c.pending, req.ID)
			c.mu.Unlock()
			return cl, err
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			err = fmt.Errorf("%v request %d: send: %w after %v", req.Op, req.ID, ErrTimeout, c.timeout)
		}
		return cl, c.fail(fmt.Errorf("send: %w", err))
	}
	return cl, nil
}

// wait returns the answer to cl, or an error when the connection dies or
// the answer is late.
func (c *Client) wait(cl call) (*Frame, error) {
	hurry, deadline := cl.hurry, cl.deadline
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		select {
		case f := <-cl.ch:
			return f, nil
		case <-c.dead:
			select {
			case f := <-cl.ch:
				return f, nil
			default:
				return nil, c.fail(nil)
			}
		case <-hurry:
			d, at, next := c.suspicion()
			if d == 0 { // lifted already: wait for the next one
				hurry = next
				continue
			}
			hurry = nil
			if short := later(cl.sent, at).Add(d); short.Before(deadline) {
				deadline = short
				t.Reset(time.Until(deadline))
			}
		case <-t.C:
			if deadline.Equal(cl.deadline) {
				return nil, c.fail(fmt.Errorf("%w after %v", ErrTimeout, c.timeout))
			}
			d, _, next := c.suspicion()
			if d > 0 {
				return nil, c.fail(fmt.Errorf("%w after %v: its node is down", ErrTimeout, d))
			}
			// The server answered since: it is alive, the request gets
			// its full time.
			hurry, deadline = next, cl.deadline
			t.Reset(time.Until(deadline))
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// roundTrip sends req and waits for the answer, turning a failed status
// into an error.
func (c *Client) roundTrip(req *Frame) (*Frame, error) {
	req.Epoch = c.epoch
	cl, err := c.start(req)
	if err != nil {
		return nil, err
	}
	resp, err := c.wait(cl)
	if err != nil {
		return nil, err
	}
	return resp, statusError(resp)
}

// remoteError is an error the server reported, with the sentinel its
// status names (if any) for errors.Is.
type remoteError struct {
	msg  string
	kind error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }

// statusError is the error a response reports, nil if it succeeded. A
// checksum error is a *block.ChecksumError; for a read, the bad offsets
// follow the data in the payload.
func statusError(f *Frame) error {
	var kind error
	switch f.Status {
	case StatusOK:
		return nil
	case StatusChecksum:
		p := f.Payload
		if f.Op == OpRead {
			if f.Length < 0 || int64(len(p)) < f.Length {
				return fmt.Errorf("checksum answer of %d bytes for a read of %d: %w", len(p), f.Length, ErrBadFrame)
			}
			p = p[f.Length:]
		}
		offs, err := decodeOffsets(p)
		if err != nil {
			return err
		}
		return &block.ChecksumError{Offsets: offs}
	case StatusFenced:
		kind = ErrFenced
	case StatusUnaligned:
		kind = block.ErrUnaligned
	case StatusOutOfRange:
		kind = block.ErrOutOfRange
	case StatusNotFound:
		kind = replica.ErrNotFound
	case StatusExists:
		kind = replica.ErrExists
	case StatusInUse:
		kind = replica.ErrInUse
	case StatusDropped:
		kind = ErrDropped
	case StatusNoSupport:
		kind = errors.ErrUnsupported
	}
	return &remoteError{msg: string(f.Payload), kind: kind}
}

// Size returns the size of the replica.
func (c *Client) Size() int64 { return c.size.Load() }

// Epoch returns the epoch the client sends with every request.
func (c *Client) Epoch() uint64 { return c.epoch }

// ReadAt reads len(p) bytes at off, in requests of at most MaxIO bytes sent
// together. Like a local replica, blocks that fail their checksum are
// zeroed in p and reported by a *block.ChecksumError (not wrapped), while
// the other blocks are read.
func (c *Client) ReadAt(p []byte, off int64) (int, error) {
	if err := block.Check(off, int64(len(p)), c.size.Load()); err != nil {
		return 0, fmt.Errorf("remote %s: read: %w", c.name, err)
	}
	var calls []call
	var firstErr error
	for i := 0; i < len(p); i += MaxIO {
		n := min(MaxIO, len(p)-i)
		cl, err := c.start(&Frame{Op: OpRead, Epoch: c.epoch, Offset: off + int64(i), Length: int64(n)})
		if err != nil {
			firstErr = err
			break
		}
		calls = append(calls, cl)
	}
	var bad []int64
	for k, cl := range calls {
		i := k * MaxIO
		n := min(MaxIO, len(p)-i)
		resp, err := c.wait(cl)
		if err == nil {
			resp.Length = int64(n) // the answer's data length is the request's
			err = statusError(resp)
		}
		var ce *block.ChecksumError
		switch {
		case err == nil && len(resp.Payload) == n:
			copy(p[i:i+n], resp.Payload)
		case err == nil:
			err = fmt.Errorf("read answer of %d bytes, want %d: %w", len(resp.Payload), n, ErrBadFrame)
		case errors.As(err, &ce):
			copy(p[i:i+n], resp.Payload[:n])
			bad = append(bad, ce.Offsets...)
			err = nil
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return 0, fmt.Errorf("remote %s: read at %d: %w", c.name, off, firstErr)
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return len(p), &block.ChecksumError{Offsets: bad}
	}
	return len(p), nil
}

// WriteAt writes p at off, in requests of at most MaxIO bytes sent
// together, and returns when the replica has written all of them.
func (c *Client) WriteAt(p []byte, off int64) (int, error) {
	if err := block.Check(off, int64(len(p)), c.size.Load()); err != nil {
		return 0, fmt.Errorf("remote %s: write: %w", c.name, err)
	}
	if err := c.sendChunked(OpWrite, p, off); err != nil {
		return 0, fmt.Errorf("remote %s: write at %d: %w", c.name, off, err)
	}
	return len(p), nil
}

// Repair rewrites the blocks at off with good, content read from another
// replica, with fresh checksums.
func (c *Client) Repair(off int64, good []byte) error {
	if err := block.Check(off, int64(len(good)), c.size.Load()); err != nil {
		return fmt.Errorf("remote %s: repair: %w", c.name, err)
	}
	if err := c.sendChunked(OpRepair, good, off); err != nil {
		return fmt.Errorf("remote %s: repair at %d: %w", c.name, off, err)
	}
	return nil
}

func (c *Client) sendChunked(op Op, p []byte, off int64) error {
	var calls []call
	var firstErr error
	for i := 0; i < len(p); i += MaxIO {
		n := min(MaxIO, len(p)-i)
		cl, err := c.start(&Frame{Op: op, Epoch: c.epoch, Offset: off + int64(i), Payload: p[i : i+n]})
		if err != nil {
			firstErr = err
			break
		}
		calls = append(calls, cl)
	}
	for _, cl := range calls {
		resp, err := c.wait(cl)
		if err == nil {
			err = statusError(resp)
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// Flush returns when every write the replica answered before Flush was
// called is on its stable storage.
func (c *Client) Flush() error {
	if _, err := c.roundTrip(&Frame{Op: OpFlush}); err != nil {
		return fmt.Errorf("remote %s: flush: %w", c.name, err)
	}
	return nil
}

// Discard returns [off, off+length) to the replica's pool.
func (c *Client) Discard(off, length int64) error {
	if err := block.Check(off, length, c.size.Load()); err != nil {
		return fmt.Errorf("remote %s: discard: %w", c.name, err)
	}
	if _, err := c.roundTrip(&Frame{Op: OpDiscard, Offset: off, Length: length}); err != nil {
		return fmt.Errorf("remote %s: discard at %d: %w", c.name, off, err)
	}
	return nil
}

// Snapshot freezes the replica's head as snapshot name.
func (c *Client) Snapshot(name string) error {
	if _, err := c.roundTrip(&Frame{Op: OpSnapshot, Payload: []byte(name)}); err != nil {
		return fmt.Errorf("remote %s: snapshot %q: %w", c.name, name, err)
	}
	return nil
}

// Resize grows the replica to size bytes.
func (c *Client) Resize(size int64) error {
	resp, err := c.roundTrip(&Frame{Op: OpResize, Length: size})
	if err != nil {
		return fmt.Errorf("remote %s: resize to %d: %w", c.name, size, err)
	}
	c.size.Store(resp.Length)
	return nil
}

// DeleteSnapshot deletes snapshot name of the replica.
func (c *Client) DeleteSnapshot(name string) error {
	if _, err := c.roundTrip(&Frame{Op: OpDeleteSnapshot, Payload: []byte(name)}); err != nil {
		return fmt.Errorf("remote %s: delete snapshot %q: %w", c.name, name, err)
	}
	return nil
}

// Fence raises the replica's epoch to epoch (it never goes down) and
// returns when no request of an older epoch is running on it any more;
// from then on the replica refuses them with ErrFenced, from every client.
// It does not change this client's own epoch.
func (c *Client) Fence(epoch uint64) error {
	cl, err := c.start(&Frame{Op: OpFence, Epoch: epoch})
	if err == nil {
		var resp *Frame
		if resp, err = c.wait(cl); err == nil {
			err = statusError(resp)
		}
	}
	if err != nil {
		return fmt.Errorf("remote %s: fence at epoch %d: %w", c.name, epoch, err)
	}
	return nil
}

// Close closes the connection. Pending calls fail with an error wrapping
// ErrClientClosed.
func (c *Client) Close() error {
	c.fail(ErrClientClosed)
	<-c.readerDone
	return nil
}
