package node

import (
	"context"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/meta"
)

// ClusterStatus lists every node that ever joined, up or down.
func (n *Node) ClusterStatus(ctx context.Context) ([]api.Node, error) {
	nodes, alive, err := n.liveness(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.Node, 0, len(nodes))
	for _, nd := range nodes {
		an := api.Node{ID: nd.ID, Addr: nd.Addr, Labels: nd.Labels, Version: nd.Version, Pools: len(nd.Pools), State: "down", Since: nd.DownSince}
		if alive[nd.ID] {
			an.State, an.Since = "up", nd.Started
		}
		for _, p := range nd.Pools {
			an.Capacity += p.Capacity
			an.Allocated += p.Allocated
		}
		out = append(out, an)
	}
	return out, nil
}

// liveness reads every node's record and which of them hold a live lease.
func (n *Node) liveness(ctx context.Context) ([]meta.Node, map[string]bool, error) {
	nodes, err := n.meta.Nodes(ctx)
	if err != nil {
		return nil, nil, err
	}
	alive, err := n.meta.Alive(ctx)
	if err != nil {
		return nil, nil, err
	}
	return nodes, alive, nil
}

// watchDeaths records when other nodes go down, for cluster status.
func (n *Node) watchDeaths(ctx context.Context) {
	n.meta.WatchDeaths(ctx, func(id string) {
		if id == n.cfg.ID {
			return
		}
		n.log.Warn("node went down", "node", id)
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := n.meta.MarkDown(mctx, id, time.Now().UTC()); err != nil {
			n.log.Error("record node down", "node", id, "err", err)
		}
	})
}
