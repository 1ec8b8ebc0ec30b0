package main

import (
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
		old := d.servingPID()
		if old == 0 {
			t.Fatal("no serving daemon under the keeper")
		}
		before := w.acked
		how := "killed (kill -9)"
		if round == 1 {
			// An upgrade: SIGHUP to the keeper replaces the daemon.
			how = "replaced (SIGHUP to the keeper)"
			err = d.cmd.Process.Signal(syscall.SIGHUP)
		} else {
			err = syscall.Kill(old, syscall.SIGKILL)
		}
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		// The keeper starts a new daemon, which attaches db again.
		for {
			if pid := d.servingPID(); pid != 0 && pid != old {
				v, err := d.client.InspectVolume(ctx, "db")
				if err == nil && v.Attachment != nil && v.Attachment.Epoch > att.Epoch {
					att = v.Attachment
					break
				}
			}
			select {
			case <-w.done:
				t.Fatalf("round %d: the writer stopped while the daemon restarted: %v", round, w.err)
			default:
			}
			if time.Since(t0) > 60*time.Second {
				t.Fatalf("round %d: volume not attached again 60 s after the daemon was killed", round)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("round %d: daemon %d %s; the new one attached db again after %s (epoch %d)", round, old, how, time.Since(t0).Round(time.Millisecond), att.Epoch)
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
