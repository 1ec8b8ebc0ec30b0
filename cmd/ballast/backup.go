package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

func newBackupCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "backup", Aliases: []string{"backups"}, Short: "Back volumes up to object storage (S3) or a directory, incrementally, and restore them"}
	cmd.AddCommand(newBackupTargetCmd(c), newBackupCreateCmd(c), newBackupListCmd(c), newBackupRestoreCmd(c), newBackupDeleteCmd(c))
	return cmd
}

func newBackupTargetCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "target", Aliases: []string{"targets"}, Short: "Define where backups go"}
	var s api.BackupTargetSpec
	var credFile string
	add := &cobra.Command{
		Use:   "add NAME URL",
		Short: "Define a target: s3://bucket[/prefix] (with --endpoint and --credentials-file) or file:///dir",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s.Name, s.URL = args[0], args[1]
			if credFile != "" {
				b, err := os.ReadFile(credFile)
				if err != nil {
					return fmt.Errorf("--credentials-file: %w", err)
				}
				s.Credentials = b
			}
			return c.withClient(func(cl *api.Client) error {
				t, err := cl.AddBackupTarget(cmd.Context(), s)
				if err != nil {
					return err
				}
				if c.json {
					return printJSON(cmd.OutOrStdout(), t)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "backup target %s added: %s\n", t.Name, t.URL)
				return nil
			})
		},
	}
	add.Flags().StringVar(&s.Endpoint, "endpoint", "", "the S3 server's host:port")
	add.Flags().StringVar(&s.Region, "region", "", "the bucket's region (default: the server's)")
	add.Flags().BoolVar(&s.Insecure, "insecure", false, "reach the endpoint over plain HTTP, not HTTPS")
	add.Flags().StringVar(&credFile, "credentials-file", "", "an AWS-style credentials file (aws_access_key_id, aws_secret_access_key); sealed under the cluster secret")
	add.Flags().BoolVar(&c.json, "json", false, "print the target as JSON")
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the targets (never their credentials)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(func(cl *api.Client) error {
				ts, err := cl.ListBackupTargets(cmd.Context())
				if err != nil {
					return err
				}
				if c.json {
					return printJSON(cmd.OutOrStdout(), ts)
				}
				var rows [][]string
				for _, t := range ts {
					rows = append(rows, []string{t.Name, t.URL, orDash(t.Endpoint), t.Created.Format(time.RFC3339)})
				}
				return table(cmd.OutOrStdout(), []string{"TARGET", "URL", "ENDPOINT", "CREATED"}, rows)
			})
		},
	}
	list.Flags().BoolVar(&c.json, "json", false, "print as JSON")
	del := &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Forget a target (the backups in it stay there)",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(func(cl *api.Client) error { return cl.DeleteBackupTarget(cmd.Context(), args[0]) })
		},
	}
	cmd.AddCommand(add, list, del)
	return cmd
}

func newBackupCreateCmd(c *cli) *cobra.Command {
	var s api.BackupSpec
	var rate string
	var noWait bool
	cmd := &cobra.Command{
		Use:   "create VOLUME --target NAME",
		Short: "Back a volume up: a new snapshot of it (or --snapshot), only what changed since its last backup to the target",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s.Volume = args[0]
			if rate != "" {
				r, err := spec.ParseSize(rate)
				if err != nil {
					return fmt.Errorf("--rate-limit: %w", err)
				}
				s.RateLimit = r
			}
			return c.withClient(func(cl *api.Client) error {
				b, err := cl.CreateBackup(cmd.Context(), s)
				if err != nil {
					return err
				}
				if !noWait {
					if b, err = waitBackup(cmd.Context(), cl, b, cmd.ErrOrStderr(), c.json); err != nil {
						return err
					}
				}
				if c.json {
					return printJSON(cmd.OutOrStdout(), b)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "backup %s %s: %s of %s read, %s uploaded\n", b.ID, b.State, size(b.Done), size(b.Size), size(b.Uploaded))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&s.Target, "target", "", "the target to back up to (ballast backup target add)")
	cmd.Flags().StringVar(&s.Snapshot, "snapshot", "", "back up this snapshot instead of taking a new one")
	cmd.Flags().StringVar(&rate, "rate-limit", "", "cap the upload, in bytes per second (e.g. 50M)")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "answer once the backup started; ballast backup list shows it")
	cmd.Flags().BoolVar(&c.json, "json", false, "print the backup as JSON")
	cmd.MarkFlagRequired("target")
	return cmd
}

// waitBackup follows backup b until it ends, showing its progress on w
// (unless quiet), and fails if the backup failed.
func waitBackup(ctx context.Context, cl *api.Client, b *api.Backup, w io.Writer, quiet bool) (*api.Backup, error) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for b.State == api.BackupRunning {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stopped waiting; backup %s runs on (ballast backup list): %w", b.ID, ctx.Err())
		case <-tick.C:
		}
		bs, err := cl.ListBackups(ctx, b.Volume)
		if err != nil {
			return nil, err
		}
		found := false
		for i := range bs {
			if bs[i].ID == b.ID {
				b, found = &bs[i], true
			}
		}
		if !found {
			return nil, fmt.Errorf("backup %s: its record is gone", b.ID)
		}
		if !quiet && b.Total > 0 {
			fmt.Fprintf(w, "backup %s: %s / %s read (%d%%), %s uploaded\n", b.ID, size(b.Done), size(b.Total), b.Done*100/b.Total, size(b.Uploaded))
		}
	}
	if b.State == api.BackupFailed {
		return b, fmt.Errorf("backup %s failed: %s", b.ID, b.Error)
	}
	return b, nil
}

