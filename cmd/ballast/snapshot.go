package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ballast-io/ballast/pool/api"
)

func newSnapshotCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Aliases: []string{"snap", "snapshots"}, Short: "Take, list and delete snapshots"}
	list := &cobra.Command{
		Use:     "list [VOLUME]",
		Aliases: []string{"ls"},
		Short:   "List the snapshots of a volume, or of all volumes",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vol := ""
			if len(args) == 1 {
				vol = args[0]
			}
			return c.withClient(func(cl *api.Client) error {
				snaps, err := cl.ListSnapshots(cmd.Context(), vol)
				if err != nil {
					return err
				}
				if c.json {
					return printJSON(cmd.OutOrStdout(), snaps)
				}
				var rows [][]string
				for _, s := range snaps {
					rows = append(rows, []string{s.Volume, s.Name, s.State, s.Created.Format("2006-01-02 15:04:05Z07:00"), orDash(strings.Join(s.Clones, ","))})
				}
				return table(cmd.OutOrStdout(), []string{"VOLUME", "SNAPSHOT", "STATE", "CREATED", "CLONES"}, rows)
			})
		},
	}
	list.Flags().BoolVar(&c.json, "json", false, "print as JSON")
	create := &cobra.Command{
		Use:   "create VOLUME SNAPSHOT",
		Short: "Take a snapshot (the filesystem is frozen for the instant it takes)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(func(cl *api.Client) error {
				s, err := cl.CreateSnapshot(cmd.Context(), args[0], args[1])
				if err != nil {
					return err
				}
				if c.json {
					return printJSON(cmd.OutOrStdout(), s)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "snapshot %s@%s created\n", s.Volume, s.Name)
				return nil
			})
		},
	}
	create.Flags().BoolVar(&c.json, "json", false, "print the snapshot as JSON")
	del := &cobra.Command{
		Use:     "delete VOLUME SNAPSHOT",
		Aliases: []string{"rm"},
		Short:   "Delete a snapshot that no clone depends on",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(func(cl *api.Client) error { return cl.DeleteSnapshot(cmd.Context(), args[0], args[1]) })
		},
	}
	cmd.AddCommand(create, list, del)
	return cmd
}

func newPoolCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "pool", Aliases: []string{"pools"}, Short: "Show the storage pool"}
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List every node's disks with capacity and use",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withClient(func(cl *api.Client) error {
				pools, err := cl.ListPools(cmd.Context())
				if err != nil {
					return err
				}
				if c.json {
					return printJSON(cmd.OutOrStdout(), pools)
				}
				var rows [][]string
				for _, p := range pools {
					state := "online"
					if !p.Online {
						state = "offline"
					}
					rows = append(rows, []string{p.ID, p.Node, p.Dir, size(p.Capacity), size(p.Allocated), fmt.Sprint(p.Replicas), state})
				}
				return table(cmd.OutOrStdout(), []string{"POOL", "NODE", "DIR", "CAPACITY", "USED", "REPLICAS", "STATE"}, rows)
			})
		},
	}
	list.Flags().BoolVar(&c.json, "json", false, "print as JSON")
	cmd.AddCommand(list)
	return cmd
}
