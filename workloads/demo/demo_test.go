package demo_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/testenv"
	"github.com/ballast-io/ballast/workloads/demo"
)

// TestDemoCluster brings up a 3-node demo (2 Swarm managers, 1 worker),
// writes a file on a Ballast volume from a Swarm task on node 2, reads it
// back on node 3, tears the demo down and checks nothing is left on the
// host. The node image is built once per machine (it takes minutes), later
// runs reuse it.
func TestDemoCluster(t *testing.T) {
	ctx, cfg := startTest(t, 12*time.Minute, "")
	cfg.Managers = 2
	loopsBefore := hostLoops(t)

	start := time.Now()
	c, err := demo.Up(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("up in %s", time.Since(start).Round(100*time.Millisecond))
	n1, n2, n3 := c.Node(1).Name, c.Node(2).Name, c.Node(3).Name

	sn, err := demo.SwarmNodes(ctx, n1)
	if err != nil {
		t.Fatal(err)
	}
	ready := 0
	for _, n := range sn {
		if n.Status == "Ready" {
			ready++
		}
	}
	if ready != 3 {
		t.Fatalf("swarm: %d nodes Ready, want 3: %+v", ready, sn)
	}
	bn, err := demo.BallastNodes(ctx, n2)
	if err != nil {
		t.Fatal(err)
	}
	up := 0
	for _, n := range bn {
		if n.State == api.NodeUp {
			up++
		}
	}
	if up != 3 {
		t.Fatalf("ballast: %d nodes up, want 3: %+v", up, bn)
	}

	exec := func(node string, argv ...string) string {
		t.Helper()
		out, err := c.Exec(ctx, node, argv...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	exec(n1, "docker", "volume", "create", "-d", "ballast", "--opt", "size=64M", "--opt", "repl=2", "v")
	mount := "type=volume,source=v,target=/data,volume-driver=ballast"
	exec(n1, "docker", "service", "create", "-d", "--name", "writer", "--no-resolve-image",
		"--restart-condition", "none", "--constraint", "node.hostname=="+n2, "--mount", mount,
		c.WorkloadImage, "sh", "-c", "echo hello-from-node2 > /data/f && sync")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st := exec(n1, "docker", "service", "ps", "writer", "--no-trunc", "--format", "{{.Node}}|{{.CurrentState}}|{{.Error}}")
		if strings.Contains(st, "|Complete") {
			if !strings.HasPrefix(st, n2+"|") {
				t.Fatalf("the task ran elsewhere than %s: %s", n2, st)
			}
			break
		}
		if strings.Contains(st, "|Failed") || strings.Contains(st, "|Rejected") || time.Now().After(deadline) {
			t.Fatalf("writer task: %s", st)
		}
		time.Sleep(500 * time.Millisecond)
	}
	got := exec(n3, "docker", "run", "--rm", "--mount", mount, c.WorkloadImage, "cat", "/data/f")
	if got != "hello-from-node2" {
		t.Fatalf("node 3 reads %q from the volume, want %q", got, "hello-from-node2")
	}

	start = time.Now()
	if err := demo.Down(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Logf("down in %s", time.Since(start).Round(100*time.Millisecond))
	if err := demo.Down(ctx, cfg); err != nil {
		t.Fatalf("second down: %v", err)
	}
	for _, q := range [][]string{
		{"ps", "-aq", "--filter", "label=" + demo.LabelKey + "=" + cfg.Name},
		{"network", "ls", "-q", "--filter", "label=" + demo.LabelKey + "=" + cfg.Name},
	} {
		if out, err := exec2("docker", q...); err != nil || out != "" {
			t.Errorf("left behind: docker %s: %q (%v)", strings.Join(q, " "), out, err)
		}
	}
	if _, err := os.Stat("/var/lib/" + cfg.Name); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("left behind: state dir /var/lib/%s (%v)", cfg.Name, err)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mi), cfg.Name) {
		t.Errorf("left behind: mounts naming %s:\n%s", cfg.Name, mi)
	}
	// Other tests may attach loop devices meanwhile; the nodes' are
	// backed by /var/lib/ballast/fuse/VOLUME/disk as the host sees them.
	for l := range hostLoops(t) {
		if !loopsBefore[l] && strings.Contains(l, " /var/lib/ballast/fuse/") {
			t.Errorf("left behind: loop device %s", l)
		}
	}
}

// testPrefix starts the name of the test's demo, followed by its pid.
const testPrefix = "ballast-demotest-"

// startTest skips (or fails) the test without root, Docker or the tools a
// demo needs, removes the demos of killed test runs, and returns a
// context bounded by timeout and the config of this test's demo
// (testConfig), which is brought down when the test ends.
func startTest(t *testing.T, timeout time.Duration, suffix string) (context.Context, demo.Config) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping the multi-node Docker Swarm in -short mode")
	}
	testenv.RequirePrivileged(t)
	testenv.RequireDocker(t)
	testenv.RequireTools(t, "debootstrap", "losetup", "tar", "go")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	cfg := testConfig(ctx, t, suffix)
	// A run killed before its teardown leaves its demo: remove those
	// whose process is gone.
	removeStale(ctx, t)
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer dcancel()
		if err := demo.Down(dctx, cfg); err != nil {
			t.Errorf("down in cleanup: %v", err)
		}
	})
	return ctx, cfg
}

// testConfig builds a static ballast and returns the config of a 3-node
// demo named after this process (and suffix), so that two runs (two
// engineers, or a CI run beside a single test) do not remove each other's
// nodes.
func testConfig(ctx context.Context, t *testing.T, suffix string) demo.Config {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ballast")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/ballast-io/ballast/cmd/ballast")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build a static ballast: %v\n%s", err, out)
	}
	return demo.Config{
		Name:   fmt.Sprintf("%s%d%s", testPrefix, os.Getpid(), suffix),
		Nodes:  3,
		Binary: bin,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
}

// removeStale removes the demos of test runs whose process is gone.
func removeStale(ctx context.Context, t *testing.T) {
	t.Helper()
	out, err := exec2("docker", "ps", "-a", "--filter", "label="+demo.LabelKey, "--format", `{{.Label "`+demo.LabelKey+`"}}`)
	if err != nil {
		t.Fatalf("list demo containers: %v", err)
	}
	seen := map[string]bool{}
	for _, name := range strings.Fields(out) {
		pidStr, _, _ := strings.Cut(strings.TrimPrefix(name, testPrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if seen[name] || !strings.HasPrefix(name, testPrefix) || err != nil {
			continue
		}
		seen[name] = true
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // that run is still going
		}
		t.Logf("removing the demo %s a killed run left", name)
		if err := demo.Down(ctx, demo.Config{Name: name}); err != nil {
			t.Fatalf("remove stale demo %s: %v", name, err)
		}
	}
}

// hostLoops is the set of attached loop devices with their backing files.
func hostLoops(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec2("losetup", "-l", "-n", "-O", "NAME,BACK-MAJ:MIN,BACK-FILE")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			m[l] = true
		}
	}
	return m
}

func exec2(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	return strings.TrimSpace(string(out)), err
}

// testWriter sends the demo's progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
