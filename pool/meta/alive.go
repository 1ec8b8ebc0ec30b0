package meta

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// KeepAlive marks node alive under an etcd lease of ttl and refreshes it
// until ctx ends. When the node dies, the lease expires and the mark
// disappears: that is how the cluster tells a dead node from a live one. If
// the lease is lost while the node lives (etcd was unreachable for longer
// than ttl), it takes a new one, with backoff, as soon as etcd answers.
func (s *Store) KeepAlive(ctx context.Context, node string, ttl time.Duration) error {
	ch, err := s.markAlive(ctx, node, ttl)
	if err != nil {
		return err
	}
	go func() {
		backoff := 100 * time.Millisecond
		for {
			for range ch { // drained while the lease lives
			}
			for {
				if ctx.Err() != nil {
					return
				}
				if ch, err = s.markAlive(ctx, node, ttl); err == nil {
					backoff = 100 * time.Millisecond
					break
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, ttl)
			}
		}
	}()
	return nil
}

// markAlive grants a lease, writes node's liveness mark under it and starts
// refreshing it; the channel closes when the lease is lost.
func (s *Store) markAlive(ctx context.Context, node string, ttl time.Duration) (<-chan *clientv3.LeaseKeepAliveResponse, error) {
	gctx, cancel := context.WithTimeout(ctx, ttl)
	defer cancel()
	lease, err := s.cli.Grant(gctx, max(int64(ttl.Seconds()), 1))
	if err != nil {
		return nil, fmt.Errorf("grant lease for node %s: %w", node, err)
	}
	if _, err := s.cli.Put(gctx, aliveKey(node), time.Now().UTC().Format(time.RFC3339), clientv3.WithLease(lease.ID)); err != nil {
		return nil, fmt.Errorf("mark node %s alive: %w", node, err)
	}
	ch, err := s.cli.KeepAlive(ctx, lease.ID)
	if err != nil {
		return nil, fmt.Errorf("keep node %s alive: %w", node, err)
	}
	return ch, nil
}

// Alive reports which nodes hold a live lease.
func (s *Store) Alive(ctx context.Context) (map[string]bool, error) {
	resp, err := s.cli.Get(ctx, Prefix+"alive/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("etcd list alive nodes: %w", err)
	}
	alive := map[string]bool{}
	for _, kv := range resp.Kvs {
		alive[string(kv.Key[len(Prefix+"alive/"):])] = true
	}
	return alive, nil
}

// WatchDeaths calls died with the ID of every node whose liveness mark
// disappears (its lease expired or it deregistered), until ctx ends.
func (s *Store) WatchDeaths(ctx context.Context, died func(node string)) {
	for resp := range s.cli.Watch(ctx, Prefix+"alive/", clientv3.WithPrefix(), clientv3.WithFilterPut()) {
		for _, ev := range resp.Events {
			died(string(ev.Kv.Key[len(Prefix+"alive/"):]))
		}
	}
}

// MarkDown records that node went down at t, unless another node already
// did.
func (s *Store) MarkDown(ctx context.Context, node string, t time.Time) error {
	for {
		n, rev, err := get[Node](ctx, s, nodeKey(node))
		if err != nil {
			return err
		}
		if !n.DownSince.IsZero() {
			return nil
		}
		n.DownSince = t
		err = s.Commit(ctx, put(nodeKey(node), n, rev))
		if err != ErrConflict {
			return err
		}
	}
}
