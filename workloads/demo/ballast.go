package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ballast-io/ballast/pool/api"
)

// BallastNode is a node as `ballast cluster status --json` shows it (the
// fields the demo reads).
type BallastNode struct {
	ID    string        `json:"id"`
	Addr  string        `json:"addr"`
	State api.NodeState `json:"state"`
	Etcd  string        `json:"etcd"`
}

// BallastNodes lists the Ballast cluster's nodes as the daemon in node
// container sees them.
func BallastNodes(ctx context.Context, node string) ([]BallastNode, error) {
	out, err := dockerExec(ctx, node, "ballast", "cluster", "status", "--json")
	if err != nil {
		return nil, fmt.Errorf("ballast cluster status: %w", err)
	}
	var ns []BallastNode
	if err := json.Unmarshal([]byte(out), &ns); err != nil {
		return nil, fmt.Errorf("ballast cluster status: %w: %s", err, tail(out, 300))
	}
	return ns, nil
}

// waitBallastUp waits until the daemon in node sees want nodes up.
func waitBallastUp(ctx context.Context, node string, want int, timeout time.Duration) error {
	return poll(ctx, timeout, 500*time.Millisecond, fmt.Sprintf("%d Ballast nodes up", want), func() (bool, string, error) {
		ns, err := BallastNodes(ctx, node)
		if err != nil {
			return false, err.Error(), nil
		}
		up := 0
		for _, n := range ns {
			if n.State == api.NodeUp {
				up++
			}
		}
		return up == want, fmt.Sprintf("%d of %d up: %+v", up, want, ns), nil
	})
}
