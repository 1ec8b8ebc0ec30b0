package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

// TestReplicaCatchUp: the replica node b is killed while a writes; writes
// go on without it; b restarts and catches up by delta (only what it
// missed is copied) while fio keeps writing, and is in sync again. Then
// the attach node a is killed and b serves the volume from its own caught
// up replica: every file fio wrote verifies and the filesystem is clean.
func TestReplicaCatchUp(t *testing.T) {
	nodes, _ := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	ctx := a.ctx()
	const volSize = 1 << 30
	if _, err := a.client.CreateVolume(ctx, spec.Volume{Name: "back", Size: volSize, Repl: 2}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	att, err := a.client.AttachVolume(ctx, "back", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mnt := att.MountPath
	fioWrite(t, filepath.Join(mnt, "before"), "256M", 71)

	b.kill9()
	fioWrite(t, filepath.Join(mnt, "without-b"), "32M", 72) // b misses these
	v, err := a.client.InspectVolume(ctx, "back")
	if err != nil {
		t.Fatal(err)
	}
	if insync(*v) != "1/2" {
		t.Fatalf("after b died and writes went on: %s in sync, want 1/2", insync(*v))
	}

	b.start()
	during := exec.Command("fio", append(fioArgs(filepath.Join(mnt, "during"), "32M", 73), "--rate=4m", "--fsync=16", "--end_fsync=1")...)
	out := &strings.Builder{}
	during.Stdout, during.Stderr = out, out
	if err := during.Start(); err != nil {
		t.Fatal(err)
	}
	var rb *api.Rebuild
	for start := time.Now(); ; time.Sleep(300 * time.Millisecond) {
		v, err = a.client.InspectVolume(ctx, "back")
		if err != nil {
			t.Fatal(err)
		}
		if rb = v.Rebuild; rb != nil && rb.State == "done" && insync(*v) == "2/2" {
			break
		}
		if time.Since(start) > 90*time.Second {
			t.Fatalf("b did not catch up within 90s: %s in sync, rebuild %+v", insync(*v), v.Rebuild)
		}
	}
	if err := during.Wait(); err != nil {
		t.Fatalf("writes during the catch-up failed: %v\n%s", err, out)
	}
	t.Logf("catch-up copied %d MiB of the %d MiB volume in %s", rb.Total>>20, volSize>>20, rb.Elapsed)
	if rb.Kind != "catch-up" || rb.Total == 0 || rb.Total > 128<<20 {
		t.Fatalf("rebuild %+v: want a catch-up of the ~32 MiB b missed, not a full copy", rb)
	}
	for _, r := range v.Replicas {
		if r.Node == "b" && !r.InSync {
			t.Fatalf("b's replica is not in sync: %+v", v.Replicas)
		}
	}

	// b's replica alone must now hold everything.
	a.kill9()
	var batt *api.Attachment
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		batt, err = b.client.AttachVolume(ctx, "back", api.AttachOptions{})
		if err == nil {
			break
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("b could not take the volume over: %v", err)
		}
	}
	fioVerify(t, filepath.Join(batt.MountPath, "before"), "256M", 71)
	fioVerify(t, filepath.Join(batt.MountPath, "without-b"), "32M", 72)
	fioVerify(t, filepath.Join(batt.MountPath, "during"), "32M", 73)
	fsckFrozen(t, batt.MountPath)
}
