package demo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// markerFile in the state dir says the directory is the demo's, so Down
// may remove it.
const markerFile = ".ballast-demo"

// Cluster is a running demo: the Swarm nodes, each with its dockerd and
// Ballast daemon, and the images they run.
type Cluster struct {
	Config        Config
	Nodes         []Node
	NodeImage     string
	WorkloadImage string // loaded into every node's engine
}

// Up brings up the demo's cluster: node image (built once per machine),
// workload image, state dir, network, node containers, Swarm, Ballast
// cluster. When it fails or ctx is cancelled (Ctrl-C), it removes what it
// made (Down) before returning.
func Up(ctx context.Context, cfg Config) (c *Cluster, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if cfg.Binary == "" {
		return nil, errors.New("demo: no ballast binary given")
	}
	unlock, err := lock(cfg)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if cfg.Binary, err = filepath.Abs(cfg.Binary); err != nil {
		return nil, fmt.Errorf("demo: ballast binary: %w", err)
	}
	if err := CheckStatic(cfg.Binary); err != nil {
		return nil, err
	}
	if out, err := docker(ctx, "ps", "-aq", "--filter", "label="+cfg.label()); err != nil {
		return nil, fmt.Errorf("demo: is Docker running? %w", err)
	} else if out != "" {
		return nil, fmt.Errorf("demo %q is already up (containers labelled %s exist); run `ballast demo down --name %s` first", cfg.Name, cfg.label(), cfg.Name)
	}
	if err := claimStateDir(cfg); err != nil {
		return nil, err
	}
	defer func() {
		if err == nil {
			return
		}
		log.Warn("demo: bringing up failed; removing what was made", "err", err)
		// Clean up even when ctx was cancelled: that is Ctrl-C.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
		defer cancel()
		if derr := down(dctx, cfg); derr != nil {
			err = errors.Join(err, fmt.Errorf("and cleaning up: %w", derr))
		}
	}()
	start := time.Now()
	c = &Cluster{Config: cfg}
	if c.NodeImage, err = EnsureNodeImage(ctx, cfg); err != nil {
		return nil, err
	}
	if c.WorkloadImage, err = EnsureWorkloadImage(ctx, cfg, cfg.Binary); err != nil {
		return nil, err
	}
	if err = prepareHost(ctx, cfg); err != nil {
		return nil, err
	}
	subnet, err := createNetwork(ctx, cfg)
	if err != nil {
		return nil, err
	}
	c.Nodes = plan(cfg, subnet)
	t := time.Now()
	for _, n := range c.Nodes {
		if err = runNode(ctx, cfg, c.NodeImage, c.WorkloadImage, n, c.Nodes[0]); err != nil {
			return nil, err
		}
	}
	log.Info("demo: node containers started; waiting for their dockerd and Ballast daemon",
		"nodes", len(c.Nodes), "network", cfg.networkName(), "subnet", subnet.String())
	if err = waitReady(ctx, c.Nodes, 3*time.Minute); err != nil {
		return nil, err
	}
	log.Info("demo: nodes ready", "took", time.Since(t).Round(100*time.Millisecond))
	t = time.Now()
	if err = formSwarm(ctx, cfg, c.Nodes); err != nil {
		return nil, err
	}
	log.Info("demo: swarm formed", "managers", cfg.Managers, "workers", cfg.Nodes-cfg.Managers, "took", time.Since(t).Round(100*time.Millisecond))
	t = time.Now()
	if err = waitBallastUp(ctx, c.Nodes[0].Name, len(c.Nodes), 2*time.Minute); err != nil {
		return nil, err
	}
	log.Info("demo: ballast cluster up", "nodes", len(c.Nodes), "took", time.Since(t).Round(100*time.Millisecond))
	t = time.Now()
	if err = loadImage(ctx, cfg, c.WorkloadImage, c.names()); err != nil {
		return nil, err
	}
	log.Info("demo: workload image loaded into every node", "image", c.WorkloadImage, "took", time.Since(t).Round(100*time.Millisecond))
	log.Info("demo: up", "name", cfg.Name, "nodes", len(c.Nodes), "took", time.Since(start).Round(100*time.Millisecond))
	return c, nil
}

func (c *Cluster) names() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Name)
	}
	return out
}

// Exec runs argv inside node (a Node's Name) and returns its stdout.
func (c *Cluster) Exec(ctx context.Context, node string, argv ...string) (string, error) {
	return dockerExec(ctx, node, argv...)
}

// Node returns node i (counted from 1).
func (c *Cluster) Node(i int) Node { return c.Nodes[i-1] }

// claimStateDir creates the state dir with its marker, or accepts an
// existing one that has the marker or is empty; it refuses any other
// directory, since Down removes it.
func claimStateDir(cfg Config) error {
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return fmt.Errorf("demo state dir: %w", err)
	}
	marker := filepath.Join(cfg.StateDir, markerFile)
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	ents, err := os.ReadDir(cfg.StateDir)
	if err != nil {
		return fmt.Errorf("demo state dir: %w", err)
	}
	if len(ents) > 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return fmt.Errorf("demo state dir %s is not empty and not the demo's (%s); choose another --state-dir", cfg.StateDir, strings.Join(names, ", "))
	}
	if err := os.WriteFile(marker, []byte(cfg.Name+"\n"), 0o644); err != nil {
		return fmt.Errorf("demo state dir: %w", err)
	}
	return nil
}

// Attach returns the cluster of the demo cfg.Name that is up (made by Up
// in this process or another, as by `make demo-up`), from its containers'
// labels: the scenario and the report run against it. Nodes that were
// killed are listed too.
func Attach(ctx context.Context, cfg Config) (*Cluster, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	f := func(k string) string { return fmt.Sprintf(`{{.Label "%s.%s"}}`, LabelKey, k) }
	out, err := docker(ctx, "ps", "-a", "--filter", "label="+cfg.label(), "--format",
		"{{.Names}}\t"+f("index")+"\t"+f("node")+"\t"+f("ip")+"\t"+f("role")+"\t"+f("workload-image")+"\t{{.Image}}")
	if err != nil {
		return nil, fmt.Errorf("demo %s: %w", cfg.Name, err)
	}
	c := &Cluster{Config: cfg}
	for _, l := range lines(out) {
		p := strings.Split(l, "\t")
		if len(p) != 7 {
			return nil, fmt.Errorf("demo %s: unexpected docker ps line %q", cfg.Name, l)
		}
		var idx int
		if _, err := fmt.Sscan(p[1], &idx); err != nil {
			return nil, fmt.Errorf("demo %s: container %s has no index label: %w", cfg.Name, p[0], err)
		}
		c.Nodes = append(c.Nodes, Node{Index: idx, Name: p[0], ID: p[2], IP: p[3], Manager: p[4] == "manager"})
		c.WorkloadImage, c.NodeImage = p[5], p[6]
	}
	if len(c.Nodes) == 0 {
		return nil, fmt.Errorf("demo %s is not up: no containers labelled %s", cfg.Name, cfg.label())
	}
	sort.Slice(c.Nodes, func(i, j int) bool { return c.Nodes[i].Index < c.Nodes[j].Index })
	return c, nil
}
