package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/remote"
	"github.com/ballast-io/ballast/pool/replica"
)

// ServeReplicas serves this node's replicas to the other nodes on ln until
// the node is closed. It needs Config.Secret.
func (n *Node) ServeReplicas(ln net.Listener) error {
	if n.srv == nil {
		return errors.New("node has no cluster secret: it cannot serve replicas")
	}
	err := n.srv.Serve(ln)
	if errors.Is(err, remote.ErrServerClosed) {
		return nil
	}
	return err
}

// nodeStore lets other nodes create, clone and delete replicas on this
// node's pools through the replica server's admin operations. Create and
// Clone name the pool the placement chose as "POOL/REPLICA".
type nodeStore struct{ n *Node }

func (s nodeStore) target(qid string) (*pool, string, error) {
	pid, id, ok := strings.Cut(qid, "/")
	if !ok {
		return nil, "", fmt.Errorf("replica %q: want POOL/REPLICA", qid)
	}
	p, ok := s.n.pools[pid]
	if !ok {
		return nil, "", fmt.Errorf("pool %s is not on node %s: %w", pid, s.n.cfg.ID, replica.ErrNotFound)
	}
	return p, id, nil
}

func (s nodeStore) Create(qid string, size int64) error {
	p, id, err := s.target(qid)
	if err != nil {
		return err
	}
	r, err := p.store.Create(id, size)
	if err != nil {
		return err
	}
	return r.Close()
}

func (s nodeStore) Clone(qid, srcID, snap string) error {
	p, id, err := s.target(qid)
	if err != nil {
		return err
	}
	r, err := p.store.Clone(id, srcID, snap)
	if err != nil {
		return err
	}
	return r.Close()
}

func (s nodeStore) Delete(id string) error {
	for _, pid := range s.n.order {
		if p := s.n.pools[pid]; p.store.Exists(id) {
			return p.store.Delete(id)
		}
	}
	return nil
}

// makeReplica creates (or, with src, clones) replica r wherever it was
// placed: on this node's pool directly, on another node through its admin
// operations.
func (n *Node) makeReplica(ctx context.Context, r meta.Replica, size int64, srcID, snap string) error {
	if r.Node == n.cfg.ID {
		p, err := n.localPool(r)
		if err != nil {
			return err
		}
		var rep *replica.Replica
		if srcID != "" {
			rep, err = p.store.Clone(r.ID, srcID, snap)
		} else {
			rep, err = p.store.Create(r.ID, size)
		}
		if err != nil {
			return fmt.Errorf("replica %s on %s: %w", r.ID, p.dir, err)
		}
		return rep.Close()
	}
	return n.withAdmin(ctx, r.Node, func(a *remote.Admin) error {
		if srcID != "" {
			return a.Clone(r.Pool+"/"+r.ID, srcID, snap)
		}
		return a.Create(r.Pool+"/"+r.ID, size)
	})
}

// removeReplica deletes replica r wherever it is. A missing replica is not
// an error.
func (n *Node) removeReplica(ctx context.Context, r meta.Replica) error {
	if r.Node == n.cfg.ID {
		p, err := n.localPool(r)
		if err != nil {
			return err
		}
		if n.srv != nil {
			if err := n.srv.Drop(r.ID); err != nil {
				return fmt.Errorf("stop serving replica %s: %w", r.ID, err)
			}
		}
		if err := p.store.Delete(r.ID); err != nil {
			return fmt.Errorf("delete replica %s: %w", r.ID, err)
		}
		return nil
	}
	return n.withAdmin(ctx, r.Node, func(a *remote.Admin) error { return a.Delete(r.ID) })
}

func (n *Node) withAdmin(ctx context.Context, node string, fn func(*remote.Admin) error) error {
	return n.withAdminTimeout(ctx, node, remote.DefaultTimeout, fn)
}

// withAdminTimeout runs fn on an admin connection to node whose requests
// may take up to timeout each.
func (n *Node) withAdminTimeout(ctx context.Context, node string, timeout time.Duration, fn func(*remote.Admin) error) error {
	addr, err := n.nodeAddr(ctx, node)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d := remote.Dialer{Timeout: timeout}
	a, err := d.DialAdmin(dctx, addr, n.cfg.Secret)
	if err != nil {
		return fmt.Errorf("node %s (%s): %w", node, addr, err)
	}
	defer a.Close()
	return fn(a)
}
