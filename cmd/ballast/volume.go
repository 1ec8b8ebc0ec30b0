package main

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

func newVolumeCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "volume", Aliases: []string{"v", "volumes"}, Short: "Create, attach and manage volumes"}
	cmd.AddCommand(volumeCreate(c), volumeList(c), volumeInspect(c), volumeAttach(c), volumeDetach(c), volumeResize(c), volumeDelete(c), volumeChangePassphrase(c))
	return cmd
}

func volumeCreate(c *cli) *cobra.Command {
	var sizeStr, from string
	var s spec.Volume
	var pf passphraseFlags
	cmd := &cobra.Command{
		Use:   "create NAME --size SIZE [--repl N] [--fs ext4|xfs] [--from-snapshot VOL@SNAP] [--encrypted (--secret-key S | --secret-file F | --secret-env VAR)]",
		Short: "Create a thin-provisioned volume, or a clone of a snapshot",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s.Name, s.FromSnapshot = args[0], from
			if sizeStr != "" {
				n, err := spec.ParseSize(sizeStr)
				if err != nil {
					return err
				}
				s.Size = n
			} else if from == "" {
				return fmt.Errorf("--size is required (e.g. --size 10G)")
			}
			pass, err := pf.value()
			if err != nil {
				return err
			}
			defer clear(pass)
			return c.withClient(func(cl *api.Client) error {
				v, err := cl.CreateVolume(cmd.Context(), s, api.CreateOptions{Passphrase: pass})
				if err != nil {
					return err
				}
				if c.json {
					return printJSON(cmd.OutOrStdout(), v)
				}
				enc := ""
				switch {
				case v.Encrypted && v.SecretKey == "":
					enc = ", encrypted, its passphrase given with each attach"
				case v.Encrypted:
					enc = ", encrypted under secret " + v.SecretKey
				}
				fmt.Fprintf(cmd.OutOrStdout(), "volume %s created: %s, repl %d, %s%s\n", v.Name, size(v.Size), v.Repl, v.FS, enc)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&sizeStr, "size", "", "size, e.g. 10G, 512M (binary units)")
	cmd.Flags().IntVar(&s.Repl, "repl", 0, "number of replicas, each on its own disk (node, when clustered); default 1, or the source's for a clone")
	cmd.Flags().StringVar(&s.FS, "fs", "", "filesystem: ext4 or xfs; default ext4, or the source's for a clone")
	cmd.Flags().StringVar(&from, "from-snapshot", "", "create a clone of VOL@SNAP")
	cmd.Flags().IntVar(&s.MinInSync, "min-in-sync", 0, "fewest in-sync replicas writes continue with (default 1); below it writes fail")
	cmd.Flags().StringVar(&s.Pin, "pin", "", "place replicas only on nodes with all these labels, e.g. zone=a")
	cmd.Flags().StringVar(&s.Avoid, "avoid", "", "never place replicas on nodes with any of these labels, e.g. rack=r2")
	cmd.Flags().StringVar(&s.Locality, "locality", "", "best-effort (default): when attached on a node holding no replica, build one there and retire a remote one; none: leave the replicas where they are")
	cmd.Flags().BoolVar(&s.Encrypted, "encrypted", false, "encrypt the volume (AES-XTS-256) on the node it is attached on, under a key of its own wrapped by a passphrase: the one in --secret-key, or one given now and with each attach (--secret-file, --secret-env)")
	cmd.Flags().StringVar(&s.SecretKey, "secret-key", "", "the cluster secret holding the passphrase of an encrypted volume (ballast secret set NAME)")
	pf.add(cmd, "passphrase of an encrypted volume, not stored: give it again with each attach")
	cmd.Flags().BoolVar(&c.json, "json", false, "print the volume as JSON")
	return cmd
}

func volumeList(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the volumes of the cluster",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withClient(func(cl *api.Client) error {
				vols, err := cl.ListVolumes(cmd.Context())
				if err != nil {
					return err
				}
				if c.json {
					return printJSON(cmd.OutOrStdout(), vols)
				}
				var rows [][]string
				for _, v := range vols {
					att := "-"
					if a := v.Attachment; a != nil {
						att = a.Node + ":" + a.MountPath
						if a.Block {
							att = a.Node + ":" + cmp.Or(a.Device, "(block)")
						}
					}
					rows = append(rows, []string{v.Name, size(v.Size), size(v.Allocated), fmt.Sprint(v.Repl), insync(v), v.FS, v.State, att})
				}
				return table(cmd.OutOrStdout(), []string{"NAME", "SIZE", "USED", "REPL", "IN-SYNC", "FS", "STATE", "ATTACHED"}, rows)
			})
		},
	}
	cmd.Flags().BoolVar(&c.json, "json", false, "print as JSON")
	return cmd
}

