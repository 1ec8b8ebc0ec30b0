package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
)

// workloadHealthcheck is "ballast workload healthcheck": a container
// healthcheck for the broker and the CQL server. A server whose data
// directory fails (its volume's daemon died under it: writes get EIO, or
// hang) may keep running and answering nothing useful; an orchestrator
// replaces it once this fails.
func workloadHealthcheck() *cobra.Command {
	var dir string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "healthcheck --data-dir DIR",
		Short: "Exit 0 if a small file can be written, fsynced and read back in DIR within --timeout (a container healthcheck for the servers' data dirs)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return fmt.Errorf("--data-dir is required")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- probeDir(dir) }()
			select {
			case err := <-done:
				return err
			case <-ctx.Done():
				return fmt.Errorf("healthcheck %s: no answer in %s (the filesystem hangs)", dir, timeout)
			}
		},
	}
	c.Flags().StringVar(&dir, "data-dir", "", "the server's data directory (required)")
	c.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "longest the probe may take")
	return c
}

// probeDir writes, fsyncs and reads back DIR/.ballast-healthcheck.
func probeDir(dir string) error {
	path := filepath.Join(dir, ".ballast-healthcheck")
	want := []byte(time.Now().UTC().Format(time.RFC3339Nano) + "\n")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	_, err = f.Write(want)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("healthcheck: write %s: %w", path, err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("healthcheck: %s reads back %q, wrote %q", path, got, want)
	}
	return nil
}
