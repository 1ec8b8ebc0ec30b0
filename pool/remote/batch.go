package remote

import (
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// frameWriter sends frames on a connection for many goroutines, gathering
// the frames queued while a write is under way into the next single write
// (one writev for many small requests or answers, instead of one each).
// The goroutine that finds no write under way writes for everyone until
// the queue is empty; the others wait for the write that carried theirs.
type frameWriter struct {
	conn    net.Conn
	timeout time.Duration // per write
	// joined: the frames of a batch are copied into one buffer (join,
	// reused: one goroutine writes at a time) and written at once, for a
	// TLS connection, which would make a record of each piece of a
	// vectored write.
	joined bool
	join   []byte

	mu      sync.Mutex
	queue   []pendingFrame
	writing bool
}

// WriteThrougher is a connection that wraps another for reading only (a
// listener read its first bytes to route it, say): writes may go straight
// to the connection WriteThrough returns. A server writes its answers
// there, so that net.Buffers still sends a batch with one writev, which it
// does only on the net package's own connections.
type WriteThrougher interface {
	WriteThrough() net.Conn
}

func newFrameWriter(conn net.Conn, timeout time.Duration) *frameWriter {
	if wt, ok := conn.(WriteThrougher); ok {
		conn = wt.WriteThrough()
	}
	_, joined := conn.(*tls.Conn)
	return &frameWriter{conn: conn, timeout: timeout, joined: joined}
}

type pendingFrame struct {
	f    *Frame
	done chan error // nil for the writer's own frame
}

// send writes f, possibly together with other frames, and returns when the
// write that carried it returned: the connection then no longer references
// f's payload. An encoding error is ErrBadFrame and nothing was written.
func (w *frameWriter) send(f *Frame) error {
	if err := checkEncodable(f); err != nil {
		return err
	}
	w.mu.Lock()
	if w.writing {
		done := make(chan error, 1)
		w.queue = append(w.queue, pendingFrame{f, done})
		w.mu.Unlock()
		return <-done
	}
	w.writing = true
	batch := []pendingFrame{{f: f}}
	var own error
	for len(batch) > 0 {
		w.mu.Unlock()
		err := w.write(batch)
		for _, p := range batch {
			if p.done == nil {
				own = err
			} else {
				p.done <- err
			}
		}
		w.mu.Lock()
		batch, w.queue = w.queue, nil
	}
	w.writing = false
	w.mu.Unlock()
	return own
}

// write sends the frames of batch in one vectored write.
func (w *frameWriter) write(batch []pendingFrame) error {
	bufs := make(net.Buffers, 0, 3*len(batch))
	hdrs := make([]byte, HeaderSize*len(batch))
	for i, p := range batch {
		hdr := hdrs[i*HeaderSize : (i+1)*HeaderSize]
		encodeHeader(hdr, p.f)
		bufs = append(bufs, hdr)
		if p.f.ReplicaID != "" {
			bufs = append(bufs, []byte(p.f.ReplicaID))
		}
		if len(p.f.Payload) > 0 {
			bufs = append(bufs, p.f.Payload)
		}
	}
	w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
	if w.joined {
		w.join = w.join[:0]
		for _, b := range bufs {
			w.join = append(w.join, b...)
		}
		_, err := w.conn.Write(w.join)
		if cap(w.join) > 4*MaxIO {
			w.join = nil // not kept after a rare large batch
		}
		return err
	}
	_, err := bufs.WriteTo(w.conn)
	return err
}
