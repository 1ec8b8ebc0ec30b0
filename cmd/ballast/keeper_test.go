package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/hostfs"
	"github.com/ballast-io/ballast/pool/spec"
)

// servingPID is the PID of the serving daemon the keeper runs as its
// child (the only child of the "ballast daemon" process the test started).
func (d *daemon) servingPID() int {
	d.t.Helper()
	// children lists the processes each thread forked; Go forks from any.
	tasks, err := filepath.Glob("/proc/" + strconv.Itoa(d.cmd.Process.Pid) + "/task/*/children")
	if err != nil {
		d.t.Fatal(err)
	}
	var pids []string
	for _, p := range tasks {
		b, _ := os.ReadFile(p)
		pids = append(pids, strings.Fields(string(b))...)
	}
	if len(pids) != 1 {
		return 0
	}
	child, _ := strconv.Atoi(pids[0])
	return child
}

// restartServing kills the serving daemon (kill -9), or with upgrade asks
// the keeper to replace it (SIGHUP), and returns its PID and a clock
// started then.
func (d *daemon) restartServing(upgrade bool) (int, func() time.Duration) {
	d.t.Helper()
	old := d.servingPID()
	if old == 0 {
		d.t.Fatal("no serving daemon under the keeper")
	}
	var err error
	if upgrade {
		err = d.cmd.Process.Signal(syscall.SIGHUP)
	} else {
		err = syscall.Kill(old, syscall.SIGKILL)
	}
	if err != nil {
		d.t.Fatal(err)
	}
	t0 := time.Now()
	return old, func() time.Duration { return time.Since(t0) }
}

