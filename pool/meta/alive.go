package meta

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// KeepAlive marks node alive under an etcd lease of ttl and refreshes it
// until ctx ends. When the node dies, the lease expires and the mark
// disappears: that is how the cluster tells a dead node from a live one. If
// the lease is lost while the node lives (etcd was unreachable for longer
// than ttl), it takes a new one, with backoff, as soon as etcd answers.
//
// The mark is also rewritten every HeartbeatInterval(ttl), a heartbeat
// the other nodes watch (WatchHeartbeats): a new etcd leader renews every
// lease in full, so after the leader's node dies a dead node's mark
// outlives it by the election and a whole TTL, while its heartbeats
// stopped at its death.
func (s *Store) KeepAlive(ctx context.Context, node string, ttl time.Duration) error {
	lease, ch, err := s.markAlive(ctx, node, ttl)
	if err != nil {
		return err
	}
	go func() {
		backoff := 100 * time.Millisecond
		for {
			s.heartbeat(ctx, node, ttl, lease, ch)
			for {
				if ctx.Err() != nil {
					return
				}
				if lease, ch, err = s.markAlive(ctx, node, ttl); err == nil {
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

// HeartbeatInterval is how often a node with lease ttl rewrites its
// liveness mark.
func HeartbeatInterval(ttl time.Duration) time.Duration { return ttl / 4 }

// Heartbeat is the value of a node's liveness mark.
type Heartbeat struct {
	TTL time.Duration `json:"ttl"` // the node's lease TTL
	Seq uint64        `json:"seq"`
}

// heartbeat rewrites node's mark under lease every heartbeat interval and
// drains the lease's keep-alive answers, until the lease is lost (ch
// closes) or ctx ends.
func (s *Store) heartbeat(ctx context.Context, node string, ttl time.Duration, lease clientv3.LeaseID, ch <-chan *clientv3.LeaseKeepAliveResponse) {
	t := time.NewTicker(HeartbeatInterval(ttl))
	defer t.Stop()
	var seq uint64
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-t.C:
			seq++
			b, _ := json.Marshal(Heartbeat{TTL: ttl, Seq: seq})
			// At most one interval: a put proposed as the etcd leader
			// died is lost, and waiting for it would stall the beats.
			pctx, cancel := context.WithTimeout(ctx, HeartbeatInterval(ttl))
			_, err := s.cli.Put(pctx, aliveKey(node), string(b), clientv3.WithLease(lease))
			cancel()
			if rpctypes.Error(err) == rpctypes.ErrLeaseNotFound {
				return // lapsed: take a new one
			}
		case <-ctx.Done():
			return
		}
	}
}

// markAlive grants a lease, writes node's liveness mark under it and starts
// refreshing it; the channel closes when the lease is lost.
func (s *Store) markAlive(ctx context.Context, node string, ttl time.Duration) (clientv3.LeaseID, <-chan *clientv3.LeaseKeepAliveResponse, error) {
	gctx, cancel := context.WithTimeout(ctx, ttl)
	defer cancel()
	lease, err := s.cli.Grant(gctx, max(int64(ttl.Seconds()), 1))
	if err != nil {
		return 0, nil, fmt.Errorf("grant lease for node %s: %w", node, err)
	}
	b, _ := json.Marshal(Heartbeat{TTL: ttl})
	if _, err := s.cli.Put(gctx, aliveKey(node), string(b), clientv3.WithLease(lease.ID)); err != nil {
		return 0, nil, fmt.Errorf("mark node %s alive: %w", node, err)
	}
	ch, err := s.cli.KeepAlive(ctx, lease.ID)
	if err != nil {
		return 0, nil, fmt.Errorf("keep node %s alive: %w", node, err)
	}
	return lease.ID, ch, nil
}

// WatchHeartbeats calls beat for every node's mark standing when it
// starts and for every heartbeat after (a mark rewritten; ttl is the
// node's lease TTL, 0 for a node of an older version, which writes no
// heartbeats), and gone when a mark disappears, until ctx ends. It starts
// over when the watch breaks.
func (s *Store) WatchHeartbeats(ctx context.Context, beat func(node string, ttl time.Duration), gone func(node string)) {
	ttlOf := func(v []byte) time.Duration {
		var hb Heartbeat
		if json.Unmarshal(v, &hb) != nil {
			return 0
		}
		return hb.TTL
	}
	for ctx.Err() == nil {
		resp, err := s.cli.Get(ctx, Prefix+"alive/", clientv3.WithPrefix())
		if err == nil {
			for _, kv := range resp.Kvs {
				beat(string(kv.Key[len(Prefix+"alive/"):]), ttlOf(kv.Value))
			}
			for wr := range s.cli.Watch(ctx, Prefix+"alive/", clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1)) {
				for _, ev := range wr.Events {
					id := string(ev.Kv.Key[len(Prefix+"alive/"):])
					if ev.Type == clientv3.EventTypeDelete {
						gone(id)
					} else {
						beat(id, ttlOf(ev.Kv.Value))
					}
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
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
