package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/frontend"
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
	if _, err := d.client.CreateVolume(ctx, spec.Volume{Name: "db", Size: 1 << 30, Repl: 2}); err != nil {
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
			select {
			case <-w.stop:
			default:
				w.halt()
			}
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
		if src, _ := frontend.MountSource(mnt); src != dev {
			t.Fatalf("round %d: %s is mounted from %q, the attachment says %s", round, mnt, src, att.Device)
		}
		checkRecords(t, log, w.acked)
		t.Logf("round %d: %d records acknowledged, %d of them after the kill; fio verified", round, w.acked+1, w.acked-before)
	}
	fioVerify(t, filepath.Join(mnt, "base"), "16M", 7)
	fsckFrozen(t, mnt)
}

// TestCSIRestartKeepsMounts stages and publishes a volume through CSI
// (the kubelet's staging and target bind mounts), writes through the
// target path, kills the serving daemon and checks that the same bind
// mounts carry on (no error, acknowledged records there) and that
// unpublish and unstage work against the new daemon.
func TestCSIRestartKeepsMounts(t *testing.T) {
	n := launchCSI(t, "n1", []string{"disk1", "disk2"}, "--keeper=true")
	ctx := n.ctx()
	vol := n.create(ctx, "pvc-restart", 256<<20, map[string]string{"repl": "2"}, nil)
	target := n.stage(ctx, vol.VolumeId, 0)
	v, err := n.client.InspectVolume(ctx, vol.VolumeId)
	if err != nil || v.Attachment == nil {
		t.Fatalf("inspect: %+v, %v", v, err)
	}
	w := startAckWriter(filepath.Join(target, "log"))
	t.Cleanup(func() {
		select {
		case <-w.stop:
		default:
			w.halt()
		}
	})
	time.Sleep(time.Second)
	before := w.acked
	_, took := n.restartServing(false)
	att := n.waitTakenOver(ctx, vol.VolumeId, v.Attachment.Epoch, w)
	t.Logf("serving daemon killed; %s attached again after %s", vol.VolumeId, took().Round(time.Millisecond))
	for deadline := time.Now().Add(30 * time.Second); w.acked < before+20; {
		if time.Now().After(deadline) {
			t.Fatalf("the writer on the CSI target acknowledged only %d records in 30 s (from %d): %v", w.acked, before, w.err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.halt()
	if w.err != nil {
		t.Fatalf("the writer on the CSI target saw an error: %v", w.err)
	}
	if src, _ := frontend.MountSource(target); src != att.Device {
		t.Fatalf("target %s is mounted from %q, the volume is on %s", target, src, att.Device)
	}
	checkRecords(t, filepath.Join(target, "log"), w.acked)
	n.unstage(ctx, vol.VolumeId)
	if mounted, _ := frontend.IsMounted(target); mounted {
		t.Fatalf("%s still mounted after NodeUnpublishVolume", target)
	}
}
