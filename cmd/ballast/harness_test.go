package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/frontend/fuseloop"
	"github.com/ballast-io/ballast/pool/hostfs"
	"github.com/ballast-io/ballast/pool/testenv"
)

// ballastBin is the ballast binary under test, built once by TestMain.
var ballastBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ballast-bin-")
	if err != nil {
		panic(err)
	}
	ballastBin = filepath.Join(dir, "ballast")
	out, err := exec.Command("go", "build", "-o", ballastBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build ballast: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is a real ballast daemon process started by a test.
type daemon struct {
	t       *testing.T
	node    string
	dir     string
	args    []string
	cmd     *exec.Cmd
	done    chan struct{}
	socket  string
	client  *api.Client
	logPath string
	// wrap runs the daemon under another command, e.g. nsenter into a
	// network namespace.
	wrap []string
	// cwd is the daemon's working directory, when not the test's.
	cwd string
	// env is added to the daemon's environment; files are passed to it
	// from fd 3 on (as systemd passes stored descriptors).
	env   []string
	files []*os.File
	// bin is the ballast binary the daemon runs, when not ballastBin.
	bin string
}

// startDaemon starts a single-node daemon with two pool dirs under a fresh
// temp dir, with extra daemon flags if given. Everything it mounts is
// cleaned up when the test ends, even if the test fails or the daemon was
// killed.
func startDaemon(t *testing.T, extra ...string) *daemon {
	t.Helper()
	return launch(t, "n1", []string{"disk1", "disk2"}, extra...)
}

// launch starts daemon node with one pool dir per name in disks.
func launch(t *testing.T, node string, disks []string, extra ...string) *daemon {
	t.Helper()
	d := newDaemon(t, node, disks, extra...)
	d.start()
	return d
}

// newDaemon prepares daemon node without starting it.
func newDaemon(t *testing.T, node string, disks []string, extra ...string) *daemon {
	t.Helper()
	testenv.RequirePrivileged(t)
	testenv.RequireTools(t, "mkfs.ext4", "mkfs.xfs", "fio", "e2fsck")
	dir, err := os.MkdirTemp("/var/tmp", "ballast-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, node: node, dir: dir, socket: filepath.Join(dir, "ballast.sock"), logPath: filepath.Join(dir, "daemon.log")}
	// Without the keeper (--keeper=false): the daemon is one process, and
	// a kill is the crash of a node's daemon; keeper_test.go turns it on.
	d.args = []string{"daemon", "--data-dir", filepath.Join(dir, "data"), "--node-id", node, "--socket", d.socket, "--docker-socket=", "--keeper=false"}
	for _, disk := range disks {
		d.args = append(d.args, "--pool-dir", filepath.Join(dir, disk))
	}
	d.args = append(d.args, extra...)
	t.Cleanup(func() {
		d.stop()
		d.cleanupMounts()
		if t.Failed() {
			if b, err := os.ReadFile(d.logPath); err == nil {
				t.Logf("daemon log:\n%s", lastLines(string(b), 60))
			}
		}
		os.RemoveAll(dir)
	})
	return d
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (d *daemon) start() {
	d.t.Helper()
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	bin := ballastBin
	if d.bin != "" {
		bin = d.bin
	}
	argv := append(append(slices.Clone(d.wrap), bin), d.args...)
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Dir = d.cwd
	d.cmd.Env = append(os.Environ(), d.env...)
	d.cmd.ExtraFiles = d.files
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	// If the test binary dies without its cleanups (a panic), the daemon
	// still stops, and SIGTERM makes it unmount its volumes on the way.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.done = make(chan struct{})
	go func() { d.cmd.Wait(); logf.Close(); close(d.done) }()
	if d.client == nil {
		if d.client, err = api.Dial(d.socket); err != nil {
			d.t.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := d.client.ListPools(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-d.done:
			d.t.Fatalf("daemon exited during start-up: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("daemon not ready after 60s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill9 kills the daemon the hard way and waits for it to be gone.
func (d *daemon) kill9() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-d.done:
		return
	case <-time.After(15 * time.Second):
	}
	// A thread of it is stuck in the kernel on I/O to its own FUSE files
	// (an unmount at shutdown, with a replica unreachable): abort them.
	d.t.Logf("daemon %s did not exit 15s after SIGKILL; aborting its FUSE connections", d.node)
	if err := abortFUSE(d.dir); err != nil {
		d.t.Logf("abort FUSE connections: %v", err)
	}
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.t.Errorf("daemon %s (pid %d) is still there 30s after its FUSE connections were aborted", d.node, d.cmd.Process.Pid)
	}
}

// abortFUSE aborts the FUSE connections of the mounts under dir through
// the fusectl filesystem (mounted for the purpose if it is not).
func abortFUSE(dir string) error {
	const ctl = "/sys/fs/fuse/connections"
	if _, err := os.Stat(ctl); err != nil {
		return err
	}
	if entries, _ := os.ReadDir(ctl); len(entries) == 0 {
		if out, err := exec.Command("mount", "-t", "fusectl", "none", ctl).CombinedOutput(); err != nil {
			return fmt.Errorf("mount fusectl: %v: %s", err, out)
		}
		defer exec.Command("umount", ctl).Run()
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || !strings.HasPrefix(f[4], dir) || !strings.Contains(line, " - fuse") {
			continue
		}
		_, minor, _ := strings.Cut(f[2], ":") // the connection is named by the device minor
		if err := os.WriteFile(filepath.Join(ctl, minor, "abort"), []byte("1"), 0o200); err != nil {
			return err
		}
	}
	return nil
}

// stop ends the daemon gracefully (SIGTERM), then by force after 30 s.
func (d *daemon) stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.t.Errorf("daemon did not stop within 30s of SIGTERM; killing it")
		d.kill9()
	}
}

// cleanupMounts removes whatever a killed daemon left behind under its dir.
func (d *daemon) cleanupMounts() {
	if _, err := hostfs.UnmountAllUnder(d.dir); err != nil {
		d.t.Logf("cleanup mounts: %v", err)
	}
	exp, err := fuseloop.New(fuseloop.DaemonDir(filepath.Join(d.dir, "data")), fuseloop.Options{})
	if err == nil {
		if err := exp.Recover(); err != nil {
			d.t.Logf("cleanup fuse: %v", err)
		}
	}
}

func (d *daemon) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	d.t.Cleanup(cancel)
	return ctx
}

// cli runs the ballast CLI against the daemon and returns its output.
func (d *daemon) cli(args ...string) (string, error) {
	out, err := exec.Command(ballastBin, append([]string{"--socket", d.socket}, args...)...).CombinedOutput()
	return string(out), err
}

// run runs a command and fails the test if it fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// fioArgs describes a fio job writing a file with crc32c verify headers;
// the same args with --verify_only check it later.
func fioArgs(path, size string, seed int) []string {
	return []string{"--name=data", "--filename=" + path, "--rw=randwrite", "--bs=4k", "--size=" + size,
		"--ioengine=psync", "--direct=1", "--verify=crc32c", "--do_verify=1", "--verify_state_save=0",
		fmt.Sprintf("--randseed=%d", seed), "--output-format=terse"}
}

func fioWrite(t *testing.T, path, size string, seed int) {
	t.Helper()
	run(t, "fio", append(fioArgs(path, size, seed), "--end_fsync=1")...)
}

func fioVerify(t *testing.T, path, size string, seed int) {
	t.Helper()
	run(t, "fio", append(fioArgs(path, size, seed), "--verify_only")...)
}

func sha(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// fsckFrozen checks the ext4 filesystem mounted at mnt read-only while it is
// frozen (the journal is flushed and nothing changes under e2fsck).
func fsckFrozen(t *testing.T, mnt string) {
	t.Helper()
	dev, err := hostfs.MountSource(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if err := hostfs.Freeze(mnt); err != nil {
		t.Fatal(err)
	}
	defer hostfs.Thaw(mnt)
	out, err := exec.Command("e2fsck", "-fn", dev).CombinedOutput()
	if err != nil {
		t.Fatalf("e2fsck -fn %s (%s): %v\n%s", dev, mnt, err, out)
	}
}
