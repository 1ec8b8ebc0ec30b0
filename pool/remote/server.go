package remote

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/clusterca"
	"github.com/ballast-io/ballast/pool/replica"
)

// Replica is what a server serves: a local replica. *replica.Replica
// implements it.
type Replica interface {
	block.Replica
	// Epoch and Fence keep the replica's fenced epoch durably, so that a
	// restarted server still refuses a former owner.
	Epoch() uint64
}

var _ Replica = (*replica.Replica)(nil)

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("remote: server closed")

// ErrDropped is wrapped by the error of a request on a connection whose
// replica the server no longer serves (Server.Drop or Remove):
// the connection is useless, dial again.
var ErrDropped = errors.New("replica no longer served here (dropped by the server)")

const (
	// handshakeTimeout bounds the handshake and the Hello request.
	handshakeTimeout = 10 * time.Second
	// writeTimeout bounds the write of one response, so that a client
	// that stopped reading cannot pin the server's goroutines.
	writeTimeout = 30 * time.Second
	// maxInFlight bounds the requests of one connection served at once;
	// beyond it the server stops reading and TCP pushes back.
	maxInFlight = 128
	// maxErrText bounds the error text sent to a client.
	maxErrText = 4096
)

// Server serves local replicas to remote clients.
type Server struct {
	secret []byte
	open   func(replicaID string) (Replica, error)
	log    *slog.Logger

	mu        sync.Mutex
	tls       *tls.Config // nil: connections in clear, HMAC-authenticated
	clear     bool        // with tls: the HMAC handshake is taken too
	replicas  map[string]*served
	busy      map[string]int // replicas being dropped or deleted: not opened meanwhile
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	closed    bool
	wg        sync.WaitGroup // connection goroutines
}

// served is one replica being served, shared by all its connections.
type served struct {
	id  string
	rep Replica

	// gate is held shared by every request while it checks its epoch and
	// runs, and exclusively by Fence while it raises the epoch: once a
	// Fence is answered, no request of an older epoch is still running or
	// will ever run.
	gate sync.RWMutex
	// fence is the replica's epoch, guarded by gate: loaded from the
	// replica when it is opened, and raised there durably before it is
	// raised here.
	fence Fence
	// dropped, guarded by gate, is set by Drop once no request runs on rep
	// any more; requests then fail with ErrDropped and never touch rep.
	dropped bool
}

// NewServer returns a server that authenticates clients with the cluster
// secret and opens replicas with open. open is called once per replica ID,
// the first time a client names it; the server keeps the replica for its
// life and closes it on Close if it implements io.Closer.
func NewServer(secret []byte, open func(replicaID string) (Replica, error), log *slog.Logger) (*Server, error) {
	if err := clusterca.CheckSecret(secret); err != nil {
		return nil, fmt.Errorf("remote: new server: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Server{
		secret:    append([]byte(nil), secret...),
		open:      open,
		log:       log,
		replicas:  map[string]*served{},
		busy:      map[string]int{},
		listeners: map[net.Listener]struct{}{},
		conns:     map[net.Conn]struct{}{},
	}, nil
}

// Serve accepts connections on ln until Close, and returns ErrServerClosed
// then, or the error that stopped accepting.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("remote: accept: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			conn.Close()
			return ErrServerClosed
		}
		s.conns[conn] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(conn)
			s.mu.Lock()
			delete(s.conns, conn)
			s.mu.Unlock()
		}()
	}
}

// Close stops the listeners, closes every connection, waits for the
// requests being served and closes the replicas.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.mu.Lock()
	replicas := s.replicas
	s.replicas = map[string]*served{}
	s.mu.Unlock()
	var errs []error
	for _, sv := range replicas {
		if c, ok := sv.rep.(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("remote: close replica %s: %w", sv.id, err))
			}
		}
	}
	return errors.Join(errs...)
}

