package kafka

// The guard stands between the network and kfake. kfake trusts the frame
// it reads: it allocates whatever the 4-byte size prefix claims before
// reading the body (a negative size becomes 4 GiB), and it panics, taking
// the whole process down, on an API key kmsg does not know
// (kmsg.RequestForKey returns nil). The guard wraps every connection kfake
// accepts and reads each request's fixed-offset header (size int32, API
// key int16, API version int16, correlation id int32) before kfake sees a
// byte of it, then does what Apache Kafka's SocketServer does with it:
//
//   - A size below zero or above socket.request.max.bytes (default 100 MiB):
//     NetworkReceive throws InvalidReceiveException and the processor closes
//     the connection. So does the guard (Config.MaxRequestBytes). A size too
//     small to hold the request header (API key, version, correlation id,
//     client id length) fails RequestHeader.parse in Kafka, which closes the
//     connection too.
//   - An API key the broker does not serve: RequestHeader.parse throws
//     InvalidRequestException("Unknown API key") (or the listener's
//     isApiEnabled check fails) and the connection is closed.
//   - A version of a served key outside the broker's range: the request does
//     not parse (or is not enabled) and the connection is closed.
//   - Except ApiVersions: a client sends ApiVersions at the highest version
//     it knows, so Kafka accepts any version of it (ApiKeys.isVersionEnabled
//     special-cases API_VERSIONS), does not parse the body of an unsupported
//     one (RequestContext.parseRequest) and answers with an ApiVersions v0
//     response carrying UNSUPPORTED_VERSION (35) and, since KIP-511, the
//     ApiVersions key's own version range, from which the client retries.
//     The guard discards the body and hands kfake an ApiVersions request
//     one version above the range kfake serves, built with kmsg, which
//     kfake answers with exactly that response. Having kfake answer (rather
//     than writing the response from the guard) keeps responses in request
//     order on a connection with earlier requests still in flight.
//
// "Served" is what kfake itself advertises: the guard asks it once, over an
// in-process pipe, at start (probeAPIs). The guard holds one header per
// connection and streams the body through as kfake reads it: it never
// buffers a request. Refusing closes only that connection.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DefaultMaxRequestBytes is the largest request the broker accepts unless
// told otherwise: Apache Kafka's socket.request.max.bytes default.
const DefaultMaxRequestBytes = 100 << 20

const (
	// headerLen is what the guard reads of every request before passing
	// it on: size, API key, API version, correlation id.
	headerLen = 12
	// minRequestSize is the smallest size a request can claim: API key,
	// API version, correlation id and the client id's length (every API
	// the broker serves has a client id in its header).
	minRequestSize = 10
	// apiVersionsKey is ApiVersions' API key.
	apiVersionsKey = 18
)

// frameHeader is the fixed-offset start of a request frame.
type frameHeader struct {
	Size    int32 // bytes after the size itself
	Key     int16
	Version int16
	Corr    int32
}

// parseHeader reads a request's header from the first headerLen bytes of
// b; ok is false if b is shorter.
func parseHeader(b []byte) (h frameHeader, ok bool) {
	if len(b) < headerLen {
		return frameHeader{}, false
	}
	return frameHeader{
		Size:    int32(binary.BigEndian.Uint32(b[0:4])),
		Key:     int16(binary.BigEndian.Uint16(b[4:6])),
		Version: int16(binary.BigEndian.Uint16(b[6:8])),
		Corr:    int32(binary.BigEndian.Uint32(b[8:12])),
	}, true
}

// verdict is what the guard does with a request.
type verdict uint8

const (
	// forward passes the request to kfake as it is.
	forward verdict = iota
	// closeSize: a size below minRequestSize (negative included) or above
	// the maximum. The connection is closed.
	closeSize
	// closeKey: an API key the broker does not serve. Closed.
	closeKey
	// closeVersion: a version of a served key (not ApiVersions) outside
	// the broker's range. Closed.
	closeVersion
	// unsupportedApiVersions: an ApiVersions version the broker does not
	// serve, answered with a v0 UNSUPPORTED_VERSION response.
	unsupportedApiVersions
)

