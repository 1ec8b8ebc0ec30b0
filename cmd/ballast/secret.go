package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ballast-io/ballast/pool/api"
)

func newSecretCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "secret", Aliases: []string{"secrets"}, Short: "Keep the passphrases of encrypted volumes, sealed under the cluster secret"}
	set := secretValueCmd(c, "set", "Store a new secret (secret change gives it a new value)",
		func(cl *api.Client, cmd *cobra.Command, name string, value []byte) (string, *api.Secret, error) {
			s, err := cl.SetSecret(cmd.Context(), name, value)
			if err != nil {
				return "", nil, err
			}
			return fmt.Sprintf("secret %s set", s.Name), s, nil
		})
	change := secretValueCmd(c, "change", "Give a secret a new value; the keys of the volumes using it are rewrapped, nothing re-encrypted",
		func(cl *api.Client, cmd *cobra.Command, name string, value []byte) (string, *api.Secret, error) {
			s, err := cl.ChangeSecret(cmd.Context(), name, value)
			if err != nil {
				return "", nil, err
			}
			return fmt.Sprintf("secret %s changed; keys rewrapped: %s", s.Name, orDash(strings.Join(s.UsedBy, ","))), s, nil
		})
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the secrets and the volumes using each (never their values)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(func(cl *api.Client) error {
				secs, err := cl.ListSecrets(cmd.Context())
				if err != nil {
					return err
				}
				if c.json {
					return printJSON(cmd.OutOrStdout(), secs)
				}
				var rows [][]string
				for _, s := range secs {
					rows = append(rows, []string{s.Name, s.Created.Format("2006-01-02 15:04:05Z07:00"), orDash(strings.Join(s.UsedBy, ","))})
				}
				return table(cmd.OutOrStdout(), []string{"SECRET", "CREATED", "USED BY"}, rows)
			})
		},
	}
	list.Flags().BoolVar(&c.json, "json", false, "print as JSON")
	del := &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Delete a secret no volume uses",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withClient(func(cl *api.Client) error { return cl.DeleteSecret(cmd.Context(), args[0]) })
		},
	}
	cmd.AddCommand(set, change, list, del)
	return cmd
}

// secretValueCmd is a secret subcommand that sends a value read from a
// file or the environment: call sends it and says what it did.
func secretValueCmd(c *cli, verb, short string, call func(*api.Client, *cobra.Command, string, []byte) (string, *api.Secret, error)) *cobra.Command {
	var file, env string
	cmd := &cobra.Command{
		Use:   verb + " NAME (--from-file F | --from-env VAR)",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			value, err := secretValue(file, env)
			if err != nil {
				return err
			}
			return c.withClient(func(cl *api.Client) error {
				said, s, err := call(cl, cmd, args[0], value)
				if err != nil {
					return err
				}
				if c.json {
					return printJSON(cmd.OutOrStdout(), s)
				}
				fmt.Fprintln(cmd.OutOrStdout(), said)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&file, "from-file", "", "read the value from this file (a trailing newline is dropped)")
	cmd.Flags().StringVar(&env, "from-env", "", "read the value from this environment variable")
	cmd.Flags().BoolVar(&c.json, "json", false, "print the secret's record as JSON")
	return cmd
}

// secretValue reads a secret from exactly one of file and env.
func secretValue(file, env string) ([]byte, error) {
	v, err := readValue("--from-file", file, "--from-env", env)
	if err == nil && v == nil {
		err = errors.New("give the secret with --from-file F or --from-env VAR (not on the command line, where ps shows it)")
	}
	return v, err
}

// passphraseFlags give an encrypted volume's passphrase with a call: from
// a file or an environment variable, never the command line (ps shows it).
// Their names are --PREFIXsecret-file and --PREFIXsecret-env.
type passphraseFlags struct{ prefix, file, env string }

func (p *passphraseFlags) add(cmd *cobra.Command, what string) {
	cmd.Flags().StringVar(&p.file, p.prefix+"secret-file", "", "read the "+what+" from this file (a trailing newline is dropped)")
	cmd.Flags().StringVar(&p.env, p.prefix+"secret-env", "", "read the "+what+" from this environment variable")
}

// value is the passphrase given, or nil.
func (p *passphraseFlags) value() ([]byte, error) {
	return readValue("--"+p.prefix+"secret-file", p.file, "--"+p.prefix+"secret-env", p.env)
}

// readValue reads a value from file or env, given by flags fileFlag and
// envFlag; nil when neither is given, an error when both are.
func readValue(fileFlag, file, envFlag, env string) ([]byte, error) {
	switch {
	case file != "" && env != "":
		return nil, fmt.Errorf("give %s or %s, not both", fileFlag, envFlag)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fileFlag, err)
		}
		v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if v == "" {
			return nil, fmt.Errorf("%s: %s is empty", fileFlag, file)
		}
		return []byte(v), nil
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			return nil, fmt.Errorf("%s: %s is not set or empty", envFlag, env)
		}
		return []byte(v), nil
	}
	return nil, nil
}