// showRestore shows, every second until ctx ends, how far the restore
// filling volume vol is (its record says, while it is being made).
func showRestore(ctx context.Context, cl *api.Client, vol string, w io.Writer) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last int64 = -1
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		v, err := cl.InspectVolume(ctx, vol)
		if err != nil || v.Restore == nil || v.Restore.Total == 0 || v.Restore.Done == last {
			continue
		}
		last = v.Restore.Done
		fmt.Fprintf(w, "restore of %s: %s / %s (%d%%)\n", vol, size(v.Restore.Done), size(v.Restore.Total), v.Restore.Done*100/v.Restore.Total)
	}
}

func newBackupListCmd(c *cli) *cobra.Command {
	var target string
	cmd := &cobra.Command{
		Use:     "list [VOLUME] [--target NAME]",
		Aliases: []string{"ls"},
		Short:   "List the backups, of one volume or all; with --target, those the target holds, whichever cluster made them",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vol := ""
			if len(args) == 1 {
				vol = args[0]
			}
			return c.withClient(func(cl *api.Client) error {
				var bs []api.Backup
				var err error
				if target != "" {
					bs, err = cl.ListTargetBackups(cmd.Context(), target)
					bs = slices.DeleteFunc(bs, func(b api.Backup) bool { return vol != "" && b.Volume != vol })
				} else {
					bs, err = cl.ListBackups(cmd.Context(), vol)
				}
				if err != nil {
					return err
				}
				if c.json {
					return printJSON(cmd.OutOrStdout(), bs)
				}
				var rows [][]string
				for _, b := range bs {
					state := b.State
					if b.State == api.BackupRunning && b.Total > 0 {
						state = fmt.Sprintf("running %d%%", b.Done*100/b.Total)
					}
					if b.Error != "" {
						state += ": " + b.Error
					}
					rows = append(rows, []string{b.ID, b.Volume, b.Target, b.Snapshot, size(b.Size), size(b.Uploaded), orDash(b.Parent), b.Created.Format(time.RFC3339), state})
				}
				return table(cmd.OutOrStdout(), []string{"BACKUP", "VOLUME", "TARGET", "SNAPSHOT", "SIZE", "UPLOADED", "PARENT", "CREATED", "STATE"}, rows)
			})
		},
	}
	cmd.Flags().StringVar(&target, "target", "", "list what this target holds (its manifests), also backups of another cluster")
	cmd.Flags().BoolVar(&c.json, "json", false, "print as JSON")
	return cmd
}

func newBackupRestoreCmd(c *cli) *cobra.Command {
	var to, rate string
	cmd := &cobra.Command{
		Use:   "restore BACKUP --to NEWVOLUME [--rate-limit RATE]",
		Short: "Make a new volume from a backup, showing its progress",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var opts api.RestoreOptions
			if rate != "" {
				r, err := spec.ParseSize(rate)
				if err != nil {
					return fmt.Errorf("--rate-limit: %w", err)
				}
				opts.RateLimit = r
			}
			return c.withClient(func(cl *api.Client) error {
				if !c.json {
					fmt.Fprintf(cmd.ErrOrStderr(), "restoring backup %s to volume %s...\n", args[0], to)
				}
				ctx, stop := context.WithCancel(cmd.Context())
				defer stop()
				if !c.json {
					go showRestore(ctx, cl, to, cmd.ErrOrStderr())
				}
				v, err := cl.RestoreBackup(ctx, args[0], to, opts)
				if err != nil {
					return err
				}
				if c.json {
					return printJSON(cmd.OutOrStdout(), v)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "volume %s restored from backup %s (%s)\n", v.Name, args[0], size(v.Size))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the new volume's name")
	cmd.Flags().StringVar(&rate, "rate-limit", "", "cap the download, in bytes per second (e.g. 50M)")
	cmd.Flags().BoolVar(&c.json, "json", false, "print the new volume as JSON")
	cmd.MarkFlagRequired("to")
	return cmd
}

func newBackupDeleteCmd(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:     "delete BACKUP...",
		Aliases: []string{"rm"},
		Short:   "Delete backups, and the chunks no other backup uses",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(func(cl *api.Client) error {
				var failed []string
				for _, id := range args {
					if err := cl.DeleteBackup(cmd.Context(), id); err != nil {
						fmt.Fprintf(cmd.ErrOrStderr(), "delete backup %s: %v\n", id, err)
						failed = append(failed, id)
					}
				}
				if len(failed) > 0 {
					return fmt.Errorf("%d of %d backups not deleted: %s", len(failed), len(args), strings.Join(failed, ", "))
				}
				return nil
			})
		},
	}
}
