package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
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
	id      string // node ID, in a cluster
	root    string
	cmd     *exec.Cmd
	done    chan struct{}
	client  *api.Client
	logPath string
	log     *slog.Logger
	binary  string
	args    []string // the daemon's arguments, for a restart
}

// startDaemon starts binary as a daemon under root and waits until it
// answers on its socket. On error, whatever was started is stopped again.
func startDaemon(ctx context.Context, binary, root string, extra []string, logger *slog.Logger) (*daemon, error) {
	args := append([]string{"daemon", "--data-dir", filepath.Join(root, "data"), "--node-id", "n1", "--docker-socket=",
		"--pool-dir", filepath.Join(root, "disk1"), "--pool-dir", filepath.Join(root, "disk2"),
		"--socket", filepath.Join(root, "ballast.sock")}, extra...)
	d := &daemon{root: root, logPath: filepath.Join(root, "daemon.log"), log: logger, binary: binary, args: args}
	return d, d.start(ctx)
}

// start runs the daemon with d.args (again, after stop or kill9) and waits
// until it answers on its socket. On error, whatever was started is
// stopped again.
func (d *daemon) start(ctx context.Context) (err error) {
	binary, root, logger := d.binary, d.root, d.log
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	socket := filepath.Join(root, "ballast.sock")
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	d.cmd = exec.Command(binary, d.args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	// Its own process group: a Ctrl-C on the terminal reaches only the
	// benchmark, which stops the daemon in order. Pdeathsig: if the
	// benchmark is killed, the daemon still stops (and unmounts).
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", binary, err)
	}
	d.done = make(chan struct{})
	go func() { d.cmd.Wait(); logf.Close(); close(d.done) }()
	defer func() {
		if err != nil {
			d.stop()
		}
	}()
	logger.Info("started daemon", "pid", d.cmd.Process.Pid, "root", root, "log", d.logPath)
	if d.client, err = api.Dial(socket); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := d.client.ListPools(cctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-d.done:
			return fmt.Errorf("daemon exited during start-up (%v); its log:\n%s", d.cmd.ProcessState, d.tail(30))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("daemon not ready after 60s: %v; its log:\n%s", err, d.tail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pid is the daemon's process ID.
func (d *daemon) pid() int { return d.cmd.Process.Pid }

// stop ends the daemon (SIGTERM, then SIGKILL after 30 s) and removes
// whatever it left mounted under its root: filesystems, loop devices and
// FUSE mounts. It is safe to call more than once.
func (d *daemon) stop() {
	if d.client != nil {
		d.client.Close()
		d.client = nil
	}
	if d.cmd != nil && d.cmd.Process != nil {
		select {
		case <-d.done:
		default:
			d.log.Info("stopping daemon", "pid", d.pid())
			if terminate(d.cmd.Process, d.done, 30*time.Second) {
				d.log.Error("daemon did not stop within 30s of SIGTERM; it was killed", "pid", d.pid())
			}
		}
		if st := d.cmd.ProcessState; st != nil && !st.Success() {
			d.log.Warn("daemon exited with an error", "status", st.String(), "log", d.logPath)
		}
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
func (d *daemon) tail(n int) string {
	b, _ := os.ReadFile(d.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// memory is what /proc/PID/status says about a process's memory, in KiB.
type memory struct {
	RSS, HWM int64
}

// readMemory reads VmRSS and VmHWM of process pid.
func readMemory(pid int) (memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	defer f.Close()
	return parseStatus(bufio.NewScanner(f))
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

// terminate ends process p by its PID: SIGTERM, then SIGKILL when it is
// still there after grace; it returns once done is closed (the process
// was waited for), reporting whether it had to be killed.
func terminate(p *os.Process, done <-chan struct{}, grace time.Duration) (killed bool) {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return false
	case <-time.After(grace):
		_ = p.Signal(syscall.SIGKILL)
		<-done
		return true
	}
}