func (v verdict) String() string {
	switch v {
	case forward:
		return "forward"
	case closeSize:
		return "request size out of range"
	case closeKey:
		return "unknown API key"
	case closeVersion:
		return "unsupported API version"
	case unsupportedApiVersions:
		return "unsupported ApiVersions version"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// versionRange is the versions of an API the broker serves.
type versionRange struct{ Min, Max int16 }

// apiTable is the APIs the broker serves, by key.
type apiTable map[int16]versionRange

// sizeOK says whether a request may claim size bytes; it is decided from
// the size prefix alone, so a huge claim is refused without waiting for
// the rest of the header.
func sizeOK(size, maxSize int32) bool {
	return size >= minRequestSize && size <= maxSize
}

// decide is the guard's decision on a request header: a pure function of
// the header, the size limit and the served APIs.
func decide(h frameHeader, maxSize int32, apis apiTable) verdict {
	if !sizeOK(h.Size, maxSize) {
		return closeSize
	}
	r, ok := apis[h.Key]
	switch {
	case !ok:
		return closeKey
	case h.Version >= r.Min && h.Version <= r.Max:
		return forward
	case h.Key == apiVersionsKey:
		return unsupportedApiVersions
	default:
		return closeVersion
	}
}

// appendRequest appends req as a request frame (size, header v1 or v2 with
// a null client id, body) with correlation id corr.
func appendRequest(dst []byte, req kmsg.Request, corr int32) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(req.Key()))
	dst = binary.BigEndian.AppendUint16(dst, uint16(req.GetVersion()))
	dst = binary.BigEndian.AppendUint32(dst, uint32(corr))
	dst = append(dst, 0xff, 0xff) // null client id
	if req.IsFlexible() {
		dst = append(dst, 0) // no tagged fields
	}
	dst = req.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// unsupportedApiVersionsRequest is the request handed to kfake in place of
// an ApiVersions request at a version it does not serve: one version above
// its range, which kfake answers with a v0 UNSUPPORTED_VERSION response
// listing its ApiVersions range, as Apache Kafka does.
func unsupportedApiVersionsRequest(apis apiTable, corr int32) []byte {
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = math.MaxInt16
	if r, ok := apis[apiVersionsKey]; ok && r.Max < math.MaxInt16 {
		req.Version = r.Max + 1
	}
	return appendRequest(nil, req, corr)
}

// errRefused ends a connection the guard refused a request on.
var errRefused = errors.New("kafka guard: request refused, connection closed")

// guard holds what every guarded connection shares.
type guard struct {
	maxSize int32
	log     *slog.Logger
	// ready is closed once apis is set (after the probe, or its failure:
	// then apis is empty and every request is refused). Connections wait
	// for it before their first request.
	ready chan struct{}
	apis  apiTable

	forwarded, refused atomic.Int64
}

func newGuard(maxSize int32, log *slog.Logger) *guard {
	return &guard{maxSize: maxSize, log: log, ready: make(chan struct{})}
}

// setAPIs publishes the served APIs; called once.
func (g *guard) setAPIs(apis apiTable) {
	g.apis = apis
	close(g.ready)
}

// guardListener is the listener kfake accepts from: it wraps every
// connection in a guardConn and reports the advertised address.
type guardListener struct {
	net.Listener
	addr net.Addr
	g    *guard
	// first holds the in-process connection the guard probes kfake
	// through; the first Accept hands it to kfake unguarded.
	first chan net.Conn
}

func newGuardListener(ln net.Listener, addr net.Addr, g *guard, probe net.Conn) *guardListener {
	l := &guardListener{Listener: ln, addr: addr, g: g, first: make(chan net.Conn, 1)}
	l.first <- probe
	return l
}

func (l *guardListener) Addr() net.Addr { return l.addr }

func (l *guardListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.first:
		return c, nil
	default:
	}
	var wait time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			return &guardConn{Conn: c, g: l.g}, nil
		}
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		// kfake stops listening for good on any Accept error; one that
		// passes (out of file descriptors, a connection aborted before it
		// was accepted) must not take the broker off the network.
		wait = min(max(2*wait, 5*time.Millisecond), time.Second)
		l.g.log.Warn("kafka broker: accept failed, retrying", "err", err, "retry_in", wait)
		time.Sleep(wait)
	}
}

