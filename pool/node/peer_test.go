package node

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/peer"
	"github.com/ballast-io/ballast/pool/remote"
	"github.com/ballast-io/ballast/pool/replica"
)

var testSecret = []byte("the-cluster-secret-of-test")

// servingNode is a node with one pool and no etcd, serving its replicas
// and its peer service on one loopback port, as a daemon does; stopped
// when the test ends.
func servingNode(t testing.TB) (*Node, string) {
	t.Helper()
	n := bareNode(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- n.ServeReplicas(ln) }()
	t.Cleanup(func() {
		if err := n.srv.Close(); err != nil {
			t.Error(err)
		}
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("ServeReplicas: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("ServeReplicas did not return after the server closed")
		}
	})
	return n, ln.Addr().String()
}

// peerClient is node's client, with the cluster secret sec, of the peer
// service at addr, closed when the test ends.
func peerClient(t *testing.T, sec []byte, node, addr string) *peer.Client {
	t.Helper()
	d, err := peer.NewDialer(sec, node)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := d.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// TestPeerReplicas: another node creates, clones and deletes replicas in
// this node's pool through its peer service, and does I/O on them through
// its replica server, both on the one port.
func TestPeerReplicas(t *testing.T) {
	const size = 1 << 20
	n, addr := servingNode(t)
	pid := n.order[0]
	st := n.pools[pid].store
	pc := peerClient(t, testSecret, "a", addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dial := func(id string) *remote.Client {
		t.Helper()
		c, err := remote.Dial(ctx, addr, testSecret, id, 1)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	read := func(c *remote.Client) []byte {
		t.Helper()
		b := make([]byte, 4*block.Size)
		if _, err := c.ReadAt(b, 0); err != nil {
			t.Fatal(err)
		}
		return b
	}

	if err := pc.CreateReplica(ctx, pid, "a", size); err != nil {
		t.Fatal(err)
	}
	ca := dial("a")
	if ca.Size() != size {
		t.Fatalf("size %d, want %d", ca.Size(), size)
	}
	before := bytes.Repeat([]byte("before.."), 4*block.Size/8)
	if _, err := ca.WriteAt(before, 0); err != nil {
		t.Fatal(err)
	}
	if err := ca.Snapshot("s1"); err != nil {
		t.Fatal(err)
	}
	after := bytes.Repeat([]byte("after..."), 4*block.Size/8)
	if _, err := ca.WriteAt(after, 0); err != nil {
		t.Fatal(err)
	}

	// The clone holds the snapshot, not what was written after it.
	if err := pc.CloneReplica(ctx, pid, "b", "a", "s1"); err != nil {
		t.Fatal(err)
	}
	cb := dial("b")
	if !bytes.Equal(read(cb), before) {
		t.Fatal("clone does not hold the snapshot's data")
	}

	// Errors come back matchable, and leave nothing behind.
	for name, tc := range map[string]struct {
		err  error
		want error
	}{
		"create existing":      {pc.CreateReplica(ctx, pid, "a", size), replica.ErrExists},
		"clone onto existing":  {pc.CloneReplica(ctx, pid, "a", "b", "s1"), replica.ErrExists},
		"clone missing source": {pc.CloneReplica(ctx, pid, "c", "nope", "s1"), replica.ErrNotFound},
		"clone missing snap":   {pc.CloneReplica(ctx, pid, "c", "a", "nope"), replica.ErrNotFound},
		"create in no pool":    {pc.CreateReplica(ctx, "nopool", "c", size), replica.ErrNotFound},
		"join, not a member":   {func() error { _, err := pc.Join(ctx, "n4", meta.JoinRequest{}); return err }(), errors.ErrUnsupported},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", name, tc.err, tc.want)
		}
	}
	if err := pc.CreateReplica(ctx, pid, "../evil", size); err == nil {
		t.Error("create with a bad ID")
	}
	if st.Exists("c") {
		t.Fatal("failed calls left replica c")
	}

	// Delete while a client uses the replica: the server drops it first,
	// and the client's next calls fail clearly.
	if err := pc.DeleteReplica(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if st.Exists("b") {
		t.Fatal("deleted replica still in the store")
	}
	if _, err := cb.WriteAt(make([]byte, block.Size), 0); !errors.Is(err, remote.ErrDropped) {
		t.Fatalf("write after delete: %v, want ErrDropped", err)
	}
	if err := pc.DeleteReplica(ctx, "b"); err != nil {
		t.Fatalf("deleting a deleted replica: %v", err)
	}
	if !bytes.Equal(read(ca), after) {
		t.Fatal("source changed by deleting its clone")
	}

	// A replica the node itself has open is in use.
	local, err := st.Create("local", size)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.DeleteReplica(ctx, "local"); !errors.Is(err, replica.ErrInUse) {
		t.Fatalf("delete of a replica open here: %v, want ErrInUse", err)
	}
	local.Close()
	if err := pc.DeleteReplica(ctx, "local"); err != nil {
		t.Fatal(err)
	}
}

// TestPeerWrongSecret: a node of another cluster reaches neither service
// on the port.
func TestPeerWrongSecret(t *testing.T) {
	n, addr := servingNode(t)
	other := []byte("another-cluster's-secret-0000")
	pc := peerClient(t, other, "intruder", addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pc.CreateReplica(ctx, n.order[0], "x", 1<<20); !errors.Is(err, peer.ErrAuth) {
		t.Fatalf("peer call with the wrong secret: %v, want ErrAuth", err)
	}
	if _, err := remote.Dial(ctx, addr, other, "x", 1); !errors.Is(err, remote.ErrAuth) {
		t.Fatalf("replica dial with the wrong secret: %v, want ErrAuth", err)
	}
	if ids, _ := n.pools[n.order[0]].store.List(); len(ids) != 0 {
		t.Fatalf("store holds %v", ids)
	}
	if !strings.Contains(addr, "127.0.0.1") {
		t.Fatal(addr)
	}
}

// bareNode is node b with one pool, its replica server and its peer
// server, and no etcd.
func bareNode(t testing.TB) *Node {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	p, err := openPool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{cfg: Config{ID: "b", Secret: testSecret}, log: log, pools: map[string]*pool{p.id: p}, order: []string{p.id}, attached: map[string]*attachment{}}
	if n.srv, err = remote.NewServer(testSecret, n.ServeReplica, log); err != nil {
		t.Fatal(err)
	}
	if n.peerSrv, err = peer.NewServer(testSecret, "b", peerService{n}, log); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestServeAfterShutdown: a node shut down before it got to serving its
// port stops serving at once, and the port is closed.
func TestServeAfterShutdown(t *testing.T) {
	n := bareNode(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	n.srv.Close()
	done := make(chan error, 1)
	go func() { done <- n.ServeReplicas(ln) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeReplicas: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeReplicas still serving after the node's shutdown")
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("the port still accepts connections")
	}
}
