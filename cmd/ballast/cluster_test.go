package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/hostfs"
	"github.com/ballast-io/ballast/pool/spec"
)

// startCluster starts n daemons (a, b, ...) sharing an external etcd, each
// with one pool dir and a replica server on loopback, all with the same
// cluster secret.
func startCluster(t *testing.T, n int, extra ...string) ([]*daemon, *etcdServer) {
	t.Helper()
	etcd := startEtcd(t)
	endpoint := etcd.URL
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("a cluster secret for the tests"), 0o600); err != nil {
		t.Fatal(err)
	}
	var nodes []*daemon
	for i := range n {
		id := string(rune('a' + i))
		args := append([]string{"--etcd-endpoints", endpoint, "--cluster-secret-file", secret, "--lease-ttl", "2s",
			"--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t))}, extra...)
		nodes = append(nodes, launch(t, id, []string{"disk"}, args...))
	}
	return nodes, etcd
}

// TestClusterFailover: a repl 2 volume spans two nodes; the node it is
// attached on is killed with SIGKILL after fio wrote and fsynced through
// it; the other node attaches it once the dead node's lease expires, and
// every byte fio wrote verifies, with a clean filesystem.
func TestClusterFailover(t *testing.T) {
	nodes, _ := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	ctx := a.ctx()
	v, err := a.client.CreateVolume(ctx, spec.Volume{Name: "shared", Size: 512 << 20, Repl: 2}, api.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var where []string
	for _, r := range v.Replicas {
		where = append(where, r.Node)
	}
	slices.Sort(where)
	if !slices.Equal(where, []string{"a", "b"}) {
		t.Fatalf("repl 2 on two nodes must use both: replicas on %v", where)
	}
	if _, err := a.client.CreateVolume(ctx, spec.Volume{Name: "three", Size: 512 << 20, Repl: 3}, api.CreateOptions{}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("repl 3 on a 2-node cluster: %v; want a clear invalid-argument error", err)
	}
	att, err := a.client.AttachVolume(ctx, "shared", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fioWrite(t, filepath.Join(att.MountPath, "data"), "128M", 21)
	if _, err := b.client.AttachVolume(ctx, "shared", api.AttachOptions{}); !errors.Is(err, api.ErrInUse) {
		t.Fatalf("attach on b while a holds it: %v; want an in-use error naming a", err)
	}
	if out, err := b.cli("volume", "detach", "shared"); err == nil || !strings.Contains(out, "attached on node a, not on this node (b)") {
		t.Fatalf("detach on b of a volume attached on a: %v %s; want an error naming a", err, out)
	}

	a.kill9()
	killed := time.Now()
	var batt *api.Attachment
	for {
		batt, err = b.client.AttachVolume(ctx, "shared", api.AttachOptions{})
		if err == nil {
			break
		}
		if !errors.Is(err, api.ErrInUse) || time.Since(killed) > 30*time.Second {
			t.Fatalf("attach on b after a died: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("b attached the volume %s after a was killed", time.Since(killed).Round(time.Millisecond))
	if batt.Node != "b" || batt.Epoch < 2 {
		t.Fatalf("takeover attachment: %+v", batt)
	}
	fioVerify(t, filepath.Join(batt.MountPath, "data"), "128M", 21)
	fsckFrozen(t, batt.MountPath)
	got, err := b.client.InspectVolume(ctx, "shared")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got.Replicas {
		if r.Node == "a" && r.InSync {
			t.Errorf("a's replica is still in sync although a was unreachable at takeover: %+v", got.Replicas)
		}
	}
	// Writes go on with the surviving replica.
	fioWrite(t, filepath.Join(batt.MountPath, "more"), "32M", 22)
}

// TestPartitionedOwnerIsFenced cuts the attach node off by stopping it
// (SIGSTOP: it goes silent, its lease expires, exactly what a partition
// looks like to the others), takes the volume over on the other node, then
// lets the old owner run again with writes in flight: none of them is
// acknowledged, none reaches an in-sync replica, it cannot shrink the
// in-sync set, and the new owner's filesystem is clean.
func TestPartitionedOwnerIsFenced(t *testing.T) {
	nodes, _ := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	ctx := a.ctx()
	if _, err := a.client.CreateVolume(ctx, spec.Volume{Name: "split", Size: 512 << 20, Repl: 2}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	att, err := a.client.AttachVolume(ctx, "split", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fioWrite(t, filepath.Join(att.MountPath, "base"), "32M", 31)
	w := startAckWriter(filepath.Join(att.MountPath, "late"))
	time.Sleep(time.Second)

	a.cmd.Process.Signal(syscall.SIGSTOP)
	stopped := time.Now()
	stoppedAcks := w.acked
	defer a.cmd.Process.Signal(syscall.SIGCONT) // so cleanup can stop it
	var batt *api.Attachment
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		batt, err = b.client.AttachVolume(ctx, "split", api.AttachOptions{})
		if err == nil {
			break
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("b could not take over from the silent a: %v", err)
		}
	}
	t.Logf("b took the volume over %s after a froze (lease 2s)", time.Since(stopped).Round(time.Millisecond))
	before, err := b.client.InspectVolume(ctx, "split")
	if err != nil {
		t.Fatal(err)
	}

	a.cmd.Process.Signal(syscall.SIGCONT) // the old owner comes back
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the old owner's writer still runs 30s after it resumed: its writes must fail")
	}
	if w.acked > stoppedAcks+1 { // one fsync may have completed as the signal landed
		t.Fatalf("the fenced owner acknowledged %d more writes after the takeover", w.acked-stoppedAcks)
	}
	t.Logf("old owner's writer stopped with: %v", w.err)
	after, err := b.client.InspectVolume(ctx, "split")
	if err != nil {
		t.Fatal(err)
	}
	if insync(*after) != insync(*before) || after.Attachment.Node != "b" {
		t.Fatalf("the old owner changed the volume: in sync %s -> %s, attached on %s", insync(*before), insync(*after), after.Attachment.Node)
	}
	// The fenced former owner cleans up on its own: its stale mount and
	// its loop device go, and a detach there says where the volume is.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		mounted, _ := hostfs.IsMounted(att.MountPath)
		_, bound := os.Stat("/sys/block/" + filepath.Base(att.Device) + "/loop/backing_file")
		if !mounted && bound != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("20 s after it resumed, the fenced owner still has its stale mount (%v) or loop device %s (%v)", mounted, att.Device, bound == nil)
		}
	}
	if err := a.client.DetachVolume(ctx, "split"); !errors.Is(err, api.ErrInUse) || !strings.Contains(err.Error(), "attached on node b") {
		t.Fatalf("detach on the fenced former owner: %v; want an in-use error naming b", err)
	}
	fioVerify(t, filepath.Join(batt.MountPath, "base"), "32M", 31)
	checkRecords(t, filepath.Join(batt.MountPath, "late"), min(stoppedAcks, w.acked))
	fsckFrozen(t, batt.MountPath)
}

// TestReplicaNodeDies kills a node that holds a replica but not the
// attachment while fio writes and verifies: I/O goes on without an error,
// and the dead node's replica leaves the in-sync set.
func TestReplicaNodeDies(t *testing.T) {
	nodes, _ := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	ctx := a.ctx()
	if _, err := a.client.CreateVolume(ctx, spec.Volume{Name: "r", Size: 512 << 20, Repl: 2}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	att, err := a.client.AttachVolume(ctx, "r", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(att.MountPath, "data")
	fio := exec.Command("fio", append(fioArgs(path, "256M", 41), "--fsync=8", "--rate=20m")...)
	out := &strings.Builder{}
	fio.Stdout, fio.Stderr = out, out
	if err := fio.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	b.kill9()
	if err := fio.Wait(); err != nil {
		t.Fatalf("fio failed when the replica node died: %v\n%s", err, out)
	}
	fioVerify(t, path, "256M", 41)
	v, err := a.client.InspectVolume(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range v.Replicas {
		if r.Node == "b" && r.InSync {
			t.Fatalf("b's replica still in sync after b died: %+v", v.Replicas)
		}
	}
	fsckFrozen(t, att.MountPath)
}

// TestEtcdLoss stops the metadata store (SIGSTOP: no answers, like a lost
// quorum): I/O on an attached volume goes on, no attach or takeover can
// happen, and service resumes when etcd answers again.
func TestEtcdLoss(t *testing.T) {
	nodes, etcd := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	ctx := a.ctx()
	if _, err := a.client.CreateVolume(ctx, spec.Volume{Name: "q", Size: 512 << 20, Repl: 2}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	att, err := a.client.AttachVolume(ctx, "q", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	etcd.cmd.Process.Signal(syscall.SIGSTOP)
	resumed := false
	defer func() {
		if !resumed {
			etcd.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	fioWrite(t, filepath.Join(att.MountPath, "during"), "64M", 51)
	short, cancel := context.WithTimeout(ctx, 8*time.Second)
	_, err = b.client.AttachVolume(short, "q", api.AttachOptions{Force: true})
	cancel()
	if err == nil {
		t.Fatal("a forced takeover succeeded without the metadata store")
	}
	etcd.cmd.Process.Signal(syscall.SIGCONT)
	resumed = true
	fioVerify(t, filepath.Join(att.MountPath, "during"), "64M", 51)
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		v, err := a.client.InspectVolume(ctx, "q")
		if err == nil {
			if v.Attachment == nil || v.Attachment.Node != "a" || insync(*v) != "2/2" {
				t.Fatalf("after etcd came back: attachment %+v, in sync %s", v.Attachment, insync(*v))
			}
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("service did not resume after etcd came back: %v", err)
		}
	}
	fsckFrozen(t, att.MountPath)
}

// spareNode returns the daemon of byID (node ID to daemon) that holds no
// replica of v, failing the test if every node holds one.
func spareNode(t *testing.T, byID map[string]*daemon, v *api.Volume) *daemon {
	t.Helper()
	for id, d := range byID {
		holds := false
		for _, r := range v.Replicas {
			holds = holds || r.Node == id
		}
		if !holds {
			return d
		}
	}
	t.Fatalf("volume %s has no spare node: %+v", v.Name, v.Replicas)
	return nil
}

// TestRebuildAfterNodeLoss: a repl 2 volume on a 3-node cluster loses the
// node holding its second replica while fio writes; after the rebuild
// delay a new replica is filled on the third node while writes go on; then
// the attach node dies too, and the volume, attached on the third node,
// where only the rebuilt replica survives, holds every byte fio wrote.
func TestRebuildAfterNodeLoss(t *testing.T) { rebuildAfterNodeLoss(t, false) }

// TestEncryptedRebuildAndFailover: the same with an encrypted volume; no
// node's files hold its data in clear, the nodes that only ever got it over
// the replica protocol included, so neither did the wire.
func TestEncryptedRebuildAndFailover(t *testing.T) { rebuildAfterNodeLoss(t, true) }

func rebuildAfterNodeLoss(t *testing.T, encrypted bool) {
	nodes, _ := startCluster(t, 3, "--rebuild-delay", "2s", "--rebuild-mbps", "100")
	byID := map[string]*daemon{"a": nodes[0], "b": nodes[1], "c": nodes[2]}
	ctx := nodes[0].ctx()
	vs := spec.Volume{Name: "heal", Size: 512 << 20, Repl: 2}
	if encrypted {
		if _, err := nodes[0].client.SetSecret(ctx, "healkey", []byte("the heal test's passphrase")); err != nil {
			t.Fatal(err)
		}
		vs.Encrypted, vs.SecretKey = true, "healkey"
	}
	v, err := nodes[0].client.CreateVolume(ctx, vs, api.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	owner, peer := byID[v.Replicas[0].Node], byID[v.Replicas[1].Node]
	spare := spareNode(t, byID, v)
	att, err := owner.client.AttachVolume(ctx, "heal", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	marker := bytes.Repeat([]byte("BALLAST-PLAINTEXT-MARKER-"), 40<<10)
	writeSynced(t, filepath.Join(att.MountPath, "marker"), marker)
	fioWrite(t, filepath.Join(att.MountPath, "before"), "64M", 61)
	during := exec.Command("fio", append(fioArgs(filepath.Join(att.MountPath, "during"), "64M", 62), "--rate=4m", "--fsync=16", "--end_fsync=1")...)
	out := &strings.Builder{}
	during.Stdout, during.Stderr = out, out
	if err := during.Start(); err != nil {
		t.Fatal(err)
	}
	peer.kill9()
	var rebuilt string
	for start := time.Now(); rebuilt == ""; time.Sleep(500 * time.Millisecond) {
		got, err := owner.client.InspectVolume(ctx, "heal")
		if err != nil {
			t.Fatal(err)
		}
		if got.Rebuild != nil {
			t.Logf("rebuild progress: %d of %d bytes", got.Rebuild.Done, got.Rebuild.Total)
		}
		for _, r := range got.Replicas {
			if r.Node == spare.node && r.InSync && insync(*got) == "2/2" {
				rebuilt = r.ID
			}
		}
		if time.Since(start) > 90*time.Second {
			t.Fatalf("no replica rebuilt on the spare node within 90s: %+v", got.Replicas)
		}
	}
	if err := during.Wait(); err != nil {
		t.Fatalf("writes during the rebuild failed: %v\n%s", err, out)
	}
	fioVerify(t, filepath.Join(att.MountPath, "during"), "64M", 62)

	owner.kill9()
	var satt *api.Attachment
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		satt, err = spare.client.AttachVolume(ctx, "heal", api.AttachOptions{})
		if err == nil {
			break
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("the spare node could not take the volume over: %v", err)
		}
	}
	fioVerify(t, filepath.Join(satt.MountPath, "before"), "64M", 61)
	fioVerify(t, filepath.Join(satt.MountPath, "during"), "64M", 62)
	if got, err := os.ReadFile(filepath.Join(satt.MountPath, "marker")); err != nil || !bytes.Equal(got, marker) {
		t.Fatalf("the marker file read back differs after the takeover (%v)", err)
	}
	fsckFrozen(t, satt.MountPath)
	for _, d := range nodes {
		files := filesHolding(t, d.dir, []byte("BALLAST-PLAINTEXT-MARKER"))
		switch {
		case encrypted && len(files) > 0:
			t.Errorf("node %s holds the encrypted volume's data in clear in %v", d.node, files)
		case !encrypted && d == spare && len(files) == 0:
			// The same scan must see a volume in clear, or it proves nothing.
			t.Errorf("no file of node %s holds the volume's data in clear, though it is not encrypted", d.node)
		}
	}
	got, _ := spare.client.InspectVolume(ctx, "heal")
	t.Logf("after the takeover: %s in sync, replicas %+v", insync(*got), got.Replicas)
	if local := localReplicas(t, spare, "heal"); !slices.Equal(local, []string{rebuilt}) {
		t.Errorf("after the takeover on the spare node: local replicas %v, want the one rebuilt there (%s)", local, rebuilt)
	}
}

// TestLocalReplica: `volume inspect --json` marks the replica on the attach
// node as local: one while the volume is attached on a node holding a
// replica, none after a takeover on a node that holds none.
func TestLocalReplica(t *testing.T) {
	nodes, _ := startCluster(t, 3)
	byID := map[string]*daemon{"a": nodes[0], "b": nodes[1], "c": nodes[2]}
	ctx := nodes[0].ctx()
	v, err := nodes[0].client.CreateVolume(ctx, spec.Volume{Name: "loc", Size: 256 << 20, Repl: 2}, api.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	owner := byID[v.Replicas[0].Node]
	spare := spareNode(t, byID, v)
	if local := localReplicas(t, spare, "loc"); len(local) != 0 {
		t.Errorf("detached: local replicas %v, want none", local)
	}
	if _, err := owner.client.AttachVolume(ctx, "loc", api.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	if local := localReplicas(t, spare, "loc"); !slices.Equal(local, []string{v.Replicas[0].ID}) {
		t.Errorf("attached on %s: local replicas %v, want its own (%s)", owner.node, local, v.Replicas[0].ID)
	}
	out, err := spare.cli("volume", "inspect", "loc")
	if err != nil || !strings.Contains(out, "LOCAL") {
		t.Fatalf("volume inspect: %v\n%s", err, out)
	}
	rows := 0
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 6 && (f[0] == v.Replicas[0].ID || f[0] == v.Replicas[1].ID) {
			rows++
			if want := fmt.Sprint(f[0] == v.Replicas[0].ID); f[4] != want {
				t.Errorf("volume inspect: replica %s shows LOCAL %s, want %s\n%s", f[0], f[4], want, out)
			}
		}
	}
	if rows != 2 {
		t.Errorf("volume inspect: %d replica rows, want 2\n%s", rows, out)
	}
	owner.kill9()
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		if _, err = spare.client.AttachVolume(ctx, "loc", api.AttachOptions{}); err == nil {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("the spare node could not take the volume over: %v", err)
		}
	}
	if local := localReplicas(t, spare, "loc"); len(local) != 0 {
		t.Errorf("taken over on %s, which holds no replica: local replicas %v, want none", spare.node, local)
	}
}

// localReplicas is the IDs of the replicas `volume inspect --json`, run on
// d, marks local.
func localReplicas(t *testing.T, d *daemon, vol string) []string {
	t.Helper()
	out, err := d.cli("volume", "inspect", "--json", vol)
	if err != nil {
		t.Fatalf("volume inspect --json %s: %v\n%s", vol, err, out)
	}
	var v api.Volume
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("volume inspect --json %s: %v\n%s", vol, err, out)
	}
	var ids []string
	for _, r := range v.Replicas {
		if r.Local {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

// TestIdleReplicaLoss: a replica node dies while its volume is idle; the
// attach node learns it from the lost lease, not from a failed write, and
// rebuilds the replica on the spare node.
func TestIdleReplicaLoss(t *testing.T) {
	nodes, _ := startCluster(t, 3, "--rebuild-delay", "1s")
	byID := map[string]*daemon{"a": nodes[0], "b": nodes[1], "c": nodes[2]}
	ctx := nodes[0].ctx()
	v, err := nodes[0].client.CreateVolume(ctx, spec.Volume{Name: "idle", Size: 256 << 20, Repl: 2}, api.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	owner, peer := byID[v.Replicas[0].Node], byID[v.Replicas[1].Node]
	if _, err := owner.client.AttachVolume(ctx, "idle", api.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	peer.kill9()
	for start := time.Now(); ; time.Sleep(500 * time.Millisecond) {
		got, err := owner.client.InspectVolume(ctx, "idle")
		if err != nil {
			t.Fatal(err)
		}
		onPeer := false
		for _, r := range got.Replicas {
			onPeer = onPeer || r.Node == peer.node
		}
		if insync(*got) == "2/2" && !onPeer {
			return
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("idle volume not healed 60s after its replica node died: %+v", got.Replicas)
		}
	}
}
