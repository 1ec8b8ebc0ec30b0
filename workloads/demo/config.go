package demo

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"time"
)

// Defaults of Config.
const (
	DefaultName     = "ballast-demo"
	DefaultNodes    = 4
	DefaultManagers = 3
	DefaultMirror   = "http://deb.debian.org/debian"
	DefaultSuite    = "bookworm"
	DefaultLeaseTTL = 3 * time.Second
	// LabelKey labels every container, network and volume the demo makes;
	// its value is the demo's Name. Down removes what carries it.
	LabelKey = "ballast-demo"
	// BallastPort is where each node's daemon serves the cluster (etcd
	// takes the next two ports).
	BallastPort = 7400
	// PluginSocket is the Ballast Docker plugin's socket inside a node.
	PluginSocket = "/run/docker/plugins/ballast.sock"
	// ShareDir is where the demo's shared files (ballast binary, cluster
	// secret, entrypoint) are mounted read-only inside every node.
	ShareDir = "/ballast-demo"
)

// Config says what cluster to bring up.
type Config struct {
	// Name prefixes every container and network and is the value of the
	// ballast-demo label (default "ballast-demo"). Two demos with
	// different names can run side by side.
	Name string
	// Nodes is the number of Swarm nodes (default 4); the first Managers
	// of them (default 3, at most Nodes) are Swarm managers, the rest
	// workers. The first three Ballast daemons run the cluster's etcd.
	Nodes    int
	Managers int
	// Binary is the host's statically linked ballast binary
	// (CGO_ENABLED=0), bind-mounted into every node.
	Binary string
	// StateDir holds the demo's host state: per-node /var/lib/docker and
	// /var/lib/ballast, the shared files (default /var/lib/NAME). Down
	// removes it.
	StateDir string
	// Mirror and Suite are the Debian mirror and release of the node image.
	Mirror string
	Suite  string
	// LeaseTTL is the Ballast daemons' --lease-ttl (default 3s).
	LeaseTTL time.Duration
	// Logger gets the progress lines (default slog.Default()).
	Logger *slog.Logger
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,30}$`)

// withDefaults fills in the defaults and checks the result.
func (c Config) withDefaults() (Config, error) {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if !nameRE.MatchString(c.Name) {
		return c, fmt.Errorf("demo name %q: use 1-31 characters from [a-z0-9-], starting with a letter or digit", c.Name)
	}
	if c.Nodes == 0 {
		c.Nodes = DefaultNodes
	}
	if c.Nodes < 1 || c.Nodes > 32 {
		return c, fmt.Errorf("demo: %d nodes: use 1 to 32", c.Nodes)
	}
	if c.Managers == 0 {
		c.Managers = min(DefaultManagers, c.Nodes)
	}
	if c.Managers < 1 || c.Managers > c.Nodes {
		return c, fmt.Errorf("demo: %d managers for %d nodes: use 1 to %d", c.Managers, c.Nodes, c.Nodes)
	}
	if c.StateDir == "" {
		c.StateDir = filepath.Join("/var/lib", c.Name)
	}
	if !filepath.IsAbs(c.StateDir) {
		abs, err := filepath.Abs(c.StateDir)
		if err != nil {
			return c, fmt.Errorf("demo state dir %q: %w", c.StateDir, err)
		}
		c.StateDir = abs
	}
	if c.Mirror == "" {
		c.Mirror = DefaultMirror
	}
	if c.Suite == "" {
		c.Suite = DefaultSuite
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// label is the --label / --filter argument naming this demo's resources.
func (c Config) label() string { return LabelKey + "=" + c.Name }

// nodeName is the container (and host) name of node i, counted from 1.
func (c Config) nodeName(i int) string { return fmt.Sprintf("%s-node%d", c.Name, i) }

// networkName is the demo's Docker network.
func (c Config) networkName() string { return c.Name }
