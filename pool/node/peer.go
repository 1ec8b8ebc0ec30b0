package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/peer"
	"github.com/ballast-io/ballast/pool/replica"
	"github.com/ballast-io/ballast/pool/spec"
)

// peerService is what this node does for the other nodes of the cluster
// (peer.Service): replicas in its pools, joins, resizes of the volumes
// attached here.
type peerService struct{ n *Node }

var _ peer.Service = peerService{}

func (s peerService) pool(pid string) (*pool, error) {
	p, ok := s.n.pools[pid]
	if !ok {
		return nil, fmt.Errorf("pool %s is not on node %s: %w", pid, s.n.cfg.ID, replica.ErrNotFound)
	}
	return p, nil
}

func (s peerService) CreateReplica(_ context.Context, pid, id string, size int64) error {
	p, err := s.pool(pid)
	if err != nil {
		return err
	}
	r, err := p.store.Create(id, size)
	if err != nil {
		return err
	}
	s.n.log.Info("replica created for another node", "replica", id, "pool", pid, "size", size)
	return r.Close()
}

func (s peerService) CloneReplica(_ context.Context, pid, id, src, snap string) error {
	p, err := s.pool(pid)
	if err != nil {
		return err
	}
	r, err := p.store.Clone(id, src, snap)
	if err != nil {
		return err
	}
	s.n.log.Info("replica cloned for another node", "replica", id, "pool", pid, "from", src+"@"+snap)
	return r.Close()
}

func (s peerService) DeleteReplica(_ context.Context, id string) error {
	if p := s.n.poolOf(id); p != nil {
		return s.n.deleteServed(p, id)
	}
	return nil
}

// Join lets a new node into the cluster: as an etcd member while the
// cluster has fewer than meta.MaxMembers, else as a client.
func (s peerService) Join(ctx context.Context, node string, req meta.JoinRequest) (meta.JoinAnswer, error) {
	n := s.n
	if !n.cfg.AdmitMembers {
		return meta.JoinAnswer{}, fmt.Errorf("join of node %s: this node runs no etcd member of the cluster, so it lets no node join; join through one of the first three nodes (ballast cluster status shows their etcd role): %w", node, errors.ErrUnsupported)
	}
	if err := spec.ValidateName("node ID", node); err != nil {
		return meta.JoinAnswer{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ans, err := meta.AdmitMember(ctx, n.meta.Client(), node, req)
	if err != nil {
		return meta.JoinAnswer{}, fmt.Errorf("join of node %s: %w", node, err)
	}
	n.log.Info("node joins the cluster", "node", node, "etcd_member", ans.Member)
	return ans, nil
}

// ResizeVolume is ResizeVolume as another node asks it of this one: the
// volume must be attached here or nowhere.
func (s peerService) ResizeVolume(ctx context.Context, volume string, size int64) error {
	_, err := s.n.resize(ctx, volume, size, false)
	return err
}

// CreateBackup is CreateBackup as another node asks it of this one, which
// holds an in-sync replica of the volume: it runs here or not at all.
func (s peerService) CreateBackup(ctx context.Context, b api.BackupSpec) (*api.Backup, error) {
	return s.n.createBackup(ctx, b, false)
}

// CreateSnapshot is CreateSnapshot as another node asks it of the node the
// volume is attached on: taken here, with the filesystem frozen.
func (s peerService) CreateSnapshot(ctx context.Context, vol, name string) (*api.Snapshot, error) {
	return s.n.createSnapshot(ctx, vol, name, false)
}

// withPeer runs fn with a client of node's peer service, under a context
// bounded by timeout.
func (n *Node) withPeer(ctx context.Context, node string, timeout time.Duration, fn func(context.Context, *peer.Client) error) error {
	if n.peers == nil {
		return errors.New("node has no cluster secret: it cannot reach other nodes")
	}
	addr, err := n.nodeAddr(ctx, node)
	if err != nil {
		return err
	}
	c, err := n.peers.Dial(addr)
	if err != nil {
		return fmt.Errorf("node %s: %w", node, err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := fn(ctx, c); err != nil {
		return fmt.Errorf("node %s: %w", node, err)
	}
	return nil
}
