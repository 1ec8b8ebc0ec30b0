package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/frontend/fuseloop"
	"github.com/ballast-io/ballast/pool/hostfs"
)

// daemon is a single-node ballast daemon started by the benchmark, with its
// data dir, two pool dirs and socket under one root directory.
type daemon struct {
	*process        // nil before start
	id       string // node ID, in a cluster
	root     string
	client   *api.Client
	logPath  string
	log      *slog.Logger
	binary   string
	args     []string // the daemon's arguments, for a restart
}

// startDaemon starts binary as a daemon under root and waits until it
// answers on its socket. On error, whatever was started is stopped again.
func startDaemon(ctx context.Context, binary, root string, extra []string, logger *slog.Logger) (*daemon, error) {
	// A cluster secret, under which the daemon seals the passphrase of
	// the encrypted volumes.
	secret := filepath.Join(root, "secret")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(secret, []byte("the ballast-bench cluster secret"), 0o600); err != nil {
		return nil, err
	}
	args := append([]string{"daemon", "--data-dir", filepath.Join(root, "data"), "--node-id", "n1", "--docker-socket=",
		"--pool-dir", filepath.Join(root, "disk1"), "--pool-dir", filepath.Join(root, "disk2"),
		"--socket", filepath.Join(root, "ballast.sock"), "--cluster-secret-file", secret}, extra...)
	d := &daemon{root: root, logPath: filepath.Join(root, "daemon.log"), log: logger, binary: binary, args: args}
	return d, d.start(ctx)
}

// start runs the daemon with d.args (again, after stop or kill9) and waits
// until it answers on its socket. On error, whatever was started is
// stopped again.
func (d *daemon) start(ctx context.Context) (err error) {
	if err := os.MkdirAll(d.root, 0o700); err != nil {
		return err
	}
	// SIGTERM if the benchmark dies: the daemon still unmounts.
	p, err := startProcess("daemon", d.logPath, syscall.SIGTERM, append([]string{d.binary}, d.args...), d.log)
	if err != nil {
		return err // d.process stays the last one, if any
	}
	d.process = p
	defer func() {
		if err != nil {
			d.stop()
		}
	}()
	if d.client, err = api.Dial(filepath.Join(d.root, "ballast.sock")); err != nil {
		return err
	}
	return d.waitReady(ctx, 60*time.Second, func(ctx context.Context) error {
		_, err := d.client.ListPools(ctx)
		return err
	}, func() string { return "; its log:\n" + d.tail(30) })
}

// stop ends the daemon (SIGTERM, then SIGKILL after 30 s) and removes
// whatever it left mounted under its root: filesystems, loop devices and
// FUSE mounts. It is safe to call more than once.
func (d *daemon) stop() {
	if d.client != nil {
		d.client.Close()
		d.client = nil
	}
	if d.process != nil {
		d.process.stop(30 * time.Second)
	}
	if left, err := hostfs.UnmountAllUnder(d.root); err != nil {
		d.log.Error("cleanup mounts", "err", err)
	} else if len(left) > 0 {
		d.log.Warn("unmounted what the daemon left behind", "mounts", left)
	}
	if exp, err := fuseloop.New(fuseloop.DaemonDir(filepath.Join(d.root, "data")), fuseloop.Options{}); err != nil {
		d.log.Error("cleanup fuse", "err", err)
	} else if err := exp.Recover(); err != nil {
		d.log.Error("cleanup fuse", "err", err)
	}
}

// tail returns the last n lines of the daemon's log.
func (p *process) tail(n int) string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// parseStatus reads VmRSS and VmHWM from /proc/PID/status lines.
func parseStatus(sc *bufio.Scanner) (memory, error) {
	var m memory
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return m, fmt.Errorf("unexpected %s line %q", k, sc.Text())
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("%s: %w", k, err)
		}
		if k == "VmRSS" {
			m.RSS = n
		} else {
			m.HWM = n
		}
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if m.RSS == 0 || m.HWM == 0 {
		return m, errors.New("no VmRSS/VmHWM in status (kernel thread or exited process?)")
	}
	return m, nil
}
