package remote

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/replica"
)

// storeServer serves the replicas of a fresh store on t.TempDir().
func storeServer(t *testing.T) (*replica.Store, *Server, string, *syncBuf) {
	t.Helper()
	st, err := replica.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, addr, logs := serve(t, secret, openFrom(st))
	return st, srv, addr, logs
}

func openFrom(st *replica.Store) func(string) (Replica, error) {
	return func(id string) (Replica, error) {
		r, err := st.Open(id)
		if err != nil {
			return nil, err
		}
		return r, nil
	}
}

func TestDrop(t *testing.T) {
	const size = 1 << 20
	st, srv, addr, _ := storeServer(t)
	r, err := st.Create("v", size)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	c := dial(t, addr, "v", 1, 0)
	data := fill("v", 0, 2)
	if _, err := c.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}

	// Writers run while the replica is dropped: every write either
	// succeeds or fails with ErrDropped, and none hangs.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				blk := int64(2 + (w*64+i)%200)
				if _, err := c.WriteAt(fill("w", blk, 1), blk*bs); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	if err := srv.Drop("v"); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrDropped) {
			t.Fatalf("write during drop: %v, want ErrDropped", err)
		}
	}
	if err := c.Flush(); !errors.Is(err, ErrDropped) {
		t.Fatalf("flush after drop: %v, want ErrDropped", err)
	}
	if err := srv.Drop("v"); err != nil {
		t.Fatalf("second drop: %v", err)
	}
	if err := srv.Drop("never-served"); err != nil {
		t.Fatalf("drop of a replica not served: %v", err)
	}

	// The replica was closed: the node can open it itself.
	r, err = st.Open("v")
	if err != nil {
		t.Fatalf("open after drop: %v", err)
	}
	if got := readBack(t, r, 0, 2); !bytes.Equal(got, data) {
		t.Fatal("data lost by the drop")
	}
	r.Close()

	// A new client opens it afresh; the old one stays dropped.
	c2 := dial(t, addr, "v", 1, 0)
	if got := readBack(t, c2, 0, 2); !bytes.Equal(got, data) {
		t.Fatal("reopened replica reads other data")
	}
	if _, err := c.ReadAt(make([]byte, bs), 0); !errors.Is(err, ErrDropped) {
		t.Fatalf("old client after reopen: %v, want ErrDropped", err)
	}
}

// TestDropWaitsForRequests: Drop returns only once the requests running on
// the replica are done, so it is never closed under them.
func TestDropWaitsForRequests(t *testing.T) {
	release := make(chan struct{})
	held := make(chan struct{}, 1)
	st := &closingStub{stub: stub{Mem: block.NewMem(1 << 20), hold: func(op string, off int64) {
		if off == 0 {
			held <- struct{}{}
			<-release
		}
	}}}
	srv, addr, _ := serve(t, secret, only("s", st))
	c := dial(t, addr, "s", 1, 0)
	read := make(chan error, 1)
	go func() {
		_, err := c.ReadAt(make([]byte, bs), 0)
		read <- err
	}()
	<-held
	dropped := make(chan error, 1)
	go func() { dropped <- srv.Drop("s") }()
	select {
	case <-dropped:
		t.Fatal("Drop returned while a request was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-read; err != nil {
		t.Fatalf("read running during drop: %v", err)
	}
	if err := <-dropped; err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	closed := st.closed
	st.mu.Unlock()
	if closed != 1 {
		t.Fatalf("replica closed %d times, want 1", closed)
	}
	if _, err := c.ReadAt(make([]byte, bs), bs); !errors.Is(err, ErrDropped) {
		t.Fatalf("read after drop: %v, want ErrDropped", err)
	}
	srv.Close()
	if st.closed != 1 {
		t.Fatalf("dropped replica closed again by Server.Close")
	}
}

type closingStub struct {
	stub
	mu     sync.Mutex
	closed int
}

func (s *closingStub) Close() error {
	s.mu.Lock()
	s.closed++
	s.mu.Unlock()
	return nil
}

// TestRemoveKeepsReplicaClosed: Remove drops the replica, and between the
// drop and the delete no client can open it again.
func TestRemoveKeepsReplicaClosed(t *testing.T) {
	st, srv, addr, _ := storeServer(t)
	r, err := st.Create("v", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	c := dial(t, addr, "v", 1, 0)
	entered, release := make(chan struct{}), make(chan struct{})
	removed := make(chan error, 1)
	go func() {
		removed <- srv.Remove("v", func() error {
			close(entered)
			<-release
			return st.Delete("v")
		})
	}()
	<-entered
	if _, err := Dial(context.Background(), addr, secret, "v", 1); !errors.Is(err, replica.ErrInUse) || !strings.Contains(err.Error(), "being dropped or deleted") {
		t.Fatalf("dial during remove: %v, want ErrInUse", err)
	}
	if err := c.Flush(); !errors.Is(err, ErrDropped) {
		t.Fatalf("flush during remove: %v, want ErrDropped", err)
	}
	close(release)
	if err := <-removed; err != nil {
		t.Fatal(err)
	}
	if st.Exists("v") {
		t.Fatal("replica not deleted")
	}
	if _, err := Dial(context.Background(), addr, secret, "v", 1); !errors.Is(err, replica.ErrNotFound) {
		t.Fatalf("dial of a removed replica: %v, want ErrNotFound", err)
	}
	// A failed delete is returned, and the replica can be served again.
	if r, err = st.Create("w", 1<<20); err != nil {
		t.Fatal(err)
	}
	r.Close()
	dial(t, addr, "w", 1, 0)
	if err := srv.Remove("w", func() error { return errors.New("disk gone") }); err == nil || !strings.Contains(err.Error(), "disk gone") {
		t.Fatalf("failed remove: %v", err)
	}
	dial(t, addr, "w", 1, 0)
}

// TestStatusSentinels: the errors a server maps to a status come back from
// the client wrapping the same sentinel.
func TestStatusSentinels(t *testing.T) {
	for _, want := range []error{replica.ErrExists, replica.ErrNotFound, replica.ErrInUse, ErrDropped,
		errors.ErrUnsupported, ErrFenced, block.ErrUnaligned, block.ErrOutOfRange} {
		r := errorReply(&Frame{Op: OpWrite, ID: 1}, errors.Join(errors.New("context"), want))
		b, err := AppendFrame(nil, r)
		if err != nil {
			t.Fatal(err)
		}
		f, err := ReadFrame(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := statusError(f); !errors.Is(err, want) || !strings.Contains(err.Error(), want.Error()) {
			t.Errorf("%v: came back as %v (status %d)", want, err, f.Status)
		}
	}
}