// replica returns the served replica id, opening it on first use.
func (s *Server) replica(id string) (*served, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sv := s.replicas[id]; sv != nil {
		return sv, nil
	}
	if s.closed {
		return nil, ErrServerClosed
	}
	if s.busy[id] > 0 {
		return nil, fmt.Errorf("replica %s is being dropped or deleted: %w", id, replica.ErrInUse)
	}
	rep, err := s.open(id)
	if err != nil {
		return nil, err
	}
	sv := &served{id: id, rep: rep}
	sv.fence.Raise(rep.Epoch())
	s.replicas[id] = sv
	return sv, nil
}

// UseTLS makes the server take connections in TLS with cfg (mutual TLS
// with certificates of the cluster CA: clusterca.MutualTLS's server side),
// and, unless alsoClear, refuse those in clear, from the next connection
// on.
func (s *Server) UseTLS(cfg *tls.Config, alsoClear bool) {
	s.mu.Lock()
	s.tls, s.clear = cfg, alsoClear
	s.mu.Unlock()
}

// handshake authenticates a new connection, in TLS or with the HMAC
// handshake as the client starts it, and returns the connection to serve.
func (s *Server) handshake(conn net.Conn) (net.Conn, error) {
	s.mu.Lock()
	cfg, clear := s.tls, s.clear
	s.mu.Unlock()
	magic := make([]byte, len(authMagic))
	if _, err := io.ReadFull(conn, magic); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	switch string(magic) {
	case tlsMagic:
		if cfg == nil {
			return nil, fmt.Errorf("handshake: the client asks for TLS, which this node does not take (--replica-tls): %w", ErrAuth)
		}
		tc := tls.Server(conn, cfg)
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("TLS handshake: %v: %w", err, ErrAuth)
		}
		return tc, nil
	case authMagic:
		if cfg != nil && !clear {
			return nil, fmt.Errorf("handshake: the client comes in clear; this node takes replica connections over TLS only (--replica-tls): %w", ErrAuth)
		}
		return authServerAfterMagic(conn, s.secret)
	}
	return nil, fmt.Errorf("handshake: not a Ballast client (got %q): %w", magic, ErrAuth)
}

// FenceReplica raises the epoch of replica id for its owner on this node,
// the way a Fence request does: when the server serves the replica, it
// waits for the requests running on it, calls fence (which must persist the
// epoch in the replica) and refuses older epochs from then on; when it does
// not, it calls fence alone, and loads the new epoch if it opens the
// replica later. A node must fence its local replicas through here, or a
// former owner's requests, checked against the server's copy of the epoch,
// would still be admitted.
func (s *Server) FenceReplica(id string, epoch uint64, fence func() error) error {
	s.mu.Lock()
	sv := s.replicas[id]
	if sv == nil {
		defer s.mu.Unlock() // no open of id meanwhile: it would load the old epoch
		return fence()
	}
	s.mu.Unlock()
	sv.gate.Lock()
	defer sv.gate.Unlock()
	if err := fence(); err != nil {
		return err
	}
	sv.fence.Raise(epoch)
	return nil
}

// Drop stops serving replicaID, so that the node can delete it or open it
// itself: it waits for the requests running on it (a request blocked in
// the replica blocks Drop too), closes it if it is an io.Closer and
// returns that error. Connections still bound to it stay open, and every
// later request on them fails with an error wrapping ErrDropped. A later
// Hello naming replicaID opens it afresh. Dropping a replica that is not
// being served does nothing.
func (s *Server) Drop(replicaID string) error {
	s.mu.Lock()
	sv := s.replicas[replicaID]
	if sv == nil {
		s.mu.Unlock()
		return nil
	}
	delete(s.replicas, replicaID)
	s.busy[replicaID]++ // not reopened before it is closed
	s.mu.Unlock()
	defer s.unbusy(replicaID)

	sv.gate.Lock()
	defer sv.gate.Unlock()
	sv.dropped = true
	s.log.Info("remote: replica dropped", "replica", replicaID)
	if c, ok := sv.rep.(io.Closer); ok {
		if err := c.Close(); err != nil {
			return fmt.Errorf("remote: drop replica %s: close: %w", replicaID, err)
		}
	}
	return nil
}

func (s *Server) unbusy(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[id]--; s.busy[id] <= 0 {
		delete(s.busy, id)
	}
}