// guardConn is a client connection as kfake sees it: Read hands kfake the
// client's requests one by one once their header has passed decide.
type guardConn struct {
	net.Conn
	g    *guard
	hdr  [headerLen]byte
	out  []byte // bytes to give kfake before reading on: a checked header or a substituted request
	body int64  // bytes of the current request's body still to pass through
	err  error  // once set, every Read returns it
}

func (c *guardConn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if len(c.out) == 0 && c.body == 0 {
		if err := c.next(); err != nil {
			c.err = err
			return 0, err
		}
	}
	if len(c.out) > 0 {
		n := copy(p, c.out)
		c.out = c.out[n:]
		return n, nil
	}
	if int64(len(p)) > c.body {
		p = p[:c.body]
	}
	n, err := c.Conn.Read(p)
	c.body -= int64(n)
	if err != nil {
		c.err = err
	}
	return n, err
}

// next reads and judges the next request's header.
func (c *guardConn) next() error {
	if _, err := io.ReadFull(c.Conn, c.hdr[:4]); err != nil {
		return err
	}
	if size := int32(binary.BigEndian.Uint32(c.hdr[:4])); !sizeOK(size, c.g.maxSize) {
		c.refuse(closeSize, frameHeader{Size: size}, false)
		return errRefused
	}
	if _, err := io.ReadFull(c.Conn, c.hdr[4:]); err != nil {
		return err
	}
	h, _ := parseHeader(c.hdr[:])
	<-c.g.ready
	switch v := decide(h, c.g.maxSize, c.g.apis); v {
	case forward:
		c.out = c.hdr[:]
		c.body = int64(h.Size) - (headerLen - 4)
	case unsupportedApiVersions:
		if _, err := io.CopyN(io.Discard, c.Conn, int64(h.Size)-(headerLen-4)); err != nil {
			return err
		}
		c.g.log.Debug("kafka broker: unsupported ApiVersions version, answering UNSUPPORTED_VERSION",
			"client", c.RemoteAddr().String(), "api_version", h.Version, "correlation_id", h.Corr)
		c.out = unsupportedApiVersionsRequest(c.g.apis, h.Corr)
	default:
		c.refuse(v, h, true)
		return errRefused
	}
	c.g.forwarded.Add(1)
	return nil
}

func (c *guardConn) refuse(v verdict, h frameHeader, full bool) {
	c.g.refused.Add(1)
	args := []any{"client", c.RemoteAddr().String(), "reason", v.String(), "size", h.Size, "max_size", c.g.maxSize}
	if full {
		args = append(args, "api_key", h.Key, "api", kmsg.NameForKey(h.Key), "api_version", h.Version, "correlation_id", h.Corr)
	}
	c.g.log.Warn("kafka broker: refused request, closing connection", args...)
}

// probeAPIs asks kfake, over conn, which APIs and versions it serves.
func probeAPIs(conn net.Conn) (apiTable, error) {
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return nil, err
	}
	const corr = 1
	req := kmsg.NewPtrApiVersionsRequest() // v0: no body, answered by any broker
	if _, err := conn.Write(appendRequest(nil, req, corr)); err != nil {
		return nil, fmt.Errorf("asking the broker its API versions: %w", err)
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		return nil, fmt.Errorf("reading the broker's API versions: %w", err)
	}
	n := binary.BigEndian.Uint32(size[:])
	if n < 4 || n > 1<<20 {
		return nil, fmt.Errorf("broker's API versions answer of %d bytes", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, fmt.Errorf("reading the broker's API versions: %w", err)
	}
	if got := int32(binary.BigEndian.Uint32(buf)); got != corr {
		return nil, fmt.Errorf("broker's API versions answer has correlation id %d, want %d", got, corr)
	}
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	if err := resp.ReadFrom(buf[4:]); err != nil {
		return nil, fmt.Errorf("broker's API versions answer: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, fmt.Errorf("broker's API versions answer: %w", err)
	}
	apis := apiTable{}
	for _, k := range resp.ApiKeys {
		if k.MinVersion < 0 || k.MaxVersion < k.MinVersion || kmsg.RequestForKey(k.ApiKey) == nil {
			continue // never forward what kmsg cannot make a request of
		}
		apis[k.ApiKey] = versionRange{k.MinVersion, k.MaxVersion}
	}
	if _, ok := apis[apiVersionsKey]; !ok {
		return nil, errors.New("broker does not list ApiVersions among its APIs")
	}
	return apis, nil
}
