package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ballast-io/ballast/pool/hostfs"
)

// glusterVolume is the GlusterFS volume the benchmark creates.
const glusterVolume = "ballast-bench"

// gluster is a GlusterFS replica 2 volume on this machine: two bricks in the
// scratch dir (on the same host disk as Ballast's pool dirs), mounted with
// GlusterFS's FUSE client. It is the pooled storage the reference talk
// names as the alternative, the peer column of the data-path tables.
type gluster struct {
	root    string
	mnt     string
	host    string
	cmd     *exec.Cmd // glusterd, when the benchmark started it
	done    chan struct{}
	log     *slog.Logger
	made    bool // the volume was created
	started bool // and started
}

// glusterHost is the name the bricks are given: GlusterFS refuses
// localhost and loopback addresses for bricks, so the host's own name
// (which must resolve to an address of this machine).
func glusterHost() (string, error) {
	h, err := os.Hostname()
	if err != nil {
		return "", err
	}
	if _, err := net.LookupHost(h); err != nil {
		return "", fmt.Errorf("the host name %s does not resolve (GlusterFS names its bricks by it): %w", h, err)
	}
	return h, nil
}

// startGluster starts glusterd (unless one runs already), creates and
// starts the replica 2 volume and mounts it under dir/gluster/mnt. On error
// whatever it made is removed again.
func startGluster(ctx context.Context, dir string, logger *slog.Logger) (_ *gluster, err error) {
	g := &gluster{root: filepath.Join(dir, "gluster"), log: logger}
	g.mnt = filepath.Join(g.root, "mnt")
	defer func() {
		if err != nil {
			g.stop()
		}
	}()
	if g.host, err = glusterHost(); err != nil {
		return g, err
	}
	for _, d := range []string{"brick1", "brick2", "mnt"} {
		if err := os.MkdirAll(filepath.Join(g.root, d), 0o755); err != nil {
			return g, err
		}
	}
	if g.cli(ctx, "volume", "list") != nil {
		// -N: in the foreground, the benchmark's child, stopped by its PID.
		logf, err := os.Create(filepath.Join(g.root, "glusterd.log"))
		if err != nil {
			return g, err
		}
		g.cmd = exec.Command("glusterd", "-N", "--log-file", filepath.Join(g.root, "glusterd.log"))
		g.cmd.Stdout, g.cmd.Stderr = logf, logf
		g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		if err := g.cmd.Start(); err != nil {
			logf.Close()
			return g, fmt.Errorf("start glusterd: %w", err)
		}
		g.done = make(chan struct{})
		go func() { g.cmd.Wait(); logf.Close(); close(g.done) }()
		logger.Info("started glusterd", "pid", g.cmd.Process.Pid)
		for deadline := time.Now().Add(30 * time.Second); g.cli(ctx, "volume", "list") != nil; time.Sleep(200 * time.Millisecond) {
			if time.Now().After(deadline) || ctx.Err() != nil {
				return g, fmt.Errorf("glusterd does not answer 30 s after its start (see %s)", filepath.Join(g.root, "glusterd.log"))
			}
		}
	}
	if g.cli(ctx, "volume", "info", glusterVolume) == nil { // left by an earlier, killed run
		logger.Warn("removing a GlusterFS volume an earlier run left", "volume", glusterVolume)
		_ = g.cli(ctx, "volume", "stop", glusterVolume, "force")
		if err := g.cli(ctx, "volume", "delete", glusterVolume); err != nil {
			return g, err
		}
	}
	if err := g.cli(ctx, "volume", "create", glusterVolume, "replica", "2",
		g.host+":"+filepath.Join(g.root, "brick1"), g.host+":"+filepath.Join(g.root, "brick2"), "force"); err != nil {
		return g, err
	}
	g.made = true
	if err := g.cli(ctx, "volume", "start", glusterVolume); err != nil {
		return g, err
	}
	g.started = true
	if out, err := exec.CommandContext(ctx, "mount", "-t", "glusterfs", g.host+":/"+glusterVolume, g.mnt).CombinedOutput(); err != nil {
		return g, fmt.Errorf("mount the GlusterFS volume: %w: %s", err, out)
	}
	logger.Info("GlusterFS replica 2 mounted", "volume", glusterVolume, "mount", g.mnt)
	return g, nil
}

// cli runs the gluster command line in script mode (no questions).
func (g *gluster) cli(ctx context.Context, args ...string) error {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(cctx, "gluster", append([]string{"--mode=script"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("gluster %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// stop unmounts, stops and deletes the volume, and stops glusterd if the
// benchmark started it (by its PID). Safe to call more than once.
func (g *gluster) stop() {
	ctx := context.Background()
	if mounted, _ := hostfs.IsMounted(g.mnt); mounted {
		if err := hostfs.Unmount(g.mnt); err != nil {
			g.log.Error("unmount GlusterFS", "err", err)
		}
	}
	if g.started {
		if err := g.cli(ctx, "volume", "stop", glusterVolume); err != nil {
			g.log.Error("stop GlusterFS volume", "err", err)
		}
		g.started = false
	}
	if g.made {
		if err := g.cli(ctx, "volume", "delete", glusterVolume); err != nil {
			g.log.Error("delete GlusterFS volume", "err", err)
		}
		g.made = false
	}
	if g.cmd != nil {
		g.log.Info("stopping glusterd", "pid", g.cmd.Process.Pid)
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.done:
		case <-time.After(10 * time.Second):
			_ = g.cmd.Process.Kill()
			<-g.done
		}
		g.cmd = nil
	}
}

// checkGluster says what is missing for the GlusterFS column.
func checkGluster() error {
	var missing []string
	for _, tool := range []string{"glusterd", "gluster", "mount.glusterfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s missing: install glusterfs-server (deploy/install-deps.sh --bench), or pass --skip-gluster", strings.Join(missing, ", "))
	}
	_, err := glusterHost()
	return err
}