func insync(v api.Volume) string {
	n := 0
	for _, r := range v.Replicas {
		if r.InSync {
			n++
		}
	}
	return fmt.Sprintf("%d/%d", n, len(v.Replicas))
}

func volumeInspect(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inspect NAME",
		Short: "Show a volume in detail: replicas, attachment, repairs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(func(cl *api.Client) error {
				v, err := cl.InspectVolume(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if c.json {
					return printJSON(cmd.OutOrStdout(), v)
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "Name:        %s\nID:          %s\nState:       %s\nSize:        %s (%s used)\nFilesystem:  %s\n",
					v.Name, v.ID, v.State, size(v.Size), size(v.Allocated), v.FS)
				fmt.Fprintf(w, "Replication: %d (in sync %s, minimum %d, locality %s)\nCreated:     %s (%s)\n", v.Repl, insync(*v), v.MinInSync, spec.NormalLocality(v.Locality), v.Created.Format("2006-01-02 15:04:05Z07:00"), ago(v.Created))
				if v.FromSnapshot != "" {
					fmt.Fprintf(w, "Clone of:    %s\n", v.FromSnapshot)
				}
				if a := v.Attachment; a != nil {
					where := "at " + a.MountPath
					if a.Block {
						where = "as a raw block device"
					}
					if a.Device != "" {
						where += " (" + a.Device + ")"
					}
					fmt.Fprintf(w, "Attached:    node %s %s, epoch %d, since %s\n", a.Node, where, a.Epoch, ago(a.Since))
				} else {
					fmt.Fprintf(w, "Attached:    no\n")
				}
				if rb := v.Rebuild; rb != nil {
					state := string(rb.State)
					if rb.Error != "" {
						state += ": " + rb.Error
					}
					fmt.Fprintf(w, "Rebuild:     %s of replica %s, %s, %s of %s (%d%%), %s\n", rb.Kind, rb.Replica, state, size(rb.Done), size(rb.Total), rb.Done*100/max(rb.Total, 1), rb.Elapsed)
				}
				fmt.Fprintf(w, "Snapshots:   %d\nRepairs:     %d block(s) repaired from a peer after a checksum mismatch\n", v.Snapshots, v.Repairs)
				if len(v.Children) > 0 {
					fmt.Fprintf(w, "Clones:      %s\n", strings.Join(v.Children, ", "))
				}
				fmt.Fprintln(w, "Replicas:")
				var rows [][]string
				for _, r := range v.Replicas {
					rows = append(rows, []string{"  " + r.ID, r.Node, r.Pool, fmt.Sprint(r.InSync), fmt.Sprint(r.Local), size(r.Allocated)})
				}
				return table(w, []string{"  ID", "NODE", "POOL", "IN-SYNC", "LOCAL", "USED"}, rows)
			})
		},
	}
	cmd.Flags().BoolVar(&c.json, "json", false, "print as JSON")
	return cmd
}

