// Command ballast is Ballast's single binary: the node daemon
// ("ballast daemon"), the CLI that talks to it over its unix socket, and
// the processes of the sensor workload ("ballast workload ...").
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/version"
)

const defaultSocket = "/run/ballast/ballast.sock"

// cli holds the flags every client command shares.
type cli struct {
	socket string
	json   bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	c := &cli{}
	root := &cobra.Command{
		Use:           "ballast",
		Short:         "Ballast: pooled, replicated block volumes for containers",
		Version:       version.String(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	sock := os.Getenv("BALLAST_SOCKET")
	if sock == "" {
		sock = defaultSocket
	}
	root.PersistentFlags().StringVar(&c.socket, "socket", sock, "daemon socket (env BALLAST_SOCKET)")
	root.AddCommand(newDaemonCmd(), newVolumeCmd(c), newSnapshotCmd(c), newSecretCmd(c), newBackupCmd(c), newScheduleCmd(c), newPoolCmd(c), newClusterCmd(c), newWorkloadCmd(), newDemoCmd())
	requireSubcommands(root)
	return root
}

// requireSubcommands makes every group command (ballast, ballast pool, ...)
// fail when run without one of its subcommands, or with an unknown one,
// printing its usage: cobra would print help and exit 0, and a script
// would take that for success. --help still prints help and exits 0.
func requireSubcommands(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		requireSubcommands(sub)
	}
	if !cmd.HasAvailableSubCommands() || cmd.Runnable() {
		return
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		fmt.Fprint(cmd.ErrOrStderr(), cmd.UsageString())
		if len(args) > 0 {
			return fmt.Errorf("unknown command %q for %q; see the usage above", args[0], cmd.CommandPath())
		}
		return fmt.Errorf("%q needs a subcommand; see the usage above", cmd.CommandPath())
	}
}

// client dials the daemon for one command.
func (c *cli) client() (*api.Client, error) {
	return api.Dial(c.socket)
}

// withClient runs fn with a client to the daemon and closes it after.
func (c *cli) withClient(fn func(*api.Client) error) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	return fn(cl)
}
