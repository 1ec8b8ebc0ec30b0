// Package testenv lets tests that need root, FUSE, loop devices, external
// tools or a Docker engine skip cleanly on machines without them, and fail
// instead of skipping when BALLAST_REQUIRE_PRIVILEGED=1 is set (CI on a
// privileged runner).
package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// RequireEnv is the environment variable that turns skips into failures.
const RequireEnv = "BALLAST_REQUIRE_PRIVILEGED"

// Required reports whether missing privileges must fail the test.
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// SkipOrFail skips the test with the message, or fails it when
// BALLAST_REQUIRE_PRIVILEGED=1 is set.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s (and %s=1 is set)", msg, RequireEnv)
	}
	t.Skipf("skipping: %s (set %s=1 to make this a failure)", msg, RequireEnv)
}

// RequirePrivileged skips (or fails) the test unless it runs as root with
// /dev/fuse and /dev/loop-control available.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "test needs root (euid is %d)", os.Geteuid())
	}
	for _, p := range []string{"/dev/fuse", "/dev/loop-control"} {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			SkipOrFail(t, "test needs %s: %v", p, err)
			return
		}
		f.Close()
	}
}

// RequireTools skips (or fails) the test unless every named executable is
// on PATH (or in /sbin, /usr/sbin).
func RequireTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := LookTool(n); err != nil {
			SkipOrFail(t, "test needs tool %q: %v", n, err)
		}
	}
}

// LookTool finds an executable on PATH, falling back to /sbin and /usr/sbin
// (which are often missing from PATH under sudo or in containers).
func LookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// RequireDocker skips (or fails) the test unless the docker CLI is on PATH
// and a Docker engine answers it (docker info, within 30 s).
func RequireDocker(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		SkipOrFail(t, "test needs the docker CLI: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		SkipOrFail(t, "test needs a running Docker engine; docker info: %v: %s", err, strings.TrimSpace(string(out)))
	}
}
