package node

import (
	"errors"
	"strings"
	"testing"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

func lbl(zone, rack string) map[string]string { return map[string]string{"zone": zone, "rack": rack} }

func pools(c []candidate) []string {
	var out []string
	for _, p := range c {
		out = append(out, p.Pool)
	}
	return out
}

func TestPlace(t *testing.T) {
	cluster := []candidate{
		{Pool: "a1", Node: "a", Labels: lbl("z1", "r1"), Capacity: 100, Allocated: 10},
		{Pool: "a2", Node: "a", Labels: lbl("z1", "r1"), Capacity: 100, Allocated: 0},
		{Pool: "b1", Node: "b", Labels: lbl("z1", "r2"), Capacity: 100, Allocated: 5},
		{Pool: "c1", Node: "c", Labels: lbl("z2", "r3"), Capacity: 100, Allocated: 90},
		{Pool: "d1", Node: "d", Labels: lbl("z2", "r3"), Capacity: 100, Allocated: 50},
	}
	cases := []struct {
		name  string
		pools []candidate
		repl  int
		size  int64
		rules spec.Placement
		want  string // pools in order, or an error substring after "err:"
	}{
		{"most free first", cluster, 1, 10, spec.Placement{}, "a2"},
		{"second replica in another zone", cluster, 2, 10, spec.Placement{}, "a2 d1"},
		{"third: new rack before more free space", cluster, 3, 10, spec.Placement{}, "a2 d1 b1"},
		{"never two on one node in a cluster", cluster, 4, 10, spec.Placement{}, "a2 d1 b1 c1"},
		{"repl above node count", cluster, 5, 10, spec.Placement{}, "err:--repl 5 needs 5 nodes, the cluster has 4"},
		{"pin to a zone", cluster, 2, 10, spec.Placement{Pin: map[string]string{"zone": "z2"}}, "d1 c1"},
		{"pin leaves too few nodes", cluster, 3, 10, spec.Placement{Pin: map[string]string{"zone": "z2"}}, "err:matching the volume's placement labels, the cluster has 2"},
		{"avoid a rack", cluster, 2, 10, spec.Placement{Avoid: map[string]string{"rack": "r1"}}, "b1 d1"},
		{"too large for every disk", cluster, 1, 1000, spec.Placement{}, "err:larger than the pool can ever hold"},
		{"too large for enough nodes", []candidate{
			{Pool: "a1", Node: "a", Capacity: 100}, {Pool: "b1", Node: "b", Capacity: 10},
		}, 2, 50, spec.Placement{}, "err:only 1 of the 2"},
		{"lone node mirrors its disks", []candidate{
			{Pool: "p1", Node: "n", Capacity: 100, Allocated: 50}, {Pool: "p2", Node: "n", Capacity: 100},
		}, 2, 10, spec.Placement{}, "p2 p1"},
		{"lone node, repl above its disks", []candidate{
			{Pool: "p1", Node: "n", Capacity: 100}, {Pool: "p2", Node: "n", Capacity: 100},
		}, 3, 10, spec.Placement{}, "err:--repl 3 needs 3 pool dirs on distinct disks, the cluster has 2"},
	}
	for _, c := range cases {
		got, err := place(c.pools, c.repl, c.size, c.rules)
		if want, isErr := strings.CutPrefix(c.want, "err:"); isErr {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: got %v, %v; want error %q", c.name, pools(got), err, want)
			}
			if err != nil && !errors.Is(err, api.ErrInvalid) && !errors.Is(err, api.ErrNoCapacity) {
				t.Errorf("%s: error %v is neither ErrInvalid nor ErrNoCapacity", c.name, err)
			}
			continue
		}
		if err != nil || strings.Join(pools(got), " ") != c.want {
			t.Errorf("%s: got %v, %v; want %s", c.name, pools(got), err, c.want)
		}
	}
}
