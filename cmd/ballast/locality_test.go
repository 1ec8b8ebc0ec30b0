package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

// TestDataLocality: a repl 2 volume attached on the node that holds none
// of its replicas gets one built there while fio writes, then one of the
// remote replicas is retired (its files gone from its pool dir): two
// replicas, one local, both in sync, and every byte verifies. A volume
// with locality=none attached on its spare node is left alone.
func TestDataLocality(t *testing.T) {
	nodes, _ := startCluster(t, 3, "--locality-delay", "2s", "--rebuild-mbps", "100")
	byID := map[string]*daemon{"a": nodes[0], "b": nodes[1], "c": nodes[2]}
	ctx := nodes[0].ctx()
	js, err := nodes[0].cli("volume", "create", "stay", "--size", "64M", "--repl", "2", "--locality", "none", "--json")
	if err != nil {
		t.Fatalf("volume create --locality none: %v\n%s", err, js)
	}
	stay := &api.Volume{}
	if err := json.Unmarshal([]byte(js), stay); err != nil {
		t.Fatalf("volume create --json: %v\n%s", err, js)
	}
	if stay.Locality != "none" {
		t.Fatalf("locality %q, want none", stay.Locality)
	}
	stayAt := spareNode(t, byID, stay)
	if _, err := stayAt.client.AttachVolume(ctx, "stay", api.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	stayAttached := time.Now()

	v, err := nodes[0].client.CreateVolume(ctx, spec.Volume{Name: "moved", Size: 512 << 20, Repl: 2}, api.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v.Locality != "best-effort" {
		t.Fatalf("default locality %q, want best-effort", v.Locality)
	}
	orig := []string{v.Replicas[0].ID, v.Replicas[1].ID}
	origNode := map[string]string{v.Replicas[0].ID: v.Replicas[0].Node, v.Replicas[1].ID: v.Replicas[1].Node}
	c := spareNode(t, byID, v)
	att, err := c.client.AttachVolume(ctx, "moved", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fioWrite(t, filepath.Join(att.MountPath, "before"), "64M", 71)
	during := exec.Command("fio", append(fioArgs(filepath.Join(att.MountPath, "during"), "48M", 72), "--rate=4m", "--fsync=16", "--end_fsync=1")...)
	out := &strings.Builder{}
	during.Stdout, during.Stderr = out, out
	if err := during.Start(); err != nil {
		t.Fatal(err)
	}
	var got *api.Volume
	for start := time.Now(); ; time.Sleep(500 * time.Millisecond) {
		got, err = c.client.InspectVolume(ctx, "moved")
		if err != nil {
			t.Fatal(err)
		}
		local := slices.IndexFunc(got.Replicas, func(r api.Replica) bool { return r.Node == c.node && r.Local && r.InSync })
		if local >= 0 && len(got.Replicas) == 2 && insync(*got) == "2/2" {
			break
		}
		if got.Rebuild != nil {
			t.Logf("%s of %s: %s, %d of %d bytes", got.Rebuild.Kind, got.Rebuild.Replica, got.Rebuild.State, got.Rebuild.Done, got.Rebuild.Total)
		}
		if time.Since(start) > 120*time.Second {
			t.Fatalf("no local replica on %s with the remote one retired within 120s: %+v", c.node, got.Replicas)
		}
	}
	t.Logf("after the move: %+v", got.Replicas)
	if got.Rebuild == nil || got.Rebuild.Kind != "locality" || got.Rebuild.State != "done" {
		t.Errorf("last rebuild %+v, want a locality rebuild, done", got.Rebuild)
	}
	var kept, retired []string
	for _, id := range orig {
		if slices.ContainsFunc(got.Replicas, func(r api.Replica) bool { return r.ID == id }) {
			kept = append(kept, id)
		} else {
			retired = append(retired, id)
		}
	}
	if len(kept) != 1 || len(retired) != 1 {
		t.Fatalf("of the original replicas %v, kept %v and retired %v; want one each", orig, kept, retired)
	}
	if local := localReplicas(t, c, "moved"); len(local) != 1 || slices.Contains(orig, local[0]) {
		t.Errorf("local replicas %v, want the new one on %s", local, c.node)
	}
	gone := byID[origNode[retired[0]]]
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		_, err := os.Stat(filepath.Join(gone.dir, "disk", "replicas", retired[0]+".json"))
		if os.IsNotExist(err) {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the retired replica %s is still in %s's pool dir (%v)", retired[0], gone.node, err)
		}
	}
	if err := during.Wait(); err != nil {
		t.Fatalf("writes during the move failed: %v\n%s", err, out)
	}
	fioVerify(t, filepath.Join(att.MountPath, "before"), "64M", 71)
	fioVerify(t, filepath.Join(att.MountPath, "during"), "48M", 72)

	// The locality=none volume, attached on its spare node all this time
	// (many times the delay), still has its replicas where they were.
	if wait := 8*time.Second - time.Since(stayAttached); wait > 0 {
		time.Sleep(wait)
	}
	s, err := stayAt.client.InspectVolume(ctx, "stay")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Replicas) != 2 || s.Replicas[0].ID != stay.Replicas[0].ID || s.Replicas[1].ID != stay.Replicas[1].ID || insync(*s) != "2/2" {
		t.Errorf("locality=none volume changed: %+v, was %+v", s.Replicas, stay.Replicas)
	}
	if local := localReplicas(t, stayAt, "stay"); len(local) != 0 {
		t.Errorf("locality=none volume has local replicas %v", local)
	}
}

// TestDataLocalityDownReplica: one replica node of an idle repl 2 volume
// dies just after the volume is attached on the third node (its replica
// stays in sync until the rebuild delay, 1 min). The local replica is
// built, the replica on the down node is the one retired (its delete
// fails there), and when that node starts again it deletes the replica
// its volume no longer lists.
func TestDataLocalityDownReplica(t *testing.T) {
	nodes, _ := startCluster(t, 3, "--locality-delay", "3s")
	byID := map[string]*daemon{"a": nodes[0], "b": nodes[1], "c": nodes[2]}
	ctx := nodes[0].ctx()
	v, err := nodes[0].client.CreateVolume(ctx, spec.Volume{Name: "away", Size: 128 << 20, Repl: 2}, api.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spare := spareNode(t, byID, v)
	down, downID := byID[v.Replicas[1].Node], v.Replicas[1].ID
	// A raw block device: no filesystem writes in the background, so the
	// down replica stays in sync until the rebuild delay (1 min).
	if _, err := spare.client.AttachVolume(ctx, "away", api.AttachOptions{Block: true}); err != nil {
		t.Fatal(err)
	}
	down.kill9()
	for start := time.Now(); ; time.Sleep(500 * time.Millisecond) {
		got, err := spare.client.InspectVolume(ctx, "away")
		if err != nil {
			t.Fatal(err)
		}
		onDown := slices.ContainsFunc(got.Replicas, func(r api.Replica) bool { return r.ID == downID })
		local := slices.ContainsFunc(got.Replicas, func(r api.Replica) bool { return r.Node == spare.node && r.InSync })
		if local && !onDown && len(got.Replicas) == 2 && insync(*got) == "2/2" {
			break
		}
		if time.Since(start) > 45*time.Second {
			t.Fatalf("the replica on the down node %s was not retired for a local one within 45s: %+v", down.node, got.Replicas)
		}
	}
	file := filepath.Join(down.dir, "disk", "replicas", downID+".json")
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("the down node's replica files: %v", err)
	}
	down.start()
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("node %s started again and kept the replica its volume no longer lists (%v)", down.node, err)
	}
}

