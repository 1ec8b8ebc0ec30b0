package node

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ballast-io/ballast/pool/meta"
)

// heartbeats tells, from the liveness marks this node sees rewritten
// (meta.WatchHeartbeats), which nodes went silent while their mark still
// stands. A mark lives as long as its etcd lease, and a new etcd leader
// renews every lease in full: when the leader's node dies, the marks of
// the nodes that died with it outlive them by the election and a whole
// TTL, and so did every takeover of their volumes. Their heartbeats stop
// at their death. A node is silent when this node has seen no heartbeat
// of it for its TTL while its own heartbeats kept coming through, steadily
// for two intervals at least (so a stall of etcd, as during an election,
// makes nobody silent until the others had the time to beat again). It
// only decides; the times come from the caller.
type heartbeats struct {
	self string
	ttl  time.Duration // this node's

	mu      sync.Mutex
	last    map[string]time.Time     // each node's last heartbeat seen
	ttls    map[string]time.Duration // each node's TTL; 0: it writes no heartbeats
	own     time.Time                // this node's last heartbeat seen
	resumed time.Time                // this node's first heartbeat after a stall
}

func newHeartbeats(self string, ttl time.Duration) *heartbeats {
	return &heartbeats{self: self, ttl: ttl, last: map[string]time.Time{}, ttls: map[string]time.Duration{}}
}

// beat records a heartbeat of node (its lease TTL ttl) seen at now.
func (h *heartbeats) beat(node string, ttl time.Duration, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if node == h.self {
		if h.own.IsZero() || now.Sub(h.own) > 2*meta.HeartbeatInterval(h.ttl) {
			h.resumed = now
		}
		h.own = now
		return
	}
	h.last[node], h.ttls[node] = now, ttl
}

// gone forgets node: its mark disappeared.
func (h *heartbeats) gone(node string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.last, node)
	delete(h.ttls, node)
}

// silent reports whether node, whose mark stands, has been silent for
// its TTL at now (see heartbeats).
func (h *heartbeats) silent(node string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if node == h.self || h.own.IsZero() {
		return false
	}
	steady := 2 * meta.HeartbeatInterval(h.ttl)
	if now.Sub(h.own) > steady || now.Sub(h.resumed) < steady {
		return false // this node's own view of etcd is stale, or just recovered
	}
	last, seen := h.last[node]
	ttl := h.ttls[node]
	if !seen || ttl == 0 {
		return false // not watched yet, or of an older version: its lease decides
	}
	return now.Sub(last) > ttl+steady/2
}

// alive returns the nodes alive says hold a live mark, less those silent
// at now, and the silent ones.
func (h *heartbeats) alive(alive map[string]bool, now time.Time) (map[string]bool, []string) {
	out := make(map[string]bool, len(alive))
	var silent []string
	for id, ok := range alive {
		if ok && h.silent(id, now) {
			silent = append(silent, id)
			continue
		}
		out[id] = ok
	}
	return out, silent
}

// describe says what h saw, for debugging.
func (h *heartbeats) describe(now time.Time) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	age := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return now.Sub(t).Round(time.Millisecond).String()
	}
	s := fmt.Sprintf("own %s ago, steady for %s", age(h.own), age(h.resumed))
	for id, t := range h.last {
		s += fmt.Sprintf("; %s %s ago (ttl %s)", id, age(t), h.ttls[id])
	}
	return s
}

// watchHeartbeats feeds h from etcd until ctx ends.
func (n *Node) watchHeartbeats(ctx context.Context) {
	n.meta.WatchHeartbeats(ctx,
		func(id string, ttl time.Duration) { n.beats.beat(id, ttl, time.Now()) },
		n.beats.gone)
}

// aliveNow reads which nodes hold a live mark, less those whose
// heartbeats stopped (heartbeats).
func (n *Node) aliveNow(ctx context.Context) (map[string]bool, error) {
	alive, err := n.meta.Alive(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out, silent := n.beats.alive(alive, now)
	if n.log.Enabled(ctx, slog.LevelDebug) {
		n.log.Debug("heartbeats", "view", n.beats.describe(now))
	}
	if len(silent) > 0 {
		n.log.Warn("nodes silent for their lease TTL although their lease still runs (an etcd leader change renews leases): taken as down", "nodes", silent)
	}
	return out, nil
}
