package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/remote"
	"github.com/ballast-io/ballast/pool/replica"
)

// A replica of an open volume is a block.Replica, on this node
// (*localMember) or another (*remoteMember, a *remote.Client); both carry
// the epoch of the attachment they were opened for, and the replica
// refuses their I/O once it is fenced at a newer one.
var (
	_ block.Replica  = (*localMember)(nil)
	_ block.Replica  = (*remoteMember)(nil)
	_ remote.Replica = localRef{}
)

// openSet shares this node's open replicas between the volumes attached
// here and the replica server, which both need them and which the store
// opens only once.
type openSet struct {
	mu sync.Mutex
	m  map[string]*openReplica
}

type openReplica struct {
	r    *replica.Replica
	refs int
}

// localRef is a reference to an open replica; Close gives it back. Its
// I/O is not checked against the replica's epoch: the replica server,
// which gets these, checks each request's epoch itself.
type localRef struct {
	*replica.Replica
	put func() error
}

func (l localRef) Close() error { return l.put() }

// localMember is a replica on this node as a member of a volume opened
// here at an epoch: its I/O goes through replica.Owner, so that once
// another node fences the replica at a newer epoch (through this node's
// replica server), this node's own I/O to it is refused with
// remote.ErrFenced, exactly as a remote client's would be. It is used by
// pointer, so that members compare by identity.
type localMember struct {
	replica.Owner
	put func() error // gives back the open set's reference
	// srv, when set, is this node's replica server: fencing goes through
	// it so that it refuses a former owner's requests too.
	srv *remote.Server
}

func (l *localMember) Close() error { return l.put() }

// Fence raises the replica's epoch, through the replica server when there
// is one.
func (l *localMember) Fence(epoch uint64) error {
	r := l.Replica()
	if l.srv == nil {
		return r.Fence(epoch)
	}
	return l.srv.FenceReplica(r.ID(), epoch, func() error { return r.Fence(epoch) })
}

// get opens replica id of store, or takes another reference to it.
func (s *openSet) get(store *replica.Store, id string) (localRef, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*openReplica{}
	}
	o, ok := s.m[id]
	if !ok {
		r, err := store.Open(id)
		if err != nil {
			return localRef{}, fmt.Errorf("open replica %s: %w", id, err)
		}
		o = &openReplica{r: r}
		s.m[id] = o
	}
	o.refs++
	var once sync.Once
	return localRef{Replica: o.r, put: func() (err error) {
		once.Do(func() { err = s.put(id) })
		return err
	}}, nil
}

func (s *openSet) put(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.m[id]
	if !ok {
		return nil
	}
	if o.refs--; o.refs > 0 {
		return nil
	}
	delete(s.m, id)
	return o.r.Close()
}

// openMember opens replica r of a volume at epoch: through the open set
// when it is on this node, over the network otherwise.
func (n *Node) openMember(ctx context.Context, r meta.Replica, epoch uint64) (block.Replica, error) {
	if r.Node == n.cfg.ID {
		p, err := n.localPool(r)
		if err != nil {
			return nil, err
		}
		ref, err := n.open.get(p.store, r.ID)
		if err != nil {
			return nil, err
		}
		return &localMember{Owner: ref.Replica.Owner(epoch), put: ref.put, srv: n.srv}, nil
	}
	addr, err := n.nodeAddr(ctx, r.Node)
	if err != nil {
		return nil, fmt.Errorf("replica %s: %w", r.ID, err)
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := n.replicas.Dial(dctx, addr, n.cfg.Secret, r.ID, epoch)
	if err != nil {
		return nil, fmt.Errorf("replica %s on node %s (%s): %w", r.ID, r.Node, addr, err)
	}
	return &remoteMember{Client: c, node: r.Node}, nil
}

// remoteMember is a replica on another node.
type remoteMember struct {
	*remote.Client
	node string
}

// suspectNode gives every replica on node id that a volume attached here
// has open downDialTimeout to answer, since id was declared down (see
// remote.Client.Suspect). Without it, the first write after a node died
// silently waited the replica protocol's 10 s before the replica left
// the in-sync set, and a database's writes with it.
func (n *Node) suspectNode(id string) {
	for _, a := range n.attachments() {
		for rid, m := range a.members() {
			if rm, ok := m.(*remoteMember); ok && rm.node == id {
				n.log.Warn("replica's node went down; it has a short time to answer", "volume", a.vol, "replica", rid, "node", id, "for", downDialTimeout)
				rm.Suspect(downDialTimeout)
			}
		}
	}
}

// openFenced opens replica r and fences it at epoch: once it returns, no
// I/O of an older attachment runs on the replica, and none ever will.
func (n *Node) openFenced(ctx context.Context, r meta.Replica, epoch uint64) (block.Replica, error) {
	m, err := n.openMember(ctx, r, epoch)
	if err != nil {
		return nil, err
	}
	if err := m.Fence(epoch); err != nil {
		m.Close()
		return nil, fmt.Errorf("fence replica %s at epoch %d: %w", r.ID, epoch, err)
	}
	return m, nil
}

// nodeAddr is where another node serves its replicas.
func (n *Node) nodeAddr(ctx context.Context, id string) (string, error) {
	nodes, err := n.meta.Nodes(ctx)
	if err != nil {
		return "", err
	}
	for _, nd := range nodes {
		if nd.ID == id {
			if nd.Addr == "" {
				return "", fmt.Errorf("node %s serves no replicas (started without --listen)", id)
			}
			return nd.Addr, nil
		}
	}
	return "", fmt.Errorf("node %s is not in the cluster", id)
}

// ServeReplica opens a replica of this node for the replica server.
func (n *Node) ServeReplica(id string) (remote.Replica, error) {
	p := n.poolOf(id)
	if p == nil {
		return nil, fmt.Errorf("replica %s is not on node %s: %w", id, n.cfg.ID, replica.ErrNotFound)
	}
	return n.open.get(p.store, id)
}

// poolOf is the pool of this node holding replica id, nil for none.
func (n *Node) poolOf(id string) *pool {
	for _, pid := range n.order {
		if p := n.pools[pid]; p.store.Exists(id) {
			return p
		}
	}
	return nil
}
