package cql

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/datastax/go-cassandra-native-protocol/message"
	"github.com/datastax/go-cassandra-native-protocol/primitive"
)

// A client connection: one goroutine reads frames, requests run
// concurrently (drivers pipeline many stream ids on one connection), and
// one writer goroutine sends the responses, coalescing those that are ready
// into one write.

// maxInFlight bounds the requests of one connection running at once; the
// reader stops reading while it is reached.
const maxInFlight = 1024

type conn struct {
	srv       *Server
	r         io.Reader
	w         io.Writer
	closeConn func() // closes the underlying connection
	sess      session

	out      chan *bytes.Buffer // encoded frames; nil asks the writer to finish
	quit     chan struct{}      // closed when the writer has finished
	sem      chan struct{}
	inflight sync.WaitGroup
	started  atomic.Bool
	events   atomic.Bool // REGISTERed for SCHEMA_CHANGE
}

func newConn(srv *Server, r io.Reader, w io.Writer, closeConn func(), local net.Addr) *conn {
	c := &conn{
		srv: srv, r: r, w: w, closeConn: closeConn,
		out:  make(chan *bytes.Buffer, 256),
		quit: make(chan struct{}),
		sem:  make(chan struct{}, maxInFlight),
	}
	c.sess.local = local
	return c
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// serve runs the connection until the peer goes away or the server closes
// it, then waits for its requests and flushes their responses.
func (c *conn) serve() {
	go c.writeLoop()
	c.readLoop()
	c.inflight.Wait()
	c.out <- nil
	<-c.quit
	c.closeConn()
}

// reply encodes a response and queues it for the writer.
func (c *conn) reply(stream int16, msg message.Message) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	encodeResponse(buf, stream, msg)
	c.send(buf)
}

// send queues an encoded frame for the writer.
func (c *conn) send(buf *bytes.Buffer) {
	select {
	case c.out <- buf:
	case <-c.quit:
	}
}

// event queues a server event (stream -1) without blocking the caller.
func (c *conn) event(msg message.Message) {
	if !c.events.Load() {
		return
	}
	buf := new(bytes.Buffer)
	encodeResponse(buf, -1, msg)
	select {
	case c.out <- buf:
	default:
		go func() {
			select {
			case c.out <- buf:
			case <-c.quit:
			}
		}()
	}
}

func (c *conn) writeLoop() {
	defer close(c.quit)
	bw := bufio.NewWriterSize(c.w, 64<<10)
	broken := false
	write := func(b *bytes.Buffer) {
		if !broken {
			if _, err := bw.Write(b.Bytes()); err != nil {
				broken = true
				c.closeConn() // the reader sees it and stops
			}
		}
		if b.Cap() <= 1<<20 {
			bufPool.Put(b)
		}
	}
	for b := range c.out {
		if b == nil {
			if !broken {
				bw.Flush()
			}
			return
		}
		write(b)
	drain:
		for {
			select {
			case b = <-c.out:
				if b == nil {
					if !broken {
						bw.Flush()
					}
					return
				}
				write(b)
			default:
				break drain
			}
		}
		if !broken && bw.Flush() != nil {
			broken = true
			c.closeConn()
		}
	}
}

func (c *conn) readLoop() {
	br := bufio.NewReaderSize(c.r, 64<<10)
	var hb [headerLen]byte
	for {
		if _, err := io.ReadFull(br, hb[:1]); err != nil {
			return
		}
		n := headerSize(hb[0]) // a v1/v2 OPTIONS is only 8 bytes
		if _, err := io.ReadFull(br, hb[1:n]); err != nil {
			return
		}
		h := parseHeader(hb[:n])
		if err := checkHeader(h); err != nil {
			buf := bufPool.Get().(*bytes.Buffer)
			buf.Reset()
			encodeHeaderError(buf, h, err)
			c.send(buf)
			return // cannot resynchronise with this peer
		}
		body, err := readBody(br, int(h.length))
		if err != nil {
			return
		}
		msg, err := decodeRequest(h, body)
		if err != nil {
			c.reply(h.stream, errorMessage(err))
			continue
		}
		c.dispatch(h.stream, msg)
	}
}

// readBody reads n body bytes; large bodies grow with the bytes received
// rather than being allocated up front from the header's claim.
func readBody(r io.Reader, n int) ([]byte, error) {
	if n <= 1<<20 {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	var buf bytes.Buffer
	if _, err := io.CopyN(&buf, r, int64(n)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// dispatch answers connection-level messages in order and runs the others
// concurrently.
func (c *conn) dispatch(stream int16, msg message.Message) {
	switch m := msg.(type) {
	case *message.Options:
		c.reply(stream, &message.Supported{Options: map[string][]string{
			"CQL_VERSION":       {cqlVersion},
			"COMPRESSION":       {},
			"PROTOCOL_VERSIONS": {"4/v4"},
		}})
		return
	case *message.Startup:
		if comp := m.Options["COMPRESSION"]; comp != "" {
			c.reply(stream, errorMessage(newError(codeProtocol, "Unknown compression algorithm: %s (this server supports none)", comp)))
			return
		}
		if v := m.Options["CQL_VERSION"]; v != "" && !strings.HasPrefix(v, "3.") {
			c.reply(stream, errorMessage(newError(codeProtocol, "unsupported CQL_VERSION %q, this server speaks 3.x", v)))
			return
		}
		c.started.Store(true)
		c.reply(stream, &message.Ready{})
		return
	case *message.AuthResponse:
		c.reply(stream, errorMessage(newError(codeProtocol, "unexpected AUTH_RESPONSE: this server does not ask for authentication")))
		return
	}
	if !c.started.Load() {
		c.reply(stream, errorMessage(newError(codeProtocol, "Unexpected message %s, expecting STARTUP or OPTIONS", msg.GetOpCode())))
		return
	}
	if m, ok := msg.(*message.Register); ok {
		for _, t := range m.EventTypes {
			switch t {
			case primitive.EventTypeSchemaChange:
				c.events.Store(true)
			case primitive.EventTypeStatusChange, primitive.EventTypeTopologyChange:
			default:
				c.reply(stream, errorMessage(newError(codeProtocol, "invalid event type %q", t)))
				return
			}
		}
		c.reply(stream, &message.Ready{})
		return
	}
	c.sem <- struct{}{}
	c.inflight.Add(1)
	go func() {
		defer func() {
			<-c.sem
			c.inflight.Done()
		}()
		c.reply(stream, c.srv.eng.handle(&c.sess, msg))
	}()
}
