package demo

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ballast-io/ballast/pool/hostfs"
)

// NodeImageRepo is the repository of the node image; its tag is a hash of
// what goes into it, so a machine builds each recipe once.
const NodeImageRepo = "ballast-demo-node"

// nodePackages are installed into the node image besides debootstrap's
// minbase: Docker, FUSE, loop devices and the filesystems Ballast formats.
var nodePackages = []string{
	"docker.io", "iptables", "fuse3", "util-linux", "mount", "e2fsprogs", "xfsprogs",
	"kmod", "iproute2", "procps", "ca-certificates",
}

// nodeImageRecipe changes whenever the steps of EnsureNodeImage change, so
// a new recipe gets a new tag.
const nodeImageRecipe = "node-image-v1"

// NodeImage is the tag of the node image for this configuration.
func (c Config) NodeImage() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\nminbase\n%s\n", nodeImageRecipe, c.Suite, c.Mirror, strings.Join(nodePackages, ","))
	return NodeImageRepo + ":" + hex.EncodeToString(h.Sum(nil))[:12]
}

// EnsureNodeImage builds the node image unless an image with its tag
// exists, and returns the tag.
func EnsureNodeImage(ctx context.Context, cfg Config) (string, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return "", err
	}
	tag := cfg.NodeImage()
	log := cfg.Logger
	if _, err := docker(ctx, "image", "inspect", "--format", "{{.Id}}", tag); err == nil {
		log.Info("demo: node image exists, reusing it", "image", tag)
		return tag, nil
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		if _, err2 := os.Stat("/usr/sbin/debootstrap"); err2 != nil {
			return "", fmt.Errorf("build node image %s: debootstrap is not installed (deploy/install-deps.sh installs it): %w", tag, err)
		}
	}
	start := time.Now()
	buildDir := filepath.Join(cfg.StateDir, "build")
	if err := os.MkdirAll(buildDir, 0o755); err != nil {
		return "", fmt.Errorf("build node image: %w", err)
	}
	rootfs, err := os.MkdirTemp(buildDir, "rootfs-")
	if err != nil {
		return "", fmt.Errorf("build node image: %w", err)
	}
	defer func() {
		if err := removeTree(rootfs); err != nil {
			log.Warn("demo: removing the node image's build dir", "dir", rootfs, "err", err)
		}
		os.Remove(buildDir)     // only when empty
		os.Remove(cfg.StateDir) // only when empty: not while a demo uses it
	}()
	log.Info("demo: building the node image with debootstrap (once per machine; it takes minutes)",
		"image", tag, "suite", cfg.Suite, "mirror", cfg.Mirror)
	if err := debootstrap(ctx, cfg, rootfs); err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("build node image %s: interrupted: %w", tag, ctx.Err())
		}
		return "", fmt.Errorf("build node image %s: %w", tag, err)
	}
	// Package caches and lists only make the image bigger.
	for _, g := range []string{"var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_*"} {
		ms, _ := filepath.Glob(filepath.Join(rootfs, g))
		for _, m := range ms {
			os.Remove(m)
		}
	}
	log.Info("demo: importing the node image", "image", tag, "debootstrap", time.Since(start).Round(time.Second))
	if err := importTree(ctx, rootfs, tag, `CMD ["/bin/bash"]`); err != nil {
		return "", fmt.Errorf("build node image %s: %w", tag, err)
	}
	log.Info("demo: node image built", "image", tag, "took", time.Since(start).Round(time.Second))
	return tag, nil
}

// debootstrap makes a minbase Debian rootfs with nodePackages, logging
// its progress: every line at debug level, and the latest one every 15 s.
func debootstrap(ctx context.Context, cfg Config, rootfs string) error {
	args := []string{"--variant=minbase", "--include=" + strings.Join(nodePackages, ","), cfg.Suite, rootfs, cfg.Mirror}
	cmd := exec.CommandContext(ctx, "debootstrap", args...)
	cmd.Env = append(os.Environ(), "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	var mu sync.Mutex
	var last []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			l := sc.Text()
			cfg.Logger.Debug("debootstrap", "line", l)
			mu.Lock()
			last = append(last, l)
			if len(last) > 20 {
				last = last[1:]
			}
			mu.Unlock()
		}
		io.Copy(io.Discard, pr)
	}()
	if err := cmd.Start(); err != nil {
		pw.Close()
		return fmt.Errorf("start debootstrap: %w", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait(); pw.Close() }()
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-waited:
			<-done
			// debootstrap mounts /proc and /sys in the target; a failed or
			// cancelled run can leave them.
			hostfs.UnmountAllUnder(rootfs)
			if err != nil {
				mu.Lock()
				defer mu.Unlock()
				return fmt.Errorf("debootstrap %s: %w: %s", strings.Join(args, " "), err, strings.Join(last, "\n"))
			}
			return nil
		case <-tick.C:
			mu.Lock()
			l := ""
			if len(last) > 0 {
				l = last[len(last)-1]
			}
			mu.Unlock()
			cfg.Logger.Info("demo: debootstrap running", "last", l)
		}
	}
}

// importTree imports the directory tree at dir as image tag
// (tar -C dir -c . | docker import).
func importTree(ctx context.Context, dir, tag string, changes ...string) error {
	tarCmd := exec.CommandContext(ctx, "tar", "--numeric-owner", "--xattrs", "-C", dir, "-c", ".")
	out, err := tarCmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("tar %s: %w", dir, err)
	}
	var tarErr strings.Builder
	tarCmd.Stderr = &tarErr
	if err := tarCmd.Start(); err != nil {
		return fmt.Errorf("tar %s: %w", dir, err)
	}
	args := []string{"import"}
	for _, c := range changes {
		args = append(args, "--change", c)
	}
	args = append(args, "-", tag)
	_, ierr := run(ctx, out, "docker", args...)
	terr := tarCmd.Wait()
	if ierr != nil {
		return ierr
	}
	if terr != nil {
		return fmt.Errorf("tar -C %s -c .: %w: %s", dir, terr, tail(tarErr.String(), 400))
	}
	return nil
}
