package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ballast-io/ballast/workloads/demo"
)

// newDemoCmd is "ballast demo": the multi-node Docker Swarm of `make demo-up`
// and `make demo-down` on this machine (see workloads/demo).
func newDemoCmd() *cobra.Command {
	var cfg demo.Config
	var logLevel string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run Ballast on a multi-node Docker Swarm on this machine (needs root and a Docker engine)",
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&cfg.Name, "name", demo.DefaultName, "prefix of the demo's containers and network, and value of its "+demo.LabelKey+" label")
	pf.StringVar(&cfg.StateDir, "state-dir", "", "the demo's host state (default /var/lib/NAME)")
	pf.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.PersistentPreRunE = func(*cobra.Command, []string) error {
		l, err := newLogger(logLevel, false)
		cfg.Logger = l
		return err
	}

	image := &cobra.Command{
		Use:   "image",
		Short: "Build the Swarm node image (debootstrap; once per machine) unless it exists, and print its tag",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tag, err := demo.EnsureNodeImage(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			_, err = os.Stdout.WriteString(tag + "\n")
			return err
		},
	}
	imageFlags(image, &cfg)
	up := &cobra.Command{
		Use:   "up",
		Short: "Bring up the Swarm nodes, each with its dockerd and a Ballast daemon of one cluster; Ctrl-C removes what was made",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := defaultBinary(&cfg); err != nil {
				return err
			}
			c, err := demo.Up(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			for _, n := range c.Nodes {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\n", n.Name, n.IP, n.Role())
			}
			fmt.Fprintf(cmd.OutOrStdout(), "try: docker exec -it %s docker node ls\nremove: ballast demo down --name %s\n", c.Node(1).Name, cfg.Name)
			return nil
		},
	}
	upFlags(up, &cfg)

	down := &cobra.Command{
		Use:   "down",
		Short: "Remove every container, network, mount, loop device and directory the demo made (safe to run twice)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Ctrl-C must not leave half a teardown: finish it.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), 5*time.Minute)
			defer cancel()
			return demo.Down(ctx, cfg)
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the demo's nodes: container, address, Swarm role and status, Ballast state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := demo.Attach(ctx, cfg)
			if err != nil {
				return err
			}
			swarm := map[string]string{}
			ballast := map[string]string{}
			for _, n := range c.Nodes {
				if !n.Manager {
					continue
				}
				sn, err := demo.SwarmNodes(ctx, n.Name)
				if err != nil {
					continue
				}
				for _, s := range sn {
					swarm[s.Hostname] = s.Status
				}
				bn, _ := demo.BallastNodes(ctx, n.Name)
				for _, b := range bn {
					ballast[b.ID] = string(b.State)
				}
				break
			}
			if asJSON {
				type row struct {
					Container   string `json:"container"`
					Address     string `json:"address"`
					Role        string `json:"role"`
					Swarm       string `json:"swarm"`
					BallastNode string `json:"ballast_node"`
					State       string `json:"state"`
				}
				var out []row
				for _, n := range c.Nodes {
					out = append(out, row{n.Name, n.IP, n.Role(), swarm[n.Name], n.ID, ballast[n.ID]})
				}
				return printJSON(cmd.OutOrStdout(), out)
			}
			var rows [][]string
			for _, n := range c.Nodes {
				rows = append(rows, []string{n.Name, n.IP, n.Role(), orDash(swarm[n.Name]), n.ID, orDash(ballast[n.ID])})
			}
			return table(cmd.OutOrStdout(), []string{"CONTAINER", "ADDRESS", "ROLE", "SWARM", "BALLAST NODE", "STATE"}, rows)
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	cmd.AddCommand(image, up, down, status, demoRunCmd(&cfg), demoScenarioCmd(&cfg), demoMonitorCmd())
	return cmd
}

// upFlags declares the flags that say what cluster to bring up on c.
func upFlags(c *cobra.Command, cfg *demo.Config) {
	c.Flags().IntVar(&cfg.Nodes, "nodes", demo.DefaultNodes, "Swarm nodes")
	c.Flags().IntVar(&cfg.Managers, "managers", 0, "of them, Swarm managers, the rest workers (default: 3, or all when fewer)")
	c.Flags().StringVar(&cfg.Binary, "binary", "", "the statically linked (CGO_ENABLED=0) ballast binary mounted into the nodes (default: this one)")
	c.Flags().DurationVar(&cfg.LeaseTTL, "lease-ttl", demo.DefaultLeaseTTL, "the Ballast daemons' --lease-ttl")
	imageFlags(c, cfg)
}

// defaultBinary makes this binary the nodes' unless --binary was given.
func defaultBinary(cfg *demo.Config) error {
	if cfg.Binary != "" {
		return nil
	}
	var err error
	if cfg.Binary, err = os.Executable(); err != nil {
		return fmt.Errorf("demo: find this binary: %w", err)
	}
	return nil
}

// imageFlags declares the node image's --mirror and --suite on c.
func imageFlags(c *cobra.Command, cfg *demo.Config) {
	c.Flags().StringVar(&cfg.Mirror, "mirror", demo.DefaultMirror, "Debian mirror for the node image")
	c.Flags().StringVar(&cfg.Suite, "suite", demo.DefaultSuite, "Debian release of the node image")
}