// TestDataLocalityCrashDuringBuild: the attach node is killed while the
// local replica is half built. Restarted, it attaches the volume again
// from its in-sync replicas, builds a new local replica, drops the half
// built one from the record and its pool dir, retires a remote one, and
// the data verifies.
func TestDataLocalityCrashDuringBuild(t *testing.T) {
	nodes, _ := startCluster(t, 3, "--locality-delay", "1s", "--rebuild-mbps", "4")
	byID := map[string]*daemon{"a": nodes[0], "b": nodes[1], "c": nodes[2]}
	ctx := nodes[0].ctx()
	v, err := nodes[0].client.CreateVolume(ctx, spec.Volume{Name: "half", Size: 128 << 20, Repl: 2}, api.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := spareNode(t, byID, v)
	// The data is written on a node holding a replica, so that the copy
	// to c takes a while (48 MiB at 4 MiB/s).
	holder := byID[v.Replicas[0].Node]
	att, err := holder.client.AttachVolume(ctx, "half", api.AttachOptions{Block: true})
	if err != nil {
		t.Fatal(err)
	}
	fioWrite(t, att.Device, "48M", 81)
	if err := holder.client.DetachVolume(ctx, "half"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.AttachVolume(ctx, "half", api.AttachOptions{Block: true}); err != nil {
		t.Fatal(err)
	}
	var half string
	for start := time.Now(); half == ""; time.Sleep(200 * time.Millisecond) {
		got, err := c.client.InspectVolume(ctx, "half")
		if err != nil {
			t.Fatal(err)
		}
		if rb := got.Rebuild; rb != nil && rb.Kind == "locality" && rb.State == "running" && rb.Done > 0 {
			half = rb.Replica
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("no locality rebuild under way within 60s: %+v", got.Rebuild)
		}
	}
	c.kill9()
	c.start()
	var got *api.Volume
	for start := time.Now(); ; time.Sleep(500 * time.Millisecond) {
		got, err = c.client.InspectVolume(ctx, "half")
		if err != nil {
			t.Fatal(err)
		}
		local := slices.IndexFunc(got.Replicas, func(r api.Replica) bool { return r.Node == c.node && r.Local && r.InSync })
		if local >= 0 && len(got.Replicas) == 2 && insync(*got) == "2/2" {
			break
		}
		if time.Since(start) > 120*time.Second {
			t.Fatalf("no local replica after the restart within 120s: %+v", got.Replicas)
		}
	}
	if slices.ContainsFunc(got.Replicas, func(r api.Replica) bool { return r.ID == half }) {
		t.Errorf("the half-built replica %s is still part of the volume: %+v", half, got.Replicas)
	}
	if _, err := os.Stat(filepath.Join(c.dir, "disk", "replicas", half+".json")); !os.IsNotExist(err) {
		t.Errorf("the half-built replica %s is still in %s's pool dir (%v)", half, c.node, err)
	}
	if got.Attachment == nil || got.Attachment.Device == "" {
		t.Fatalf("attachment %+v", got.Attachment)
	}
	fioVerify(t, got.Attachment.Device, "48M", 81)
}
