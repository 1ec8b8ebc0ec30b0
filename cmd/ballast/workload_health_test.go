package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs the ballast binary; the error carries its output.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(ballastBin, args...).CombinedOutput()
	if err != nil {
		return string(out), errors.Join(err, errors.New(string(out)))
	}
	return string(out), nil
}

func TestWorkloadHealthcheck(t *testing.T) {
	dir := t.TempDir()
	if _, err := runCLI(t, "workload", "healthcheck", "--data-dir", dir); err != nil {
		t.Fatalf("healthy dir: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, ".ballast-healthcheck")); err != nil || len(b) == 0 {
		t.Fatalf("probe file: %q, %v", b, err)
	}
	// A data dir that is gone (or whose filesystem fails) is unhealthy.
	_, err := runCLI(t, "workload", "healthcheck", "--data-dir", filepath.Join(dir, "missing"))
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing dir: %v", err)
	}
	if _, err := runCLI(t, "workload", "healthcheck"); err == nil || !strings.Contains(err.Error(), "--data-dir") {
		t.Fatalf("no dir: %v", err)
	}
}
