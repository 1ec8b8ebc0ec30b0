package main

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

func newScheduleCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "schedule", Aliases: []string{"schedules"}, Short: "Take snapshots or backups of a volume on a schedule, keeping the newest few"}
	var s api.ScheduleSpec
	var snapshots bool
	var rate string
	set := &cobra.Command{
		Use:   "set VOLUME (--snapshots | --backups-to TARGET) --schedule CRON --retain N",
		Short: "Make or replace a volume's schedule of snapshots or of backups (one node of the cluster runs it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s.Volume = args[0]
			switch {
			case snapshots && s.Target != "":
				return errors.New("give --snapshots or --backups-to TARGET, not both")
			case snapshots:
				s.Kind = api.ScheduleSnapshot
			case s.Target != "":
				s.Kind = api.ScheduleBackup
			default:
				return errors.New("give --snapshots or --backups-to TARGET")
			}
			if rate != "" {
				r, err := spec.ParseSize(rate)
				if err != nil {
					return fmt.Errorf("--rate-limit: %w", err)
				}
				s.RateLimit = r
			}
			return c.withClient(func(cl *api.Client) error {
				out, err := cl.SetSchedule(cmd.Context(), s)
				if err != nil {
					return err
				}
				if c.json {
					return printJSON(cmd.OutOrStdout(), out)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s schedule of %s set: %q, keeping %d; next run %s\n", out.Kind, out.Volume, out.Cron, out.Retain, out.Next.Format(time.RFC3339))
				return nil
			})
		},
	}
	set.Flags().BoolVar(&snapshots, "snapshots", false, "take snapshots (named sched-TIME)")
	set.Flags().StringVar(&s.Target, "backups-to", "", "take backups to this target")
	set.Flags().StringVar(&s.Cron, "schedule", "", `when, in UTC: five cron fields ("0 */6 * * *") or @hourly, @daily, @every 30m`)
	set.Flags().IntVar(&s.Retain, "retain", 7, "how many of the snapshots or backups it made to keep")
	set.Flags().StringVar(&rate, "rate-limit", "", "cap the backups' upload, in bytes per second (e.g. 50M)")
	set.Flags().BoolVar(&c.json, "json", false, "print the schedule as JSON")
	set.MarkFlagRequired("schedule")
	list := &cobra.Command{
		Use:     "list [VOLUME]",
		Aliases: []string{"ls"},
		Short:   "List the schedules, with their last and next runs",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vol := ""
			if len(args) == 1 {
				vol = args[0]
			}
			return c.withClient(func(cl *api.Client) error {
				ss, err := cl.ListSchedules(cmd.Context(), vol)
				if err != nil {
					return err
				}
				if c.json {
					return printJSON(cmd.OutOrStdout(), ss)
				}
				var rows [][]string
				for _, s := range ss {
					last := "-"
					if !s.LastRun.IsZero() {
						last = s.LastRun.Format(time.RFC3339) + " on " + s.LastNode
					}
					if s.LastError != "" {
						last += ": " + s.LastError
					}
					rows = append(rows, []string{s.Volume, s.Kind, orDash(s.Target), s.Cron, strconv.Itoa(s.Retain), s.Next.Format(time.RFC3339), last})
				}
				return table(cmd.OutOrStdout(), []string{"VOLUME", "KIND", "TARGET", "SCHEDULE", "RETAIN", "NEXT", "LAST"}, rows)
			})
		},
	}
	list.Flags().BoolVar(&c.json, "json", false, "print as JSON")
	del := &cobra.Command{
		Use:     "delete VOLUME (snapshot|backup)",
		Aliases: []string{"rm"},
		Short:   "Delete a volume's schedule; what it made stays",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(func(cl *api.Client) error { return cl.DeleteSchedule(cmd.Context(), args[0], args[1]) })
		},
	}
	cmd.AddCommand(set, list, del)
	return cmd
}
