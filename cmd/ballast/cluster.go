package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ballast-io/ballast/pool/api"
)

func newClusterCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Show the cluster's nodes"}
	status := &cobra.Command{
		Use:   "status",
		Short: "List the nodes: up or down and since when, labels, capacity",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withClient(func(cl *api.Client) error {
				nodes, err := cl.ClusterStatus(cmd.Context())
				if err != nil {
					return err
				}
				if c.json {
					return printJSON(cmd.OutOrStdout(), nodes)
				}
				var rows [][]string
				for _, n := range nodes {
					state := string(n.State)
					if !n.Since.IsZero() {
						state += " since " + n.Since.Format("2006-01-02 15:04:05Z07:00")
					}
					rows = append(rows, []string{n.ID, orDash(n.Addr), state, labelText(n.Labels), fmt.Sprint(n.Pools), size(n.Capacity), size(n.Allocated), orDash(n.Etcd), orDash(n.Version)})
				}
				return table(cmd.OutOrStdout(), []string{"NODE", "ADDRESS", "STATE", "LABELS", "POOLS", "CAPACITY", "USED", "ETCD", "VERSION"}, rows)
			})
		},
	}
	status.Flags().BoolVar(&c.json, "json", false, "print as JSON")
	cmd.AddCommand(status)
	return cmd
}

func labelText(l map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return orDash(strings.Join(parts, ","))
}
