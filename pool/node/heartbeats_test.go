package node

import (
	"testing"
	"time"
)

// TestHeartbeats: a node whose heartbeats stopped is silent a TTL later,
// but only while this node's own heartbeats come through steadily: not
// while etcd stalls (an election), not just after, and never a node that
// writes no heartbeats (an older version) or one not seen yet.
func TestHeartbeats(t *testing.T) {
	const ttl = 2 * time.Second // heartbeat every 500 ms
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	h := newHeartbeats("a", ttl)
	// a, b and c beat every 500 ms until 3000; then b dies, the etcd leader
	// with it: nothing comes through until 4500 (the election), then a
	// and c beat again.
	for ms := 0; ms <= 3000; ms += 500 {
		h.beat("a", ttl, at(ms))
		h.beat("b", ttl, at(ms))
		h.beat("c", ttl, at(ms+10))
	}
	h.beat("old", 0, at(0)) // an older node: no heartbeats
	for ms := 4500; ms <= 8000; ms += 500 {
		h.beat("a", ttl, at(ms))
		h.beat("c", ttl, at(ms+200))
	}
	for _, c := range []struct {
		node string
		ms   int
		want bool
	}{
		{"b", 2000, false},   // beating
		{"b", 4400, false},   // silent 1.4 s, and this node sees nothing either (the election)
		{"b", 5200, false},   // 2.2 s, but a's own beats came back only at 4500
		{"c", 5600, false},   // c beat again at 4700
		{"b", 5600, true},    // 2.6 s silent, a's beats steady for 1.1 s
		{"old", 8000, false}, // no heartbeats by design: its lease decides
		{"x", 8000, false},   // never seen: its lease decides
		{"a", 8000, false},   // itself
		{"c", 8000, false},
	} {
		if got := h.silent(c.node, at(c.ms)); got != c.want {
			t.Errorf("silent(%s) at %d ms = %v, want %v", c.node, c.ms, got, c.want)
		}
	}
	// a's own view goes stale (its etcd connection is cut): it judges
	// nobody.
	if h.silent("b", at(9200)) {
		t.Error("b judged silent while a's own heartbeats stopped coming through")
	}
	alive, silent := h.alive(map[string]bool{"a": true, "b": true, "c": true}, at(6000))
	if alive["b"] || !alive["a"] || !alive["c"] || len(silent) != 1 || silent[0] != "b" {
		t.Errorf("alive = %v, silent %v; want b out", alive, silent)
	}
	h.gone("b")
	if h.silent("b", at(6000)) {
		t.Error("b still judged after its mark went")
	}
}