// waitTakenOver waits for a new serving daemon to have attached vol
// again, at an epoch above epoch, while w (if any) keeps writing.
func (d *daemon) waitTakenOver(ctx context.Context, vol string, epoch uint64, w *ackWriter) *api.Attachment {
	d.t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; {
		v, err := d.client.InspectVolume(ctx, vol)
		if err == nil && v.Attachment != nil && v.Attachment.Epoch > epoch {
			return v.Attachment
		}
		if w != nil {
			select {
			case <-w.done:
				d.t.Fatalf("the writer stopped while the daemon restarted: %v", w.err)
			default:
			}
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s not attached again 60 s after the daemon was killed", vol)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// upgradedVersion is the version a restart test's freshly built binary
// reports.
const upgradedVersion = "upgrade-test"

// restartRounds is how many times a restart test ends the serving daemon:
// kill -9 in the first five rounds, SIGTERM in the sixth, an upgrade in
// the seventh (see endServing).
const restartRounds = 7

// endServing ends d's serving daemon the way round r of a restart test
// does: kill -9, or SIGTERM (round 5), or in round 6 an upgrade: d.bin is
// replaced by a fresh build reporting upgradedVersion, then SIGTERM (the
// keeper starts what is at the path). It returns the PID and what was done.
func (d *daemon) endServing(round int) (int, string) {
	d.t.Helper()
	old := d.servingPID()
	if old == 0 {
		d.t.Fatalf("round %d: no serving daemon under the keeper", round)
	}
	how, sig := "killed (kill -9)", syscall.SIGKILL
	switch round {
	case 5:
		how, sig = "stopped (SIGTERM)", syscall.SIGTERM
	case 6:
		how, sig = "upgraded (new binary, SIGTERM)", syscall.SIGTERM
		run(d.t, "go", "build", "-o", d.bin+".new", "-ldflags", "-X github.com/ballast-io/ballast/pool/version.Version="+upgradedVersion, ".")
		run(d.t, "mv", d.bin+".new", d.bin)
	}
	if err := syscall.Kill(old, sig); err != nil {
		d.t.Fatal(err)
	}
	return old, how
}

// checkUpgraded fails the test unless d's node reports upgradedVersion.
func (d *daemon) checkUpgraded(ctx context.Context) {
	d.t.Helper()
	nodes, err := d.client.ClusterStatus(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].Version != upgradedVersion {
		d.t.Fatalf("after the upgrade the node runs %+v (%v), want version %s", nodes, err, upgradedVersion)
	}
}

// ownBinary gives d a copy of the ballast binary to run, which a restart
// test may replace (an upgrade).
func (d *daemon) ownBinary() {
	d.t.Helper()
	d.bin = filepath.Join(d.t.TempDir(), "ballast")
	run(d.t, "cp", ballastBin, d.bin)
}

// startFio starts fio writing path with verify=crc32c and an fsync every
// 4 writes; wait returns its error with its output.
func startFio(t *testing.T, path string, seed int) (wait func() error) {
	t.Helper()
	cmd := exec.Command("fio", append(fioArgs(path, "16M", seed), "--fsync=4")...)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return func() error {
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("fio (write, verify=crc32c) on %s: %w\n%s", path, err, out)
		}
		return nil
	}
}

// TestRestartKeepsIO kills the serving daemon (kill -9; the second time:
// SIGHUP to the keeper, an upgrade) under a mounted volume that two
// writers keep busy: one fsyncs 4 KiB records one after another, fio
// writes with verify=crc32c. The keeper restarts the daemon,
// which takes the same FUSE connection and loop device over. Neither
// writer may see an error: their I/O waits, then carries on. Every
// acknowledged record is there, fio verifies, e2fsck is clean, and the
// volume is still on the same loop device and mount. The second time, a
// daemon that took over is taken over in turn.
func TestRestartKeepsIO(t *testing.T) {
	d := startDaemon(t, "--keeper=true", "--restart-grace=60s")
	ctx := d.ctx()
	if _, err := d.client.CreateVolume(ctx, spec.Volume{Name: "db", Size: 1 << 30, Repl: 2}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	att, err := d.client.AttachVolume(ctx, "db", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mnt, dev := att.MountPath, att.Device
	fioWrite(t, filepath.Join(mnt, "base"), "16M", 7)

	for round := range 2 {
		log := filepath.Join(mnt, "log"+strconv.Itoa(round))
		w := startAckWriter(log)
		busy := filepath.Join(mnt, "busy"+strconv.Itoa(round))
		bg := exec.Command("fio", append(fioArgs(busy, "24M", 11+round), "--fsync=4")...)
		out := &strings.Builder{}
		bg.Stdout, bg.Stderr = out, out
		if err := bg.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { // on failure: the daemon stops only when they do
			bg.Process.Kill()
			w.halt()
		})
		time.Sleep(1500 * time.Millisecond)
		before := w.acked
		how := "killed (kill -9)"
		if round == 1 {
			how = "replaced (SIGHUP to the keeper)"
		}
		old, took := d.restartServing(round == 1)
		att = d.waitTakenOver(ctx, "db", att.Epoch, w)
		t.Logf("round %d: daemon %d %s; the new one attached db again after %s (epoch %d)", round, old, how, took().Round(time.Millisecond), att.Epoch)
		// The writer goes on: more records get acknowledged.
		for deadline := time.Now().Add(30 * time.Second); w.acked < before+20; {
			select {
			case <-w.done:
				t.Fatalf("round %d: the writer failed after the restart: %v", round, w.err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the writer acknowledged only %d records in 30 s after the restart (from %d)", round, w.acked, before)
			}
			time.Sleep(50 * time.Millisecond)
		}
		w.halt()
		if w.err != nil {
			t.Fatalf("round %d: the writer saw an error: %v", round, w.err)
		}
		if err := bg.Wait(); err != nil {
			t.Fatalf("round %d: fio (write with verify=crc32c during the restart) failed: %v\n%s", round, err, out)
		}
		if att.Device != dev || att.MountPath != mnt {
			t.Fatalf("round %d: after the restart db is attached %+v, not on %s at %s as before: not taken over", round, att, dev, mnt)
		}
		if src, _ := hostfs.MountSource(mnt); src != dev {
			t.Fatalf("round %d: %s is mounted from %q, the attachment says %s", round, mnt, src, att.Device)
		}
		checkRecords(t, log, w.acked)
		t.Logf("round %d: %d records acknowledged, %d of them after the kill; fio verified", round, w.acked+1, w.acked-before)
	}
	fioVerify(t, filepath.Join(mnt, "base"), "16M", 7)
	fsckFrozen(t, mnt)
}

// TestCSIRestartUnderIO stages and publishes a volume through CSI (the
// kubelet's staging and target bind mounts) and writes through the target
// path (fsynced records, and fio with verify=crc32c each round) while the
// serving daemon is ended as in TestRestartUnderIO: kill -9 five times,
// SIGTERM, an upgrade. The same bind mounts carry on with no error, the
// volume stays on the same loop device, every acknowledged record is
// there, e2fsck is clean, and unpublish and unstage work against the last
// daemon.
func TestCSIRestartUnderIO(t *testing.T) {
	n := newCSI(t, "n1", []string{"disk1", "disk2"}, "--keeper=true", "--restart-grace=60s")
	n.ownBinary()
	n.start()
	n.waitReady()
	ctx := n.ctx()
	vol := n.create(ctx, "pvc-restart", 256<<20, map[string]string{"repl": "2"}, nil)
	target := n.stage(ctx, vol.VolumeId, 0)
	v, err := n.client.InspectVolume(ctx, vol.VolumeId)
	if err != nil || v.Attachment == nil {
		t.Fatalf("inspect: %+v, %v", v, err)
	}
	att := v.Attachment
	w := startAckWriter(filepath.Join(target, "log"))
	t.Cleanup(w.halt)
	time.Sleep(time.Second)
	for round := range restartRounds {
		fio := startFio(t, filepath.Join(target, "busy"+strconv.Itoa(round)), 20+round)
		time.Sleep(time.Second)
		before := w.acked
		old, how := n.endServing(round)
		t0 := time.Now()
		att = n.waitTakenOver(ctx, vol.VolumeId, att.Epoch, w)
		took := time.Since(t0)
		for deadline := time.Now().Add(30 * time.Second); w.acked < before+20; {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the writer on the CSI target acknowledged only %d records in 30 s (from %d): %v", round, w.acked, before, w.err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := fio(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if src, _ := hostfs.MountSource(target); att.Device != v.Attachment.Device || src != att.Device {
			t.Fatalf("round %d: target %s is mounted from %q, the volume is on %s, was on %s: not taken over", round, target, src, att.Device, v.Attachment.Device)
		}
		t.Logf("round %d: serving daemon %d %s; %s taken over after %s; %d records acknowledged", round, old, how, vol.VolumeId, took.Round(time.Millisecond), w.acked)
	}
	n.checkUpgraded(ctx)
	w.halt()
	if w.err != nil {
		t.Fatalf("the writer on the CSI target saw an error: %v", w.err)
	}
	checkRecords(t, filepath.Join(target, "log"), w.acked)
	fioVerify(t, filepath.Join(target, "busy0"), "16M", 20)
	fsckFrozen(t, target)
	n.unstage(ctx, vol.VolumeId)
	if mounted, _ := hostfs.IsMounted(target); mounted {
		t.Fatalf("%s still mounted after NodeUnpublishVolume", target)
	}
}

// TestRestartUnderIO: a container (started through the Docker plugin,
// before any restart) appends numbered lines to its Ballast volume,
// fsyncing each, while the node's serving daemon is killed (kill -9) five
// times, stopped with SIGTERM once, and once replaced by a freshly built
// binary of another version (SIGTERM after the binary on disk changed:
// the keeper starts the new one). Each time fio writes with
// verify=crc32c through the same volume from the host. The container
// never sees an error and keeps writing after each restart, the new
// version serves after the upgrade, every line is there in order, e2fsck
// is clean, and when the container is removed its volume is detached:
// the mount ID Docker gave before the restarts is still known.
func TestRestartUnderIO(t *testing.T) {
	e := newDockerEnv(t)
	d := newDaemon(t, "n1", []string{"disk1", "disk2"}, "--docker-socket", e.socket, "--keeper=true", "--restart-grace=60s")
	d.ownBinary()
	d.start()
	e.serving(d)
	ctx := d.ctx()
	e.create("rv", "--opt", "size=256M", "--opt", "repl=2")
	// Each line fsynced before the next; an error ends the container
	// with a status saying which.
	script := `i=0; while [ ! -e /data/stop ]; do echo $i >>/data/seq || exit 3; sync /data/seq || exit 4; i=$((i+1)); done`
	id := strings.TrimSpace(e.mustDocker(e.runArgs([]string{"-d", "-v", "rv:/data"}, "sh", "-c", script)...))
	v, err := d.client.InspectVolume(ctx, "rv")
	if err != nil || v.Attachment == nil {
		t.Fatalf("rv after docker run: %+v, %v", v, err)
	}
	att := v.Attachment
	mnt := att.MountPath
	lines := func() int {
		b, _ := os.ReadFile(filepath.Join(mnt, "seq"))
		return strings.Count(string(b), "\n")
	}
	running := func(round int) {
		t.Helper()
		if st := strings.TrimSpace(e.mustDocker("inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", id)); st != "true 0" {
			t.Fatalf("round %d: the container stopped (running, exit code: %s): its I/O failed\n%s", round, st, e.mustDocker("logs", id))
		}
	}
	for start := time.Now(); lines() < 50; time.Sleep(50 * time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("the container wrote %d lines in 30 s", lines())
		}
	}

	for round := range restartRounds {
		fio := startFio(t, filepath.Join(mnt, "busy"+strconv.Itoa(round)), 20+round)
		time.Sleep(time.Second)
		old, how := d.endServing(round)
		t0 := time.Now()
		before := lines()
		att = d.waitTakenOver(ctx, "rv", att.Epoch, nil)
		took := time.Since(t0)
		for deadline := time.Now().Add(30 * time.Second); lines() < before+20; time.Sleep(50 * time.Millisecond) {
			running(round)
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the container wrote only %d lines in 30 s after the restart", round, lines()-before)
			}
		}
		running(round)
		if err := fio(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if att.MountPath != mnt || att.Device != v.Attachment.Device {
			t.Fatalf("round %d: rv is attached %+v after the restart, not taken over on %s at %s", round, att, v.Attachment.Device, mnt)
		}
		t.Logf("round %d: serving daemon %d %s; rv taken over after %s; the container goes on (%d lines)", round, old, how, took.Round(time.Millisecond), lines())
	}
	d.checkUpgraded(ctx)

	if err := os.WriteFile(filepath.Join(mnt, "stop"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := strings.TrimSpace(e.mustDocker("wait", id)); code != "0" {
		t.Fatalf("the container exited with %s: its I/O failed\n%s", code, e.mustDocker("logs", id))
	}
	// Its volume goes with it: Docker's mount ID from before the
	// restarts is still known.
	waitDetached(t, d.client, "rv")
	e.mustDocker("rm", id)
	att, err = d.client.AttachVolume(ctx, "rv", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(att.MountPath, "seq"))
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l != strconv.Itoa(i) {
			t.Fatalf("line %d of the container's file is %q", i+1, l)
		}
	}
	fsckFrozen(t, att.MountPath)
	if err := d.client.DetachVolume(ctx, "rv"); err != nil {
		t.Fatal(err)
	}
}

// TestRestartGraceEnds: when no serving daemon comes back within
// --restart-grace (here the binary on disk fails at once, every time),
// the keeper lets the volume go and its waiting I/O fails with an error
// instead of hanging. A working binary put back is started (the keeper
// keeps trying) and attaches the volume again afresh, with every record
// acknowledged before the failure.
func TestRestartGraceEnds(t *testing.T) {
	d := newDaemon(t, "n1", []string{"disk1", "disk2"}, "--keeper=true", "--restart-grace=3s")
	d.ownBinary()
	d.start()
	bin := d.bin
	ctx := d.ctx()
	if _, err := d.client.CreateVolume(ctx, spec.Volume{Name: "g", Size: 256 << 20, Repl: 2}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	att, err := d.client.AttachVolume(ctx, "g", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := startAckWriter(filepath.Join(att.MountPath, "log"))
	time.Sleep(time.Second)
	broken := "#!/bin/sh\necho 'a broken upgrade' >&2\nexit 1\n"
	if err := os.WriteFile(bin+".new", []byte(broken), 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "mv", bin+".new", bin)
	old, took := d.restartServing(false)
	select {
	case <-w.done:
		t.Logf("with no daemon back, the writer failed %s after daemon %d was killed: %v", took().Round(time.Millisecond), old, w.err)
	case <-time.After(30 * time.Second):
		t.Fatalf("the writer still waits 30 s after the daemon was killed, with a restart grace of 3 s")
	}
	if w.err == nil || took() < 2*time.Second {
		t.Fatalf("the writer ended after %s with %v: want an I/O error once the 3 s grace is over", took(), w.err)
	}
	run(t, "cp", ballastBin, bin+".new")
	run(t, "mv", bin+".new", bin)
	att2 := d.waitTakenOver(ctx, "g", att.Epoch, nil)
	checkRecords(t, filepath.Join(att2.MountPath, "log"), w.acked)
	fsckFrozen(t, att2.MountPath)
}