func volumeAttach(c *cli) *cobra.Command {
	var opts api.AttachOptions
	var pf passphraseFlags
	cmd := &cobra.Command{
		Use:   "attach NAME [--block] [--secret-file F | --secret-env VAR]",
		Short: "Attach a volume on this node and print its mount path (formats it on first attach), or with --block its raw block device",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pass, err := pf.value()
			if err != nil {
				return err
			}
			defer clear(pass)
			opts.Passphrase = pass
			return c.withClient(func(cl *api.Client) error {
				a, err := cl.AttachVolume(cmd.Context(), args[0], opts)
				if err != nil {
					return err
				}
				if c.json {
					return printJSON(cmd.OutOrStdout(), a)
				}
				fmt.Fprintln(cmd.OutOrStdout(), cmp.Or(a.MountPath, a.Device))
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&opts.Force, "force", false, "take the volume over from the node that holds it")
	cmd.Flags().BoolVar(&opts.Block, "block", false, "attach as a raw block device: no filesystem is made or mounted; prints the device")
	pf.add(cmd, "passphrase of an encrypted volume created with one (--secret-file or --secret-env at create)")
	cmd.Flags().BoolVar(&c.json, "json", false, "print the attachment as JSON")
	return cmd
}

func volumeDetach(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "detach NAME",
		Short: "Unmount a volume and release it from this node",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(func(cl *api.Client) error { return cl.DetachVolume(cmd.Context(), args[0]) })
		},
	}
}

func volumeResize(c *cli) *cobra.Command {
	var sizeStr string
	cmd := &cobra.Command{
		Use:   "resize NAME --size SIZE",
		Short: "Grow a volume, and its filesystem online where it is mounted (volumes never shrink)",
		Long: `Grow a volume to SIZE. Where it is attached, on this node, the volume and its
mounted filesystem grow online. A detached volume grows when it is next
attached, and its filesystem with it. A volume attached on another node is
grown by that node. Online growth of ext4 needs the daemon to hold
CAP_SYS_RESOURCE; without it the filesystem grows at the next attach.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if sizeStr == "" {
				return fmt.Errorf("--size is required (e.g. --size 20G)")
			}
			n, err := spec.ParseSize(sizeStr)
			if err != nil {
				return err
			}
			return c.withClient(func(cl *api.Client) error {
				v, err := cl.ResizeVolume(cmd.Context(), args[0], n)
				if err != nil {
					return err
				}
				if c.json {
					return printJSON(cmd.OutOrStdout(), v)
				}
				what := "grows when next attached"
				if v.Attachment != nil {
					what = "filesystem grown online"
					if v.Attachment.Block {
						what = "block device grown"
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "volume %s is %s (%s)\n", v.Name, size(v.Size), what)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&sizeStr, "size", "", "the new size, e.g. 20G (binary units); at least the current size")
	cmd.Flags().BoolVar(&c.json, "json", false, "print the volume as JSON")
	return cmd
}

func volumeDelete(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Delete a detached volume and its snapshots",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(func(cl *api.Client) error { return cl.DeleteVolume(cmd.Context(), args[0]) })
		},
	}
}

func volumeChangePassphrase(c *cli) *cobra.Command {
	oldf, newf := passphraseFlags{}, passphraseFlags{prefix: "new-"}
	cmd := &cobra.Command{
		Use:   "change-passphrase NAME (--secret-file F | --secret-env VAR) (--new-secret-file F | --new-secret-env VAR)",
		Short: "Give an encrypted volume made with a passphrase of its own a new one (its key is rewrapped; nothing is re-encrypted)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			old, err := oldf.value()
			if err != nil {
				return err
			}
			defer clear(old)
			value, err := newf.value()
			if err != nil {
				return err
			}
			defer clear(value)
			if old == nil || value == nil {
				return fmt.Errorf("give the passphrase (--secret-file or --secret-env) and the new one (--new-secret-file or --new-secret-env)")
			}
			return c.withClient(func(cl *api.Client) error {
				if err := cl.ChangePassphrase(cmd.Context(), args[0], old, value); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "volume %s: passphrase changed; give the new one from now on (its clones, and its backups taken before, keep the old one)\n", args[0])
				return nil
			})
		},
	}
	oldf.add(cmd, "passphrase the volume has now")
	newf.add(cmd, "new passphrase")
	return cmd
}
