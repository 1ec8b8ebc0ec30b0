package demo

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// swarmAddrPool is Swarm's pool for overlay networks, clear of the nodes'
// bridges (10.199.N.0/24) and of the demo network.
const swarmAddrPool = "10.201.0.0/16"

// formSwarm makes the nodes one Swarm: init on the first node with a 1 s
// dispatcher heartbeat (a dead node's tasks move within seconds instead
// of tens of seconds), the other managers join one at a time (Raft adds
// one member at a time), the workers together; it waits until every node
// is Ready and labels them ballast.demo.node=nodeI and
// ballast.demo.role=manager|worker.
func formSwarm(ctx context.Context, cfg Config, nodes []Node) error {
	first := nodes[0]
	if _, err := dockerExec(ctx, first.Name, "docker", "swarm", "init",
		"--advertise-addr", first.IP, "--listen-addr", first.IP+":2377",
		"--default-addr-pool", swarmAddrPool, "--dispatcher-heartbeat", "1s"); err != nil {
		return fmt.Errorf("swarm init on %s: %w", first.Name, err)
	}
	mtok, err := dockerExec(ctx, first.Name, "docker", "swarm", "join-token", "-q", "manager")
	if err != nil {
		return fmt.Errorf("swarm manager token: %w", err)
	}
	wtok, err := dockerExec(ctx, first.Name, "docker", "swarm", "join-token", "-q", "worker")
	if err != nil {
		return fmt.Errorf("swarm worker token: %w", err)
	}
	join := func(n Node, tok string) error {
		_, err := dockerExec(ctx, n.Name, "docker", "swarm", "join", "--token", tok,
			"--advertise-addr", n.IP, "--listen-addr", n.IP+":2377", first.IP+":2377")
		if err != nil {
			return fmt.Errorf("swarm join of %s: %w", n.Name, err)
		}
		return nil
	}
	for _, n := range nodes[1:] {
		if n.Manager {
			if err := join(n, mtok); err != nil {
				return err
			}
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes[1:] {
		if !n.Manager {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = join(n, wtok) }()
		}
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	if err := waitSwarmReady(ctx, first.Name, len(nodes), time.Minute); err != nil {
		return err
	}
	for _, n := range nodes {
		if _, err := dockerExec(ctx, first.Name, "docker", "node", "update",
			"--label-add", "ballast.demo.node="+n.ID, "--label-add", "ballast.demo.role="+n.Role(), n.Name); err != nil {
			return fmt.Errorf("label swarm node %s: %w", n.Name, err)
		}
	}
	return nil
}

// SwarmNode is a line of `docker node ls`.
type SwarmNode struct {
	Hostname, Status, Availability, ManagerStatus string
}

// SwarmNodes lists the Swarm's nodes as the manager node sees them.
func SwarmNodes(ctx context.Context, manager string) ([]SwarmNode, error) {
	out, err := dockerExec(ctx, manager, "docker", "node", "ls", "--format", "{{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}")
	if err != nil {
		return nil, fmt.Errorf("swarm nodes: %w", err)
	}
	var ns []SwarmNode
	for _, l := range lines(out) {
		f := strings.Split(l, "\t")
		for len(f) < 4 {
			f = append(f, "")
		}
		ns = append(ns, SwarmNode{Hostname: f[0], Status: f[1], Availability: f[2], ManagerStatus: f[3]})
	}
	return ns, nil
}

func waitSwarmReady(ctx context.Context, manager string, want int, timeout time.Duration) error {
	return poll(ctx, timeout, 500*time.Millisecond, fmt.Sprintf("%d Swarm nodes Ready", want), func() (bool, string, error) {
		ns, err := SwarmNodes(ctx, manager)
		if err != nil {
			return false, err.Error(), nil
		}
		ready := 0
		for _, n := range ns {
			if n.Status == "Ready" {
				ready++
			}
		}
		return ready == want, fmt.Sprintf("%d of %d Ready: %v", ready, want, ns), nil
	})
}
