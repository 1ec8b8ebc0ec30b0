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
	Capacity  int64
	Allocated int64
}

// place chooses repl pools for a volume of size bytes: on distinct nodes
// when the cluster has enough of them, otherwise on distinct pools of the
// same node (a single node mirrors its disks), most free space first. It
// only decides; it touches nothing.
func place(pools []candidate, repl int, size int64) ([]candidate, error) {
	if repl > len(pools) {
		return nil, fmt.Errorf("%w: --repl %d needs %d pool dirs on distinct disks, the cluster has %d", api.ErrInvalid, repl, repl, len(pools))
	}
	var fit []candidate
	var biggest int64
	for _, p := range pools {
		biggest = max(biggest, p.Capacity)
		if p.Capacity >= size {
			fit = append(fit, p)
		}
	}
	if len(fit) < repl {
		return nil, fmt.Errorf("%w: a volume of %s is larger than the pool can ever hold: %d pool dir(s) can hold it, --repl %d needs %d (largest pool dir: %s)",
			api.ErrNoCapacity, spec.FormatSize(size), len(fit), repl, repl, spec.FormatSize(biggest))
	}
	slices.SortStableFunc(fit, func(a, b candidate) int {
		fa, fb := a.Capacity-a.Allocated, b.Capacity-b.Allocated
		switch {
		case fa > fb:
			return -1
		case fa < fb:
			return 1
		}
		return 0
	})
	// First pass: one replica per node. Second pass: fill up from any pool
	// not used yet.
	var out []candidate
	usedNode, usedPool := map[string]bool{}, map[string]bool{}
	for _, p := range fit {
		if len(out) < repl && !usedNode[p.Node] {
			out = append(out, p)
			usedNode[p.Node], usedPool[p.Pool] = true, true
		}
	}
	for _, p := range fit {
		if len(out) < repl && !usedPool[p.Pool] {
			out = append(out, p)
			usedPool[p.Pool] = true
		}
	}
	return out, nil
}
