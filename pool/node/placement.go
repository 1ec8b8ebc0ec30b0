package node

import (
	"fmt"
	"slices"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

// candidate is a pool a replica could go to.
type candidate struct {
	Pool      string
	Node      string
	Labels    map[string]string // the node's labels
	Capacity  int64
	Allocated int64
}

// Failure-domain labels, widest first: replicas are spread over zones, then
// racks, then nodes.
const (
	zoneLabel = "zone"
	rackLabel = "rack"
)

// place chooses repl pools for a volume of size bytes among the pools of
// live nodes. With more than one node in the cluster every replica gets a
// node of its own, spread over zones and racks first; a lone node mirrors
// its pool dirs instead. Among equals, the most free space wins. It only
// decides; it touches nothing.
func place(pools []candidate, repl int, size int64, r spec.Placement) ([]candidate, error) {
	nodes := map[string]bool{}
	for _, p := range pools {
		nodes[p.Node] = true
	}
	single := len(nodes) <= 1
	var fit []candidate
	var biggest int64
	allowed := map[string]bool{}
	for _, p := range pools {
		if !r.Allows(p.Labels) {
			continue
		}
		allowed[p.Node] = true
		biggest = max(biggest, p.Capacity)
		if p.Capacity >= size {
			fit = append(fit, p)
		}
	}
	need, have, unit := repl, len(pools), "pool dirs on distinct disks"
	if !single {
		have, unit = len(allowed), "nodes"
	}
	if len(r.Pin)+len(r.Avoid) > 0 && !single {
		unit = "nodes matching the volume's placement labels"
	}
	if need > have {
		return nil, fmt.Errorf("%w: --repl %d needs %d %s, the cluster has %d", api.ErrInvalid, repl, need, unit, have)
	}

	var out []candidate
	usedPool, usedNode, usedZone, usedRack := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	for len(out) < repl {
		best := -1
		for i, p := range fit {
			if usedPool[p.Pool] || !single && usedNode[p.Node] {
				continue
			}
			if best < 0 || better(p, fit[best], usedZone, usedRack, usedNode) {
				best = i
			}
		}
		if best < 0 {
			return nil, fmt.Errorf("%w: a volume of %s is larger than the pool can ever hold: only %d of the %d %s it needs have a disk that large (largest: %s)",
				api.ErrNoCapacity, spec.FormatSize(size), len(out), repl, unit, spec.FormatSize(biggest))
		}
		p := fit[best]
		out = append(out, p)
		usedPool[p.Pool], usedNode[p.Node] = true, true
		zone, rack := domains(p.Labels)
		usedZone[zone], usedRack[rack] = true, true
	}
	return out, nil
}

// better reports whether a is a better next replica than b: a new zone,
// then a new rack, then a new node, then more free space.
func better(a, b candidate, zones, racks, nodes map[string]bool) bool {
	key := func(c candidate) []int64 {
		zone, rack := domains(c.Labels)
		return []int64{
			flag(!zones[zone]),
			flag(!racks[rack]),
			flag(!nodes[c.Node]),
			c.Capacity - c.Allocated,
		}
	}
	return slices.Compare(key(a), key(b)) > 0
}

// domains returns the failure domains of a node with labels l: its zone,
// and its rack, named within its zone.
func domains(l map[string]string) (zone, rack string) {
	return l[zoneLabel], l[zoneLabel] + "/" + l[rackLabel]
}

func flag(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// placementRules parses a volume's pin and avoid labels.
func placementRules(v spec.Volume) (spec.Placement, error) {
	return spec.ParsePlacement(v.Pin, v.Avoid)
}
