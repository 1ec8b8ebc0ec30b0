package node

import (
	"context"
	"fmt"

	"github.com/ballast-io/ballast/pool/api"
)

// ListPools lists the disks of every node of the cluster with their
// capacity and use. This node's figures are live; other nodes' are what
// they last registered.
func (n *Node) ListPools(ctx context.Context) ([]api.Pool, error) {
	nodes, alive, err := n.liveness(ctx)
	if err != nil {
		return nil, err
	}
	vols, err := n.meta.Volumes(ctx)
	if err != nil {
		return nil, err
	}
	count := map[string]int{}
	for _, v := range vols {
		for _, r := range v.Replicas {
			count[r.Pool]++
		}
	}
	var out []api.Pool
	for _, nd := range nodes {
		for _, p := range nd.Pools {
			ap := api.Pool{ID: p.ID, Node: nd.ID, Dir: p.Dir, Capacity: p.Capacity, Allocated: p.Allocated,
				Replicas: count[p.ID], Online: alive[nd.ID]}
			if local, ok := n.pools[p.ID]; ok && nd.ID == n.cfg.ID {
				alloc, capacity, err := local.store.Usage()
				if err != nil {
					return nil, fmt.Errorf("pool dir %s: %w", local.dir, err)
				}
				ap.Allocated, ap.Capacity = alloc, capacity
			}
			out = append(out, ap)
		}
	}
	return out, nil
}
