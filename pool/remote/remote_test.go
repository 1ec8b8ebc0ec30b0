package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/block/blocktest"
	"github.com/ballast-io/ballast/pool/engine"
	"github.com/ballast-io/ballast/pool/replica"
)

const bs = block.Size

var secret = []byte("0123456789abcdef-test-cluster-secret")

// syncBuf is a log sink safe for concurrent use.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serve starts a server on 127.0.0.1:0 serving open, stopped at cleanup.
func serve(t testing.TB, key []byte, open func(string) (Replica, error)) (*Server, string, *syncBuf) {
	t.Helper()
	logs := &syncBuf{}
	srv, err := NewServer(key, open, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, ln.Addr().String(), logs
}

// newReplica creates replica id of size bytes in a fresh store.
func newReplica(t testing.TB, id string, size int64) (*replica.Store, *replica.Replica) {
	t.Helper()
	s, err := replica.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Create(id, size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return s, r
}

// only serves r under its ID and nothing else.
func only(id string, r Replica) func(string) (Replica, error) {
	return func(name string) (Replica, error) {
		if name != id {
			return nil, fmt.Errorf("replica %s: %w", name, replica.ErrNotFound)
		}
		return r, nil
	}
}

func dial(t testing.TB, addr, id string, epoch uint64, timeout time.Duration) *Client {
	t.Helper()
	d := Dialer{Timeout: timeout}
	c, err := d.Dial(context.Background(), addr, secret, id, epoch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// fill returns n blocks whose content identifies tag and block number.
var fill = blocktest.Fill

var readBack = blocktest.Read

func TestRoundTrip(t *testing.T) {
	const size = 16 << 20
	_, r := newReplica(t, "v", size)
	_, addr, _ := serve(t, secret, only("v", r))
	c := dial(t, addr, "v", 1, 0)

	if c.Size() != size {
		t.Fatalf("size %d, want %d", c.Size(), size)
	}
	a := fill("a", 3, 4)
	if n, err := c.WriteAt(a, 3*bs); err != nil || n != len(a) {
		t.Fatalf("write: %d, %v", n, err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := readBack(t, c, 3, 4); !bytes.Equal(got, a) {
		t.Fatal("read through the client differs from what was written")
	}
	if got := readBack(t, r, 3, 4); !bytes.Equal(got, a) {
		t.Fatal("replica holds something else than what was written")
	}

	// Larger than MaxIO: split into pipelined requests.
	big := fill("big", 1000, 3*MaxIO/bs+5)
	if _, err := c.WriteAt(big, 1000*bs); err != nil {
		t.Fatal(err)
	}
	if got := readBack(t, c, 1000, int64(len(big)/bs)); !bytes.Equal(got, big) {
		t.Fatal("big read differs")
	}

	if err := c.Discard(4*bs, 2*bs); err != nil {
		t.Fatal(err)
	}
	got := readBack(t, c, 3, 4)
	want := append(append(bytes.Clone(a[:bs]), make([]byte, 2*bs)...), a[3*bs:]...)
	if !bytes.Equal(got, want) {
		t.Fatal("discarded blocks do not read as zeros")
	}

	if err := c.Snapshot("s1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Snapshot("s1"); !errors.Is(err, replica.ErrExists) {
		t.Fatalf("duplicate snapshot: %v, want ErrExists", err)
	}
	if err := c.DeleteSnapshot("s1"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSnapshot("nope"); !errors.Is(err, replica.ErrNotFound) {
		t.Fatalf("delete missing snapshot: %v, want ErrNotFound", err)
	}

	// The replica grows; the client sees the new size and can write there.
	old := c.Size()
	if err := c.Resize(old + 16*bs); err != nil {
		t.Fatal(err)
	}
	if c.Size() != old+16*bs {
		t.Fatalf("size %d after resize, want %d", c.Size(), old+16*bs)
	}
	grown := fill("grown", old/bs, 16)
	if _, err := c.WriteAt(grown, old); err != nil {
		t.Fatal(err)
	}
	if got := readBack(t, c, old/bs, 16); !bytes.Equal(got, grown) {
		t.Fatal("the grown space does not read back what was written")
	}
	if err := c.Resize(old); err == nil {
		t.Fatal("shrink accepted")
	}

	// Bad requests.
	if _, err := c.WriteAt(make([]byte, 100), 0); !errors.Is(err, block.ErrUnaligned) {
		t.Fatalf("unaligned write: %v", err)
	}
	if _, err := c.ReadAt(make([]byte, bs), c.Size()); !errors.Is(err, block.ErrOutOfRange) {
		t.Fatalf("read past the end: %v", err)
	}
	if n, err := c.ReadAt(nil, 0); n != 0 || err != nil {
		t.Fatalf("empty read: %d, %v", n, err)
	}
	// The server checks too, and the client keeps working after an error.
	resp, err := c.roundTrip(&Frame{Op: OpDiscard, Offset: 1, Length: bs})
	if !errors.Is(err, block.ErrUnaligned) || resp == nil {
		t.Fatalf("unaligned discard sent anyway: %v", err)
	}
	if _, err := c.roundTrip(&Frame{Op: OpRead, Length: MaxIO + bs}); err == nil {
		t.Fatal("oversized read accepted by the server")
	}
	if got := readBack(t, c, 1000, 1); !bytes.Equal(got, big[:bs]) {
		t.Fatal("read after errors differs")
	}

	// Unknown replica.
	if _, err := Dial(context.Background(), addr, secret, "missing", 1); !errors.Is(err, replica.ErrNotFound) {
		t.Fatalf("dial of a missing replica: %v, want ErrNotFound", err)
	}
}

func TestConcurrentWriters(t *testing.T) {
	const writers, per = 16, 64
	_, r := newReplica(t, "v", writers*per*4*bs)
	_, addr, _ := serve(t, secret, only("v", r))
	c := dial(t, addr, "v", 1, 0)

	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range per {
				first := int64((w*per + i) * 4)
				n := int64(1 + (w+i)%4)
				if _, err := c.WriteAt(fill(fmt.Sprint("w", w), first, n), first*bs); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	for w := range writers {
		for i := range per {
			first := int64((w*per + i) * 4)
			n := int64(1 + (w+i)%4)
			want := fill(fmt.Sprint("w", w), first, n)
			if got := readBack(t, r, first, n); !bytes.Equal(got, want) {
				t.Fatalf("writer %d write %d: replica holds other data", w, i)
			}
			if got := readBack(t, c, first, n); !bytes.Equal(got, want) {
				t.Fatalf("writer %d write %d: client reads other data", w, i)
			}
		}
	}
}

// stub is a Replica in memory whose operations can be held back.
type stub struct {
	*block.Mem
	hold func(op string, off int64) // called before each read and write
}

func (s *stub) ReadAt(p []byte, off int64) (int, error) {
	if s.hold != nil {
		s.hold("read", off)
	}
	return s.Mem.ReadAt(p, off)
}

func (s *stub) WriteAt(p []byte, off int64) (int, error) {
	if s.hold != nil {
		s.hold("write", off)
	}
	return s.Mem.WriteAt(p, off)
}

func (s *stub) Repair(off int64, good []byte) error { _, err := s.WriteAt(good, off); return err }
func (s *stub) Snapshot(string) error               { return nil }
func (s *stub) DeleteSnapshot(string) error         { return nil }
func (s *stub) Resize(int64) error                  { return errors.ErrUnsupported }
func (s *stub) Epoch() uint64                       { return 0 }
func (s *stub) Fence(uint64) error                  { return nil }
func (s *stub) Close() error                        { return nil }

func TestOutOfOrderCompletion(t *testing.T) {
	release := make(chan struct{})
	st := &stub{Mem: block.NewMem(1 << 20), hold: func(op string, off int64) {
		if op == "read" && off == 0 {
			<-release
		}
	}}
	st.Mem.WriteAt(fill("x", 0, 2), 0)
	_, addr, _ := serve(t, secret, only("s", st))
	c := dial(t, addr, "s", 1, 0)

	slow := make(chan []byte)
	go func() {
		p := make([]byte, bs)
		if _, err := c.ReadAt(p, 0); err != nil {
			t.Error(err)
		}
		slow <- p
	}()
	// Wait until the slow read is in flight before sending the fast one.
	for {
		c.mu.Lock()
		n := len(c.pending)
		c.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	fast := readBack(t, c, 1, 1) // answered while the first read is held
	select {
	case <-slow:
		t.Fatal("slow read finished before it was released")
	default:
	}
	close(release)
	if got := <-slow; !bytes.Equal(got, fill("x", 0, 1)) {
		t.Fatal("slow read got other data")
	}
	if !bytes.Equal(fast, fill("x", 1, 1)) {
		t.Fatal("fast read got other data")
	}
}

func TestWrongSecret(t *testing.T) {
	_, r := newReplica(t, "v", 1<<20)
	_, addr, logs := serve(t, []byte("another-cluster's-secret-0000"), only("v", r))

	_, err := Dial(context.Background(), addr, secret, "v", 1)
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "did not prove the cluster secret") {
		t.Fatalf("dial with the wrong secret: %v, want ErrAuth", err)
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), "client did not prove the cluster secret") })

	// A server answering with a valid server proof but refusing the client
	// (as a server with this secret but stricter checks would) is reported too.
	refuser := acceptOnce(t, func(conn net.Conn) {
		buf := make([]byte, len(authMagic)+nonceSize)
		io.ReadFull(conn, buf)
		cn, sn := buf[len(authMagic):], make([]byte, nonceSize)
		conn.Write(append(sn, proof(secret, "server", cn, sn)...))
		io.ReadFull(conn, make([]byte, macSize))
		conn.Write([]byte{authRefused})
	})
	_, err = Dial(context.Background(), refuser, secret, "v", 1)
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "server refused") {
		t.Fatalf("dial refused by the server: %v, want ErrAuth", err)
	}

	// Something that is not a Ballast client.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	io.Copy(io.Discard, conn) // the server hangs up
	conn.Close()
	waitFor(t, func() bool { return strings.Contains(logs.String(), "not a Ballast client") })

	if _, err := Dial(context.Background(), addr, []byte("short"), "v", 1); err == nil {
		t.Fatal("dial with a short secret")
	}
	if _, err := NewServer([]byte("short"), only("v", r), nil); err == nil {
		t.Fatal("server with a short secret")
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFencing(t *testing.T) {
	const blocks = 4096
	_, r := newReplica(t, "v", blocks*bs)
	_, addr, logs := serve(t, secret, only("v", r))
	old := dial(t, addr, "v", 4, 0)
	if _, err := old.WriteAt(fill("old", 0, 1), 0); err != nil {
		t.Fatal(err)
	}

	// The old owner writes continuously to blocks of its own while the new
	// owner fences the replica.
	var fenced atomic.Bool
	type result struct {
		blk        int64
		afterFence bool
		err        error
	}
	results := make(chan result, blocks)
	var wg sync.WaitGroup
	next := atomic.Int64{}
	next.Store(1)
	for range 8 {
		wg.Go(func() {
			for {
				b := next.Add(1) - 1
				if b >= blocks/2 {
					return
				}
				after := fenced.Load()
				_, err := old.WriteAt(fill("old", b, 1), b*bs)
				results <- result{b, after, err}
				if after {
					return
				}
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	takeover := dial(t, addr, "v", 5, 0)
	if err := takeover.Fence(5); err != nil {
		t.Fatal(err)
	}
	fenced.Store(true)
	wg.Wait()
	close(results)

	var ok, refused int
	for res := range results {
		got := readBack(t, r, res.blk, 1)
		switch {
		case res.err == nil && res.afterFence:
			t.Fatalf("write to block %d sent after the fence succeeded", res.blk)
		case res.err == nil:
			ok++
			if !bytes.Equal(got, fill("old", res.blk, 1)) {
				t.Fatalf("acknowledged write to block %d not on the replica", res.blk)
			}
		case !errors.Is(res.err, ErrFenced):
			t.Fatalf("write to block %d: %v, want ErrFenced", res.blk, res.err)
		default:
			refused++
			if !bytes.Equal(got, make([]byte, bs)) {
				t.Fatalf("refused write to block %d reached the replica", res.blk)
			}
		}
	}
	t.Logf("%d writes before the fence, %d refused", ok, refused)
	if refused == 0 {
		t.Fatal("no write was refused")
	}

	// Every kind of I/O of the old epoch is refused; the new owner's works.
	if _, err := old.ReadAt(make([]byte, bs), 0); !errors.Is(err, ErrFenced) {
		t.Fatalf("old read: %v", err)
	}
	for name, f := range map[string]func() error{
		"flush":    old.Flush,
		"discard":  func() error { return old.Discard(0, bs) },
		"repair":   func() error { return old.Repair(0, make([]byte, bs)) },
		"snapshot": func() error { return old.Snapshot("x") },
	} {
		if err := f(); !errors.Is(err, ErrFenced) {
			t.Fatalf("old %s: %v, want ErrFenced", name, err)
		}
	}
	if got := readBack(t, takeover, 0, 1); !bytes.Equal(got, fill("old", 0, 1)) {
		t.Fatal("new owner does not see the data written before the fence")
	}
	if _, err := takeover.WriteAt(fill("new", blocks-1, 1), (blocks-1)*bs); err != nil {
		t.Fatal(err)
	}
	// The epoch never goes down, and an old owner cannot reconnect.
	if err := old.Fence(3); err != nil {
		t.Fatal(err)
	}
	if _, err := old.WriteAt(fill("old", 1, 1), bs); !errors.Is(err, ErrFenced) {
		t.Fatalf("old write after Fence(3): %v", err)
	}
	if _, err := Dial(context.Background(), addr, secret, "v", 4); !errors.Is(err, ErrFenced) {
		t.Fatalf("dial at the old epoch: %v, want ErrFenced", err)
	}
	if !strings.Contains(logs.String(), "replica fenced") {
		t.Fatal("fence not logged")
	}
}

// goroutines waits until the goroutine count is back to at most n.
func checkGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serveStub serves st as replica "s" on a loopback port; served gets
// Serve's result once srv is closed.
func serveStub(t *testing.T, st *stub) (*Server, net.Listener, <-chan error) {
	t.Helper()
	srv, err := NewServer(secret, only("s", st), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	return srv, ln, served
}

// TestUnresponsiveServer: a server that stops answering (a partition, a
// hung disk) fails every pending call within the timeout, and later calls
// at once.
func TestUnresponsiveServer(t *testing.T) {
	before := runtime.NumGoroutine()
	release := make(chan struct{})
	st := &stub{Mem: block.NewMem(1 << 20), hold: func(string, int64) { <-release }}
	srv, ln, served := serveStub(t, st)

	const timeout = 300 * time.Millisecond
	c, err := (&Dialer{Timeout: timeout}).Dial(context.Background(), ln.Addr().String(), secret, "s", 1)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			_, err := c.WriteAt(make([]byte, bs), int64(i)*bs)
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; !errors.Is(err, ErrTimeout) {
			t.Fatalf("pending write: %v, want ErrTimeout", err)
		}
	}
	if d := time.Since(start); d > timeout+time.Second {
		t.Fatalf("pending writes failed after %v, timeout %v", d, timeout)
	}
	start = time.Now()
	if err := c.Flush(); !errors.Is(err, ErrTimeout) || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("later call: %v after %v, want ErrTimeout at once", err, time.Since(start))
	}
	c.Close()
	close(release)
	srv.Close()
	<-served
	checkGoroutines(t, before)
}

// TestSuspect: once the client is told the server's node is down, a call
// in flight gets the short time from then, later calls from when they are
// sent, not the timeout; an answer from the server (it is alive after all)
// gives calls their full timeout back.
func TestSuspect(t *testing.T) {
	release := make(chan struct{})
	var slow atomic.Int64 // ns each write waits, unless < 0: until release
	st := &stub{Mem: block.NewMem(1 << 20), hold: func(op string, _ int64) {
		if d := slow.Load(); d < 0 {
			<-release
		} else {
			time.Sleep(time.Duration(d))
		}
	}}
	srv, ln, served := serveStub(t, st)
	defer func() { srv.Close(); <-served }()
	defer close(release)
	dial := func() *Client {
		c, err := Dial(context.Background(), ln.Addr().String(), secret, "s", 1) // 10 s timeout
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	write := func(c *Client) <-chan error {
		errs := make(chan error, 1)
		go func() { _, err := c.WriteAt(make([]byte, bs), 0); errs <- err }()
		return errs
	}

	// A silent server: writes in flight fail the short time after Suspect,
	// not after 10 s.
	slow.Store(-1)
	c := dial()
	var pending []<-chan error
	for range 4 {
		pending = append(pending, write(c))
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	c.Suspect(100 * time.Millisecond)
	for _, errs := range pending {
		if err := <-errs; !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "node is down") {
			t.Fatalf("pending write on a suspected client: %v, want ErrTimeout naming the down node", err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("pending writes failed %v after Suspect, want about 100ms", d)
	}

	// A live but slow server: a write sent well before Suspect still gets
	// the short time counted from Suspect, and its answer lifts it.
	slow.Store(int64(1500 * time.Millisecond))
	c = dial()
	errs := write(c)
	time.Sleep(1200 * time.Millisecond)
	c.Suspect(time.Second)
	if err := <-errs; err != nil {
		t.Fatalf("write answered 0.3 s after Suspect(1s): %v", err)
	}
	if _, err := c.WriteAt(make([]byte, bs), 0); err != nil {
		t.Fatalf("slow write after the server answered: %v, want the full timeout", err)
	}

	// Suspected again and slow: a new call gets only the short time.
	slow.Store(int64(4 * time.Second))
	c.Suspect(500 * time.Millisecond)
	start = time.Now()
	if _, err := c.WriteAt(make([]byte, bs), 0); !errors.Is(err, ErrTimeout) || time.Since(start) > 3*time.Second {
		t.Fatalf("slow write on a suspected client: %v after %v, want ErrTimeout after 0.5 s, not 4 s or 10 s", err, time.Since(start))
	}
}

// TestServerKilled: when the server goes away mid-I/O, pending calls fail
// at once (not after the timeout) and nothing leaks.
func TestServerKilled(t *testing.T) {
	before := runtime.NumGoroutine()
	release := make(chan struct{})
	var held atomic.Int32
	st := &stub{Mem: block.NewMem(1 << 20), hold: func(string, int64) { held.Add(1); <-release }}
	srv, ln, served := serveStub(t, st)
	c, err := (&Dialer{Timeout: 10 * time.Second}).Dial(context.Background(), ln.Addr().String(), secret, "s", 1)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			_, err := c.ReadAt(make([]byte, bs), int64(i)*bs)
			errs <- err
		}()
	}
	waitFor(t, func() bool { return held.Load() == 8 })
	start := time.Now()
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }() // waits for the held requests
	for range 8 {
		if err := <-errs; err == nil || !strings.Contains(err.Error(), "connection lost") {
			t.Fatalf("pending read: %v, want connection lost", err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("pending reads failed after %v", d)
	}
	if _, err := c.WriteAt(make([]byte, bs), 0); err == nil {
		t.Fatal("write after the server died succeeded")
	}
	close(release)
	<-closed
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	c.Close()
	checkGoroutines(t, before)
}

// corrupt flips a byte of block blk in the only layer file of store s.
func corrupt(t *testing.T, s *replica.Store, blk int64) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(s.Dir(), "layers", "*.data"))
	if err != nil || len(files) != 1 {
		t.Fatalf("layer files %v, %v; want one", files, err)
	}
	f, err := os.OpenFile(files[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	f.ReadAt(b[:], blk*bs+100)
	b[0] ^= 0xff
	if _, err := f.WriteAt(b[:], blk*bs+100); err != nil {
		t.Fatal(err)
	}
	f.Sync()
}

func TestChecksumErrorPropagates(t *testing.T) {
	s, r := newReplica(t, "v", 1<<20)
	_, addr, _ := serve(t, secret, only("v", r))
	c := dial(t, addr, "v", 1, 0)
	good := fill("a", 0, 4)
	if _, err := c.WriteAt(good, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	corrupt(t, s, 2)

	p := make([]byte, 4*bs)
	n, err := c.ReadAt(p, 0)
	var ce *block.ChecksumError
	if !errors.As(err, &ce) || len(ce.Offsets) != 1 || ce.Offsets[0] != 2*bs {
		t.Fatalf("read of a corrupt block: %v, want ChecksumError at %d", err, 2*bs)
	}
	if n != len(p) || !bytes.Equal(p[:2*bs], good[:2*bs]) || !bytes.Equal(p[3*bs:], good[3*bs:]) {
		t.Fatal("good blocks of the request were not returned")
	}

	// The engine repairs the remote replica from a local one.
	_, local := newReplica(t, "l", 1<<20)
	if _, err := local.WriteAt(good, 0); err != nil {
		t.Fatal(err)
	}
	e, err := engine.New("vol", []engine.Member{{ID: "remote", Dev: c}, {ID: "local", Dev: local}},
		func(string, error) error { return errors.New("no drop in this test") }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if got := readBack(t, e, 0, 4); !bytes.Equal(got, good) {
		t.Fatal("engine read differs")
	}
	if e.Repairs() != 1 {
		t.Fatalf("%d repairs, want 1", e.Repairs())
	}
	if got := readBack(t, c, 0, 4); !bytes.Equal(got, good) {
		t.Fatal("remote replica not repaired")
	}
}

// BenchmarkWrite4K compares 4 KiB writes at concurrency 16 through the
// client and server over loopback with the same writes on the replica.
func BenchmarkWrite4K(b *testing.B) {
	const conc = 16
	const size = 256 << 20
	run := func(b *testing.B, d block.Device) {
		b.SetBytes(bs)
		var next atomic.Int64
		buf := fill("bench", 0, 1)
		b.ResetTimer()
		var wg sync.WaitGroup
		for range conc {
			wg.Go(func() {
				for {
					i := next.Add(1) - 1
					if i >= int64(b.N) {
						return
					}
					if _, err := d.WriteAt(buf, (i*bs)%size); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	b.Run("replica", func(b *testing.B) {
		_, r := newReplica(b, "v", size)
		run(b, r)
	})
	b.Run("remote", func(b *testing.B) {
		_, r := newReplica(b, "v", size)
		_, addr, _ := serve(b, secret, only("v", r))
		run(b, dial(b, addr, "v", 1, 0))
	})
}

// TestFenceSurvivesRestart fences a replica, restarts its server, and checks
// that the former owner's epoch is still refused: the fence is durable.
func TestFenceSurvivesRestart(t *testing.T) {
	store, r := newReplica(t, "v", 64*bs)
	srv, addr, _ := serve(t, secret, only("v", r))
	owner := dial(t, addr, "v", 5, 0)
	if err := owner.Fence(5); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil { // closes the replica too
		t.Fatal(err)
	}
	_, addr2, _ := serve(t, secret, func(id string) (Replica, error) { return store.Open(id) })
	if _, err := Dial(context.Background(), addr2, secret, "v", 4); !errors.Is(err, ErrFenced) {
		t.Fatalf("dial at epoch 4 after a restart: %v; want ErrFenced", err)
	}
	c := dial(t, addr2, "v", 5, 0)
	if _, err := c.WriteAt(fill("new", 0, 1), 0); err != nil {
		t.Fatalf("the fencing owner's write after the restart: %v", err)
	}
}

// TestFenceReplicaLocally fences a served replica from its own node, as a
// new owner attached there does: a remote client at the old epoch is
// refused from then on, although no Fence request crossed the network.
func TestFenceReplicaLocally(t *testing.T) {
	_, r := newReplica(t, "v", 64*bs)
	srv, addr, _ := serve(t, secret, only("v", r))
	old := dial(t, addr, "v", 1, 0)
	if _, err := old.WriteAt(fill("old", 0, 1), 0); err != nil {
		t.Fatal(err)
	}
	if err := srv.FenceReplica("v", 2, func() error { return r.Fence(2) }); err != nil {
		t.Fatal(err)
	}
	if _, err := old.WriteAt(fill("old", 1, 1), bs); !errors.Is(err, ErrFenced) {
		t.Fatalf("write at the old epoch after a local fence: %v; want ErrFenced", err)
	}
	if r.Epoch() != 2 {
		t.Fatalf("replica epoch %d, want 2 (persisted)", r.Epoch())
	}
	// Not served: the fence goes straight to the replica.
	called := false
	if err := srv.FenceReplica("other", 9, func() error { called = true; return nil }); err != nil || !called {
		t.Fatalf("fence of a replica the server does not serve: called %v, %v", called, err)
	}
}
