package node

import (
	"strings"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/spec"
)

func TestPlanLocality(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	labels := map[string]map[string]string{
		"a": lbl("z1", "r1"), "b": lbl("z2", "r2"), "c": lbl("z1", "r3"), "d": lbl("z3", "r4"), "e": lbl("z1", "r1"),
	}
	alive := map[string]bool{"a": true, "b": true, "c": true, "d": true, "e": true}
	vol := func(repl int, nodes ...string) *meta.Volume {
		v := &meta.Volume{Volume: spec.Volume{Name: "v", Size: 100, Repl: repl, MinInSync: 1}, ID: "id"}
		for i, n := range nodes {
			r := meta.Replica{ID: "id-r" + string(rune('0'+i)), Node: n, Pool: "p" + n}
			v.Replicas = append(v.Replicas, r)
			v.InSync = append(v.InSync, r.ID)
		}
		return v
	}
	with := func(v *meta.Volume, f func(v *meta.Volume)) *meta.Volume { f(v); return v }
	cPools := []candidate{{Pool: "pc1", Node: "c", Capacity: 1000, Allocated: 900}, {Pool: "pc2", Node: "c", Capacity: 1000, Allocated: 100}}
	long := now.Add(-time.Minute)
	cases := []struct {
		name  string
		vol   *meta.Volume
		self  string
		pools []candidate
		busy  bool
		since time.Time
		alive map[string]bool
		free  map[string]int64
		want  string // kind and pool or replica, or kind and a part of why
	}{
		{"none asked", with(vol(2, "a", "b"), func(v *meta.Volume) { v.Locality = "none" }), "c", cPools, false, long, nil, nil, "none locality=none"},
		{"a record without locality is best-effort", vol(2, "a", "b"), "c", cPools, false, long, nil, nil, "build pc2"},
		{"wait for the delay", vol(2, "a", "b"), "c", cPools, false, now.Add(-10 * time.Second), nil, nil, "wait pc2"},
		{"first seen now", vol(2, "a", "b"), "c", cPools, false, now, nil, nil, "wait pc2"},
		{"already local", vol(2, "a", "c"), "c", cPools, false, long, nil, nil, "none "},
		{"busy", vol(2, "a", "b"), "c", cPools, true, long, nil, nil, "none under way"},
		{"short of in-sync: heal first", with(vol(2, "a", "b"), func(v *meta.Volume) { v.InSync = v.InSync[:1] }), "c", cPools, false, long, nil, nil, "none healing comes first"},
		{"repl 1 moves too", vol(1, "a"), "c", cPools, false, long, nil, nil, "build pc2"},
		{"no pool large enough", with(vol(2, "a", "b"), func(v *meta.Volume) { v.Size = 5000 }), "c", cPools, false, long, nil, nil, "none can hold"},
		{"pinned elsewhere", with(vol(2, "a", "b"), func(v *meta.Volume) { v.Pin = "zone=z2" }), "c", cPools, false, long, nil, nil, "none do not match"},
		{"avoided", with(vol(2, "a", "b"), func(v *meta.Volume) { v.Avoid = "rack=r3" }), "c", cPools, false, long, nil, nil, "none do not match"},
		{"pin that matches", with(vol(2, "a", "b"), func(v *meta.Volume) { v.Pin = "zone=z1" }), "c", cPools, false, long, nil, nil, "build pc2"},
		// c (z1) joined a (z1) and b (z2): retiring a keeps two zones.
		{"retire the one sharing the zone", vol(2, "a", "b", "c"), "c", cPools, false, long, nil, nil, "retire id-r0"},
		{"retire order does not matter", vol(2, "b", "a", "c"), "c", cPools, false, long, nil, nil, "retire id-r1"},
		// d (z3) joined a (z1) and b (z2): any retire keeps two zones; then
		// the least free pool goes.
		{"new zone: least free pool goes", vol(2, "a", "b", "d"), "d", nil, false, long, nil, map[string]int64{"pa": 10, "pb": 500}, "retire id-r0"},
		{"new zone: least free pool goes (b)", vol(2, "a", "b", "d"), "d", nil, false, long, nil, map[string]int64{"pa": 500, "pb": 10}, "retire id-r1"},
		{"a down node's replica first among equals", vol(2, "a", "b", "d"), "d", nil, false, long, map[string]bool{"a": true, "b": false, "d": true}, map[string]int64{"pa": 10}, "retire id-r1"},
		{"repl 3 over three zones, c local", vol(3, "a", "b", "d", "c"), "c", cPools, false, long, nil, nil, "retire id-r0"},
		{"never the local one, repl 1", vol(1, "a", "c"), "c", cPools, false, long, nil, nil, "retire id-r0"},
		{"local not in sync: no retire, rebuild it", with(vol(2, "a", "b", "c"), func(v *meta.Volume) { v.InSync = v.InSync[:2] }), "c", cPools, false, long, nil, nil, "build pc2"},
		{"at its replication factor: nothing to retire", with(vol(2, "a", "c"), func(v *meta.Volume) { v.MinInSync = 2 }), "c", cPools, false, long, nil, nil, "none "},
		// e (z1) and b (z2), c (z1) local: e goes, two zones stay.
		{"zone first: the one sharing the zone goes", vol(2, "e", "b", "c"), "c", cPools, false, long, nil, nil, "retire id-r0"},
	}
	for _, c := range cases {
		al := c.alive
		if al == nil {
			al = alive
		}
		free := c.free
		if free == nil {
			free = map[string]int64{}
		}
		s := localityState{Vol: c.vol, Self: c.self, Serves: true, Pools: c.pools, Labels: labels, Alive: al, Free: free,
			Busy: c.busy, Since: c.since, Now: now, Delay: 30 * time.Second}
		got := planLocality(s)
		var desc string
		switch got.Kind {
		case localityBuild, localityWait:
			desc = got.Kind + " " + got.Pool
		case localityRetire:
			desc = got.Kind + " " + got.Replica
		default:
			desc = got.Kind + " " + got.Why
		}
		kind, part, _ := strings.Cut(c.want, " ")
		if got.Kind != kind || (got.Kind == localityNone && !strings.Contains(got.Why, part)) || (got.Kind != localityNone && desc != c.want) {
			t.Errorf("%s: got %q (why %q); want %q", c.name, desc, got.Why, c.want)
		}
	}
	s := localityState{Vol: vol(2, "a", "b"), Self: "c", Serves: true, Pools: cPools, Labels: labels, Alive: alive, Since: long, Now: now, Snapshots: 1}
	if got := planLocality(s); got.Kind != localityNone || !strings.Contains(got.Why, "snapshot") {
		t.Errorf("a volume with a snapshot: %+v", got)
	}
	s.Vol = vol(2, "a", "b", "c")
	if got := planLocality(s); got.Kind != localityNone {
		t.Errorf("a volume with a snapshot and a local replica: %+v; want no retire", got)
	}
	s = localityState{Vol: vol(2, "a", "b"), Self: "c", Serves: false, Pools: cPools, Labels: labels, Alive: alive, Since: long, Now: now}
	if got := planLocality(s); got.Kind != localityNone || !strings.Contains(got.Why, "--listen") {
		t.Errorf("a node serving no replicas: %+v", got)
	}
}
