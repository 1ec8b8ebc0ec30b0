package demo

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Node is one Swarm node: a container running dockerd and a Ballast daemon.
type Node struct {
	Index   int    // 1..N
	Name    string // container name and hostname, also the Swarm node's hostname
	ID      string // the Ballast node ID
	IP      string // address on the demo network
	Manager bool   // Swarm manager (else worker)
}

// Role is "manager" or "worker", the node's Swarm role.
func (n Node) Role() string {
	if n.Manager {
		return "manager"
	}
	return "worker"
}

// BallastAddr is the node's Ballast --listen address.
func (n Node) BallastAddr() string {
	return netip.AddrPortFrom(netip.MustParseAddr(n.IP), BallastPort).String()
}

// createNetwork makes the demo's user-defined bridge network (MTU 1400,
// so the nodes' overlay networks fit inside it) and returns its subnet.
func createNetwork(ctx context.Context, cfg Config) (netip.Prefix, error) {
	name := cfg.networkName()
	create := func(extra ...string) error {
		args := append([]string{"network", "create", "--driver", "bridge", "--label", cfg.label(),
			"--opt", "com.docker.network.driver.mtu=1400"}, extra...)
		_, err := docker(ctx, append(args, name)...)
		return err
	}
	subnet := func() (netip.Prefix, string, error) {
		out, err := docker(ctx, "network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", name)
		if err != nil {
			return netip.Prefix{}, "", err
		}
		for _, s := range strings.Fields(out) {
			p, err := netip.ParsePrefix(s)
			if err == nil && p.Addr().Is4() && p.Bits() <= 26 {
				return p.Masked(), out, nil
			}
		}
		return netip.Prefix{}, out, fmt.Errorf("demo network %s: no IPv4 subnet of /26 or wider in %q", name, out)
	}
	if _, err := docker(ctx, "network", "inspect", name); err == nil {
		p, _, err := subnet()
		return p, err
	}
	// Fixed addresses (docker run --ip) need a subnet the user
	// configured: let Docker pick a free one, then make the network again
	// with it given explicitly.
	if err := create(); err != nil {
		return netip.Prefix{}, fmt.Errorf("demo network: %w", err)
	}
	p, _, err := subnet()
	if _, rerr := docker(ctx, "network", "rm", name); rerr != nil {
		return netip.Prefix{}, fmt.Errorf("demo network: %w", rerr)
	}
	if err != nil {
		return netip.Prefix{}, err
	}
	if err := create("--subnet", p.String()); err != nil {
		return netip.Prefix{}, fmt.Errorf("demo network: %w", err)
	}
	return p, nil
}

// plan names the nodes and gives them fixed addresses in subnet (.11,
// .12, ...), so the entrypoints know where to join before any node runs.
func plan(cfg Config, subnet netip.Prefix) []Node {
	nodes := make([]Node, cfg.Nodes)
	base := subnet.Addr().As4()
	for i := range nodes {
		ip := base
		ip[3] += byte(11 + i)
		nodes[i] = Node{
			Index:   i + 1,
			Name:    cfg.nodeName(i + 1),
			ID:      fmt.Sprintf("node%d", i+1),
			IP:      netip.AddrFrom4(ip).String(),
			Manager: i < cfg.Managers,
		}
	}
	return nodes
}

// nodeEnv is the environment the entrypoint reads.
func nodeEnv(cfg Config, n Node, first Node) []string {
	join := ""
	if n.Index != first.Index {
		join = first.BallastAddr()
	}
	return []string{
		"BALLAST_DEMO_NODE=" + n.ID,
		"BALLAST_DEMO_IP=" + n.IP,
		"BALLAST_DEMO_JOIN=" + join,
		"BALLAST_DEMO_LEASE_TTL=" + cfg.LeaseTTL.String(),
		// A distinct bridge per node, clear of the demo network and of
		// Swarm's address pool.
		"BALLAST_DEMO_BIP=" + fmt.Sprintf("10.199.%d.1/24", n.Index),
	}
}

// runNode starts node n's container with the flags that make
// Docker-in-Docker, FUSE and loop devices work on these hosts
// (--privileged fails here: the engine's bounding set lacks
// CAP_SYS_RESOURCE).
func runNode(ctx context.Context, cfg Config, image, workloadImage string, n, first Node) error {
	args := []string{"run", "-d",
		"--name", n.Name, "--hostname", n.Name,
		"--label", cfg.label(), "--label", LabelKey + ".node=" + n.ID,
		"--label", fmt.Sprintf("%s.index=%d", LabelKey, n.Index), "--label", LabelKey + ".role=" + n.Role(),
		"--label", LabelKey + ".ip=" + n.IP, "--label", LabelKey + ".workload-image=" + workloadImage,
		"--network", cfg.networkName(), "--ip", n.IP,
		"--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
		"--cgroupns", "private", "--init",
		"--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
		"--security-opt", "systempaths=unconfined",
		"--device", "/dev/fuse", "--device", "/dev/loop-control",
		"--device-cgroup-rule", "b 7:* rwm",
		"--tmpfs", "/run:rw,exec,mode=755", "--tmpfs", "/tmp:rw,exec,mode=1777",
		"-v", cfg.nodeDockerDir(n.Index) + ":/var/lib/docker",
		"-v", cfg.nodeBallastDir(n.Index) + ":/var/lib/ballast",
		"-v", cfg.shareDir() + ":" + ShareDir + ":ro",
	}
	for _, e := range nodeEnv(cfg, n, first) {
		args = append(args, "-e", e)
	}
	args = append(args, image, "/bin/sh", ShareDir+"/entrypoint.sh")
	if _, err := docker(ctx, args...); err != nil {
		return fmt.Errorf("start node %s: %w", n.Name, err)
	}
	return nil
}

// waitReady waits until every node's entrypoint marked it ready: dockerd
// answers and has loaded the ballast plugin.
func waitReady(ctx context.Context, nodes []Node, timeout time.Duration) error {
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = poll(ctx, timeout, 500*time.Millisecond, "node "+n.Name+" ready (dockerd up, ballast plugin loaded)", func() (bool, string, error) {
				state, err := docker(ctx, "inspect", "--format", "{{.State.Status}}", n.Name)
				if err != nil {
					return false, "", err
				}
				if state != "running" {
					logs, _ := run(ctx, nil, "docker", "logs", "--tail", "20", n.Name)
					return false, "", fmt.Errorf("node %s is %s: %s", n.Name, state, logs)
				}
				if _, err := dockerExec(ctx, n.Name, "test", "-e", "/run/ballast-demo/ready"); err != nil {
					return false, nodeLogTail(ctx, n.Name), nil
				}
				return true, "", nil
			})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// nodeLogTail is the last lines of a node's Ballast and dockerd logs, for
// error messages.
func nodeLogTail(ctx context.Context, node string) string {
	out, _ := dockerExec(ctx, node, "sh", "-c", "tail -n 3 /var/log/ballast.log; tail -n 3 /var/log/dockerd.log")
	return tail(out, 800)
}