// Remove stops serving replica id (Drop) and runs del, with no client
// opening the replica again in between: for deleting it. A client naming
// it meanwhile is refused with replica.ErrInUse.
func (s *Server) Remove(id string, del func() error) error {
	s.mu.Lock()
	s.busy[id]++
	s.mu.Unlock()
	defer s.unbusy(id)
	dropErr := s.Drop(id)
	if err := del(); err != nil {
		return errors.Join(err, dropErr)
	}
	if dropErr != nil {
		s.log.Warn("remote: replica removed, but closing it failed", "replica", id, "err", dropErr)
	}
	return nil
}

// sconn is one client connection.
type sconn struct {
	s    *Server
	conn net.Conn
	sv   *served
	w    *frameWriter // sends responses, batching those ready together
}

func (s *Server) serveConn(conn net.Conn) {
	defer conn.Close()
	addr := conn.RemoteAddr().String()
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	conn, err := s.handshake(conn)
	if err != nil {
		s.log.Warn("remote: refused connection", "remote", addr, "err", err)
		return
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	hello, err := ReadFrame(br)
	var ve *VersionError
	if errors.As(err, &ve) {
		// Refused in the client's version, so that it can read why.
		s.log.Warn("remote: refused a client", "remote", addr, "err", err)
		f := errorReply(&Frame{Op: OpHello, ID: ve.ID}, fmt.Errorf("replica server: %w", err))
		hdr := make([]byte, HeaderSize)
		encodeHeaderAs(hdr, f, ve.Got)
		conn.Write(append(hdr, f.Payload...))
		return
	}
	if err != nil {
		s.log.Warn("remote: bad hello", "remote", addr, "err", err)
		return
	}
	c := &sconn{s: s, conn: conn, w: newFrameWriter(conn, writeTimeout)}
	if hello.Op != OpHello {
		c.reply(errorReply(hello, fmt.Errorf("first request is %v, want hello", hello.Op)))
		return
	}
	if hello.ReplicaID == "" {
		c.reply(errorReply(hello, errors.New("hello names no replica")))
		return
	}
	c.sv, err = s.replica(hello.ReplicaID)
	if err != nil {
		s.log.Warn("remote: cannot open replica", "remote", addr, "replica", hello.ReplicaID, "err", err)
		c.reply(errorReply(hello, err))
		return
	}
	if err := c.reply(c.serve(hello)); err != nil {
		return
	}
	s.log.Debug("remote: client connected", "remote", addr, "replica", hello.ReplicaID, "epoch", hello.Epoch)
	conn.SetDeadline(time.Time{})

	sem := make(chan struct{}, maxInFlight)
	var reqs sync.WaitGroup
	defer func() {
		conn.Close() // answers still being written fail rather than wait for a dead peer
		reqs.Wait()
	}()
	for {
		req, err := ReadFrame(br)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log.Warn("remote: connection failed", "remote", addr, "replica", hello.ReplicaID, "err", err)
			}
			return
		}
		if err := c.check(req); err != nil {
			c.reply(errorReply(req, err))
			continue
		}
		sem <- struct{}{}
		reqs.Go(func() {
			defer func() { <-sem }()
			if err := c.reply(c.serve(req)); err != nil {
				conn.Close() // the reader stops too
			}
		})
	}
}

// reply sends one response.
func (c *sconn) reply(f *Frame) error {
	return c.w.send(f)
}

// check refuses a request that does not belong on c.
func (c *sconn) check(req *Frame) error {
	if req.ReplicaID != "" && req.ReplicaID != c.sv.id {
		return fmt.Errorf("connection serves replica %s, not %s", c.sv.id, req.ReplicaID)
	}
	return nil
}

