package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/replica"
)

// storeServer serves the replicas of a fresh store on t.TempDir(), with
// admin operations on it.
func storeServer(t *testing.T) (*replica.Store, *Server, string, *syncBuf) {
	t.Helper()
	st, err := replica.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, addr, logs := serve(t, secret, openFrom(st))
	srv.SetStore(ReplicaStore(st))
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

func dialAdmin(t testing.TB, addr string, timeout time.Duration) *Admin {
	t.Helper()
	a, err := (&Dialer{Timeout: timeout}).DialAdmin(context.Background(), addr, secret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func TestAdminCreateCloneDelete(t *testing.T) {
	const size = 1 << 20
	st, _, addr, logs := storeServer(t)
	a := dialAdmin(t, addr, 0)

	if err := a.Create("a", size); err != nil {
		t.Fatal(err)
	}
	if !st.Exists("a") {
		t.Fatal("created replica not in the store")
	}
	ca := dial(t, addr, "a", 1, 0)
	if ca.Size() != size {
		t.Fatalf("size %d, want %d", ca.Size(), size)
	}
	before := fill("before", 0, 4)
	if _, err := ca.WriteAt(before, 0); err != nil {
		t.Fatal(err)
	}
	if got := readBack(t, ca, 0, 4); !bytes.Equal(got, before) {
		t.Fatal("created replica reads back other data")
	}
	if err := ca.Snapshot("s1"); err != nil {
		t.Fatal(err)
	}
	after := fill("after", 0, 4)
	if _, err := ca.WriteAt(after, 0); err != nil {
		t.Fatal(err)
	}

	// The clone sees the snapshot, not what was written after it, and
	// writes to it do not show in the source.
	if err := a.Clone("b", "a", "s1"); err != nil {
		t.Fatal(err)
	}
	cb := dial(t, addr, "b", 1, 0)
	if cb.Size() != size {
		t.Fatalf("clone size %d, want %d", cb.Size(), size)
	}
	if got := readBack(t, cb, 0, 4); !bytes.Equal(got, before) {
		t.Fatal("clone does not hold the snapshot's data")
	}
	if _, err := cb.WriteAt(fill("clone", 0, 1), 0); err != nil {
		t.Fatal(err)
	}
	if got := readBack(t, ca, 0, 4); !bytes.Equal(got, after) {
		t.Fatal("source changed by a write to its clone")
	}

	// Errors come back matchable.
	for name, tc := range map[string]struct {
		err  error
		want error
	}{
		"create existing":       {a.Create("a", size), replica.ErrExists},
		"clone onto existing":   {a.Clone("a", "b", "s1"), replica.ErrExists},
		"clone missing source":  {a.Clone("c", "nope", "s1"), replica.ErrNotFound},
		"clone missing snap":    {a.Clone("c", "a", "nope"), replica.ErrNotFound},
		"create unaligned size": {a.Create("c", size+1), block.ErrUnaligned},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", name, tc.err, tc.want)
		}
	}
	if err := a.Create("../evil", size); err == nil || !strings.Contains(err.Error(), "invalid id") {
		t.Errorf("create with a bad ID: %v", err)
	}
	if err := a.Create("", size); err == nil {
		t.Error("create with an empty ID")
	}
	if err := a.Clone("c", "", "s1"); err == nil {
		t.Error("clone from an empty ID")
	}
	if st.Exists("c") {
		t.Fatal("failed creates left replica c")
	}

	// Delete while a client uses the replica: the server drops it first,
	// and the client's next calls fail clearly.
	if err := a.Delete("b"); err != nil {
		t.Fatal(err)
	}
	if st.Exists("b") {
		t.Fatal("deleted replica still in the store")
	}
	if _, err := cb.ReadAt(make([]byte, bs), 0); !errors.Is(err, ErrDropped) {
		t.Fatalf("read after delete: %v, want ErrDropped", err)
	}
	if _, err := cb.WriteAt(make([]byte, bs), 0); !errors.Is(err, ErrDropped) || !strings.Contains(err.Error(), "replica b") {
		t.Fatalf("write after delete: %v, want ErrDropped naming the replica", err)
	}
	if err := cb.Fence(9); !errors.Is(err, ErrDropped) {
		t.Fatalf("fence after delete: %v, want ErrDropped", err)
	}
	if _, err := Dial(context.Background(), addr, secret, "b", 1); !errors.Is(err, replica.ErrNotFound) {
		t.Fatalf("dial of a deleted replica: %v, want ErrNotFound", err)
	}
	// Deleting the clone left the source and its snapshot intact.
	if got := readBack(t, ca, 0, 4); !bytes.Equal(got, after) {
		t.Fatal("source changed by deleting its clone")
	}
	if err := a.Delete("b"); err != nil {
		t.Fatalf("deleting a deleted replica: %v", err)
	}

	// The ID can be reused.
	if err := a.Create("b", 2*size); err != nil {
		t.Fatal(err)
	}
	cb2 := dial(t, addr, "b", 1, 0)
	if cb2.Size() != 2*size {
		t.Fatalf("recreated size %d", cb2.Size())
	}
	if got := readBack(t, cb2, 0, 1); !bytes.Equal(got, make([]byte, bs)) {
		t.Fatal("recreated replica is not empty")
	}

	// A replica the node itself has open is in use: Delete says so.
	local, err := st.Create("local", size)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Delete("local"); !errors.Is(err, replica.ErrInUse) {
		t.Fatalf("delete of a replica open locally: %v, want ErrInUse", err)
	}
	if _, err := Dial(context.Background(), addr, secret, "local", 1); !errors.Is(err, replica.ErrInUse) {
		t.Fatalf("dial of a replica open locally: %v, want ErrInUse", err)
	}
	local.Close()
	if err := a.Delete("local"); err != nil {
		t.Fatal(err)
	}

	for _, msg := range []string{"replica created", "replica cloned", "replica dropped", "replica deleted"} {
		if !strings.Contains(logs.String(), msg) {
			t.Errorf("%q not logged", msg)
		}
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

// blockingStore is a Store whose operations wait for release.
type blockingStore struct {
	Store
	entered chan string
	release chan struct{}
}

func (b *blockingStore) Create(id string, size int64) error {
	b.entered <- "create"
	<-b.release
	return b.Store.Create(id, size)
}

func (b *blockingStore) Delete(id string) error {
	b.entered <- "delete"
	<-b.release
	return b.Store.Delete(id)
}

// TestDeleteKeepsReplicaClosed: between the drop and the store's delete,
// a client cannot open the replica again.
func TestDeleteKeepsReplicaClosed(t *testing.T) {
	st, srv, addr, _ := storeServer(t)
	bst := &blockingStore{Store: ReplicaStore(st), entered: make(chan string, 1), release: make(chan struct{})}
	srv.SetStore(bst)
	r, err := st.Create("v", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	c := dial(t, addr, "v", 1, 0)
	a := dialAdmin(t, addr, 0)
	deleted := make(chan error, 1)
	go func() { deleted <- a.Delete("v") }()
	if op := <-bst.entered; op != "delete" {
		t.Fatalf("store op %s", op)
	}
	if _, err := Dial(context.Background(), addr, secret, "v", 1); !errors.Is(err, replica.ErrInUse) || !strings.Contains(err.Error(), "being dropped or deleted") {
		t.Fatalf("dial during delete: %v, want ErrInUse", err)
	}
	if err := c.Flush(); !errors.Is(err, ErrDropped) {
		t.Fatalf("flush during delete: %v, want ErrDropped", err)
	}
	close(bst.release)
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	if st.Exists("v") {
		t.Fatal("replica not deleted")
	}
}

func TestAdminTimeout(t *testing.T) {
	st, srv, addr, _ := storeServer(t)
	bst := &blockingStore{Store: ReplicaStore(st), entered: make(chan string, 1), release: make(chan struct{})}
	defer close(bst.release)
	srv.SetStore(bst)
	const timeout = 200 * time.Millisecond
	a := dialAdmin(t, addr, timeout)
	start := time.Now()
	if err := a.Create("v", 1<<20); !errors.Is(err, ErrTimeout) {
		t.Fatalf("create on a hung store: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > timeout+time.Second {
		t.Fatalf("timed out after %v", d)
	}
	if err := a.Delete("v"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("later call: %v, want ErrTimeout at once", err)
	}
	a.Close()
	if err := a.Create("w", 1<<20); !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrClientClosed) {
		t.Fatalf("call after close: %v", err)
	}
}

func TestAdminNoStore(t *testing.T) {
	_, r := newReplica(t, "v", 1<<20)
	_, addr, _ := serve(t, secret, only("v", r))
	a := dialAdmin(t, addr, 0)
	err := a.Create("x", 1<<20)
	if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "no replica store") {
		t.Fatalf("create without a store: %v, want ErrUnsupported", err)
	}
	if err := a.Delete("v"); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("delete without a store: %v", err)
	}
	// The replica was not dropped.
	c := dial(t, addr, "v", 1, 0)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestAdminConnectionKinds: admin ops go on admin connections only, I/O on
// replica connections only; a misplaced request fails and the connection
// keeps working.
func TestAdminConnectionKinds(t *testing.T) {
	st, _, addr, _ := storeServer(t)
	a := dialAdmin(t, addr, 0)
	if err := a.Create("v", 1<<20); err != nil {
		t.Fatal(err)
	}
	c := dial(t, addr, "v", 1, 0)

	if _, err := c.roundTrip(&Frame{Op: OpDelete, ReplicaID: "v"}); err == nil || !strings.Contains(err.Error(), "admin connection") {
		t.Fatalf("delete on a replica connection: %v", err)
	}
	if _, err := c.roundTrip(&Frame{Op: OpCreate, ReplicaID: "w", Length: 1 << 20}); err == nil {
		t.Fatal("create on a replica connection accepted")
	}
	if !st.Exists("v") || st.Exists("w") {
		t.Fatal("misplaced admin op reached the store")
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}

	for _, f := range []*Frame{
		{Op: OpRead, ReplicaID: "v", Length: bs},
		{Op: OpFence, ReplicaID: "v", Epoch: 5},
		{Op: OpHello, ReplicaID: "v"},
		{Op: OpCreate, Length: 1 << 20},
		{Op: OpClone, ReplicaID: "w", Length: 5, Payload: []byte("v")},
		{Op: OpClone, ReplicaID: "w", Payload: []byte("vs1")},
	} {
		if _, err := a.c.roundTrip(f); err == nil {
			t.Fatalf("%v on an admin connection accepted", f.Op)
		}
	}
	if st.Exists("w") {
		t.Fatal("bad clone created a replica")
	}
	if err := a.Create("w", 1<<20); err != nil {
		t.Fatal(err)
	}
}

func TestAdminWrongSecret(t *testing.T) {
	st, err := replica.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, addr, logs := serve(t, []byte("another-cluster's-secret-0000"), openFrom(st))
	srv.SetStore(ReplicaStore(st))
	_, err = DialAdmin(context.Background(), addr, secret)
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("admin dial with the wrong secret: %v, want ErrAuth", err)
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), "client did not prove the cluster secret") })
	if _, err := DialAdmin(context.Background(), addr, []byte("short")); err == nil {
		t.Fatal("admin dial with a short secret")
	}
	if ids, _ := st.List(); len(ids) != 0 {
		t.Fatalf("store holds %v", ids)
	}
}