// serve runs one request against the replica and returns its response.
func (c *sconn) serve(req *Frame) *Frame {
	sv := c.sv
	if req.Op == OpFence {
		sv.gate.Lock()
		if sv.dropped {
			sv.gate.Unlock()
			return errorReply(req, fmt.Errorf("replica %s: %w", sv.id, ErrDropped))
		}
		old := sv.fence.Epoch()
		if err := sv.rep.Fence(req.Epoch); err != nil {
			sv.gate.Unlock()
			return errorReply(req, fmt.Errorf("replica %s: fence: %w", sv.id, err))
		}
		e := sv.fence.Raise(req.Epoch)
		sv.gate.Unlock()
		if e != old {
			c.s.log.Info("remote: replica fenced", "replica", sv.id, "epoch", e, "previous", old, "by", c.conn.RemoteAddr().String())
		}
		return &Frame{Op: req.Op, ID: req.ID, Epoch: e}
	}
	sv.gate.RLock()
	defer sv.gate.RUnlock()
	if sv.dropped {
		return errorReply(req, fmt.Errorf("replica %s: %w", sv.id, ErrDropped))
	}
	if err := sv.fence.Admit(req.Epoch); err != nil {
		r := errorReply(req, fmt.Errorf("replica %s: %v: %w", sv.id, req.Op, err))
		r.Epoch = sv.fence.Epoch()
		return r
	}
	resp := &Frame{Op: req.Op, ID: req.ID, Epoch: sv.fence.Epoch()}
	var err error
	switch req.Op {
	case OpHello:
		resp.Length = sv.rep.Size()
	case OpRead:
		if req.Length < 0 || req.Length > MaxIO {
			err = fmt.Errorf("read of %d bytes, at most %d per request", req.Length, MaxIO)
			break
		}
		buf := make([]byte, req.Length)
		_, err = sv.rep.ReadAt(buf, req.Offset)
		var ce *block.ChecksumError
		if errors.As(err, &ce) {
			c.s.log.Warn("remote: checksum mismatch", "replica", sv.id, "offsets", ce.Offsets)
			resp.Status = StatusChecksum
			resp.Payload = encodeOffsets(buf, ce.Offsets)
			return resp
		}
		resp.Payload = buf
	case OpWrite:
		_, err = sv.rep.WriteAt(req.Payload, req.Offset)
	case OpFlush:
		err = sv.rep.Flush()
	case OpDiscard:
		err = sv.rep.Discard(req.Offset, req.Length)
	case OpRepair:
		err = sv.rep.Repair(req.Offset, req.Payload)
	case OpSnapshot:
		err = sv.rep.Snapshot(string(req.Payload))
	case OpDeleteSnapshot:
		err = sv.rep.DeleteSnapshot(string(req.Payload))
	case OpResize:
		if err = sv.rep.Resize(req.Length); err == nil {
			resp.Length = sv.rep.Size()
		}
	default:
		err = fmt.Errorf("unknown op %v", req.Op)
	}
	if err != nil {
		return errorReply(req, err)
	}
	return resp
}

// errorReply is the response to req failing with err.
func errorReply(req *Frame, err error) *Frame {
	r := &Frame{Op: req.Op, ID: req.ID, Status: statusOf(err)}
	var ce *block.ChecksumError
	if r.Status == StatusChecksum && errors.As(err, &ce) {
		r.Payload = encodeOffsets(nil, ce.Offsets)
		return r
	}
	msg := err.Error()
	if len(msg) > maxErrText {
		msg = msg[:maxErrText]
	}
	r.Payload = []byte(msg)
	return r
}

func statusOf(err error) Status {
	var ce *block.ChecksumError
	switch {
	case errors.As(err, &ce) && len(ce.Offsets) > 0 && len(ce.Offsets) <= MaxPayload/8:
		return StatusChecksum
	case errors.Is(err, ErrFenced):
		return StatusFenced
	case errors.Is(err, block.ErrUnaligned):
		return StatusUnaligned
	case errors.Is(err, block.ErrOutOfRange):
		return StatusOutOfRange
	case errors.Is(err, replica.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		return StatusNotFound
	case errors.Is(err, replica.ErrExists):
		return StatusExists
	case errors.Is(err, replica.ErrInUse):
		return StatusInUse
	case errors.Is(err, ErrDropped):
		return StatusDropped
	case errors.Is(err, errors.ErrUnsupported):
		return StatusNoSupport
	}
	return StatusError
}