// TestStatusSentinels: the errors a server maps to a status come back from
// the client wrapping the same sentinel.
func TestStatusSentinels(t *testing.T) {
	for _, want := range []error{replica.ErrExists, replica.ErrNotFound, replica.ErrInUse, ErrDropped,
		errors.ErrUnsupported, ErrFenced, block.ErrUnaligned, block.ErrOutOfRange} {
		r := errorReply(&Frame{Op: OpDelete, ID: 1}, errors.Join(errors.New("context"), want))
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

// TestAdminJoin: a join reaches the server's joiner with the node ID and
// request, and its answer or error comes back; without a joiner it is
// refused.
func TestAdminJoin(t *testing.T) {
	_, srv, addr, _ := storeServer(t)
	a := dialAdmin(t, addr, 0)
	if _, err := a.Join("n2", []byte("hi")); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("join without a joiner: %v, want ErrUnsupported", err)
	}
	srv.SetJoiner(func(id string, req []byte) ([]byte, error) {
		if id == "bad" {
			return nil, errors.New("node bad is not welcome")
		}
		return append([]byte(id+":"), req...), nil
	})
	got, err := a.Join("n2", []byte("hi"))
	if err != nil || string(got) != "n2:hi" {
		t.Fatalf("join: %q, %v", got, err)
	}
	if _, err := a.Join("bad", nil); err == nil || !strings.Contains(err.Error(), "not welcome") {
		t.Fatalf("refused join: %v", err)
	}
	if _, err := a.Join("", nil); err == nil {
		t.Fatal("join with no node ID accepted")
	}
}

func TestAdminResizeVolume(t *testing.T) {
	_, srv, addr, _ := storeServer(t)
	a := dialAdmin(t, addr, 0)
	if err := a.ResizeVolume("v1", 1<<30); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("resize without a resizer: %v, want ErrUnsupported", err)
	}
	var got []string
	srv.SetVolumeResizer(func(_ context.Context, vol string, size int64) error {
		if vol == "held" {
			return errors.New("volume held is attached on node c now")
		}
		got = append(got, fmt.Sprintf("%s:%d", vol, size))
		return nil
	})
	if err := a.ResizeVolume("v1", 1<<30); err != nil || fmt.Sprint(got) != "[v1:1073741824]" {
		t.Fatalf("resize: %v, resizer saw %v", err, got)
	}
	if err := a.ResizeVolume("held", 1<<30); err == nil || !strings.Contains(err.Error(), "node c") {
		t.Fatalf("refused resize: %v", err)
	}
	if err := a.ResizeVolume("", 1<<30); err == nil {
		t.Fatal("resize with no volume name accepted")
	}
}
