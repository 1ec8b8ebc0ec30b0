package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ballast-io/ballast/pool/hostfs"
)

// csiNode is a daemon serving the CSI driver, with clients for its three
// services and a directory for staging and target paths.
type csiNode struct {
	*daemon
	ident   csipb.IdentityClient
	ctrl    csipb.ControllerClient
	nodeSvc csipb.NodeClient
	paths   string // staging and target paths go under it
}

// launchCSI starts daemon node with --csi-endpoint and waits until its
// driver answers Probe.
func launchCSI(t *testing.T, node string, disks []string, extra ...string) *csiNode {
	t.Helper()
	n := newCSI(t, node, disks, extra...)
	n.start()
	n.waitReady()
	return n
}

// newCSI prepares daemon node with --csi-endpoint and clients for its
// driver, without starting it. Whatever the test leaves mounted under the
// node's paths dir is unmounted before the daemon stops.
func newCSI(t *testing.T, node string, disks []string, extra ...string) *csiNode {
	t.Helper()
	base, err := os.MkdirTemp("/var/tmp", "ballast-csi-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(base, "csi.sock")
	d := newDaemon(t, node, disks, append([]string{"--csi-endpoint", "unix://" + sock}, extra...)...)
	t.Cleanup(func() { // runs before the daemon's cleanup stops it
		if _, err := hostfs.UnmountAllUnder(base); err != nil {
			t.Logf("unmount CSI paths: %v", err)
		}
		os.RemoveAll(base)
	})
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &csiNode{daemon: d, ident: csipb.NewIdentityClient(conn), ctrl: csipb.NewControllerClient(conn), nodeSvc: csipb.NewNodeClient(conn), paths: base}
}

// waitReady waits up to 30 s for the driver to answer Probe with ready.
func (n *csiNode) waitReady() {
	n.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		r, err := n.ident.Probe(ctx, &csipb.ProbeRequest{})
		cancel()
		if err == nil && r.GetReady().GetValue() {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("csi driver of node %s not ready after 30s: %v", n.node, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sanityAccessEnv selects the access type of a TestCSISanity run.
const sanityAccessEnv = "BALLAST_TEST_CSI_ACCESS"

// TestCSISanity runs the CSI sanity suite (kubernetes-csi/csi-test) against
// a real daemon: real volumes, attaches, filesystems and bind mounts; with
// filesystem (mount) volumes, then, in a child process (Ginkgo runs one
// suite per process), with raw block volumes.
func TestCSISanity(t *testing.T) {
	access := cmp.Or(os.Getenv(sanityAccessEnv), "mount")
	runSanity(t, access)
	if access != "mount" || t.Failed() {
		return
	}
	t.Run("block", func(t *testing.T) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCSISanity$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), sanityAccessEnv+"=block")
		out, err := cmd.CombinedOutput()
		plain := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(string(out), "")
		for _, line := range strings.Split(plain, "\n") {
			if strings.Contains(line, "Specs in") || strings.Contains(line, "Passed") || strings.Contains(line, "csi_test.go") {
				t.Log(strings.TrimSpace(line))
			}
		}
		if err != nil || !strings.Contains(plain, "0 Failed") {
			t.Fatalf("the block sanity run failed: %v\n%s", err, lastLines(plain, 100))
		}
	})
}

// runSanity runs the sanity suite once, with volumes of the access type
// "mount" or "block".
func runSanity(t *testing.T, access string) {
	n := launchCSI(t, "n1", []string{"disk1", "disk2"})
	cfg := sanity.NewTestConfig()
	cfg.Address = "unix://" + filepath.Join(n.paths, "csi.sock")
	cfg.TargetPath = filepath.Join(n.paths, "target")
	cfg.StagingPath = filepath.Join(n.paths, "staging")
	cfg.TestVolumeSize = 256 << 20
	cfg.TestVolumeExpandSize = 512 << 20
	cfg.TestVolumeAccessType = access
	cfg.IdempotentCount = 3
	sanity.Test(t, cfg)

	// The node specs went through real attaches and mounts.
	log, err := os.ReadFile(n.logPath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(log)
	staged, published := strings.Count(text, `msg="volume staged"`), strings.Count(text, `msg="volume published"`)
	grown := strings.Count(text, `msg="volume grown"`)
	t.Logf("%s volumes: the daemon staged %d, published %d and grew %d", access, staged, published, grown)
	if staged == 0 || published == 0 || grown == 0 {
		t.Errorf("the sanity run staged %d, published %d and grew %d volumes; the node specs did not reach the daemon", staged, published, grown)
	}
	if access == "block" && !strings.Contains(text, "block=true") {
		t.Errorf("the block run published no block volume")
	}
}

var mountCap = &csipb.VolumeCapability{
	AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}},
	AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}

// createCSI creates a volume through the controller.
func (n *csiNode) create(ctx context.Context, name string, size int64, params map[string]string, src *csipb.VolumeContentSource) *csipb.Volume {
	n.t.Helper()
	r, err := n.ctrl.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: name, CapacityRange: &csipb.CapacityRange{RequiredBytes: size},
		VolumeCapabilities: []*csipb.VolumeCapability{mountCap}, Parameters: params, VolumeContentSource: src})
	if err != nil {
		n.t.Fatalf("CreateVolume %s: %v", name, err)
	}
	return r.GetVolume()
}

// stage stages and publishes a volume on n as the CO would and returns
// its target path. It retries while the volume is held elsewhere (the
// driver's answer is FAILED_PRECONDITION until the old owner's lease
// expires), for up to wait.
func (n *csiNode) stage(ctx context.Context, id string, wait time.Duration) string {
	n.t.Helper()
	return n.stageWith(ctx, id, wait, nil)
}

// stageWith is stage with the node-stage secrets the CO passes.
func (n *csiNode) stageWith(ctx context.Context, id string, wait time.Duration, secrets map[string]string) string {
	n.t.Helper()
	staging := filepath.Join(n.paths, "staging-"+id)
	target := filepath.Join(n.paths, "target-"+id)
	if err := os.MkdirAll(staging, 0o750); err != nil {
		n.t.Fatal(err)
	}
	start := time.Now()
	for {
		_, err := n.nodeSvc.NodeStageVolume(ctx, &csipb.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging, VolumeCapability: mountCap, Secrets: secrets})
		if err == nil {
			break
		}
		if status.Code(err) != codes.FailedPrecondition || time.Since(start) > wait {
			n.t.Fatalf("NodeStageVolume %s on %s: %v", id, n.daemon.node, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := n.nodeSvc.NodePublishVolume(ctx, &csipb.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: staging, TargetPath: target, VolumeCapability: mountCap}); err != nil {
		n.t.Fatalf("NodePublishVolume %s: %v", id, err)
	}
	return target
}

// unstage unpublishes and unstages a volume staged by stage.
func (n *csiNode) unstage(ctx context.Context, id string) {
	n.t.Helper()
	if _, err := n.nodeSvc.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: filepath.Join(n.paths, "target-"+id)}); err != nil {
		n.t.Fatalf("NodeUnpublishVolume %s: %v", id, err)
	}
	if _, err := n.nodeSvc.NodeUnstageVolume(ctx, &csipb.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: filepath.Join(n.paths, "staging-"+id)}); err != nil {
		n.t.Fatalf("NodeUnstageVolume %s: %v", id, err)
	}
}

// writeRandom writes size random bytes to path, fsyncs them and returns
// their sha256.
func writeRandom(t *testing.T, path string, size int) string {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return sha(t, path)
}

// TestCSICloneAndRestore writes through a published volume, snapshots it,
// changes it, then restores the snapshot and clones the volume through
// CreateVolume: each new volume, staged and published, holds exactly the
// content of its source at that point. Deleting follows the dependencies.
func TestCSICloneAndRestore(t *testing.T) {
	n := launchCSI(t, "n1", []string{"disk1", "disk2"})
	ctx := n.ctx()
	src := n.create(ctx, "pvc-source", 256<<20, map[string]string{"repl": "2"}, nil)
	dir := n.stage(ctx, src.VolumeId, 0)
	before := writeRandom(t, filepath.Join(dir, "data"), 24<<20)

	snap, err := n.ctrl.CreateSnapshot(ctx, &csipb.CreateSnapshotRequest{Name: "snapshot-1", SourceVolumeId: src.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	if id := snap.GetSnapshot().GetSnapshotId(); id != "pvc-source@snapshot-1" || !snap.GetSnapshot().GetReadyToUse() || snap.GetSnapshot().GetSizeBytes() != 256<<20 {
		t.Fatalf("snapshot: %v", snap.GetSnapshot())
	}
	after := writeRandom(t, filepath.Join(dir, "data"), 24<<20)
	stats, err := n.nodeSvc.NodeGetVolumeStats(ctx, &csipb.NodeGetVolumeStatsRequest{VolumeId: src.VolumeId, VolumePath: dir})
	if err != nil || len(stats.GetUsage()) != 2 || stats.GetUsage()[0].GetTotal() < 200<<20 || stats.GetUsage()[0].GetUsed() < 24<<20 || stats.GetUsage()[1].GetTotal() == 0 {
		t.Fatalf("NodeGetVolumeStats: %v, %v", stats.GetUsage(), err)
	}
	// Node expansion with nothing to grow: the filesystem fills its device already.
	if r, err := n.nodeSvc.NodeExpandVolume(ctx, &csipb.NodeExpandVolumeRequest{VolumeId: src.VolumeId, VolumePath: dir}); err != nil || r.GetCapacityBytes() != 256<<20 {
		t.Fatalf("NodeExpandVolume to the same size: %v, %v", r, err)
	}

	restored := n.create(ctx, "pvc-restored", 256<<20, nil, &csipb.VolumeContentSource{Type: &csipb.VolumeContentSource_Snapshot{
		Snapshot: &csipb.VolumeContentSource_SnapshotSource{SnapshotId: snap.GetSnapshot().GetSnapshotId()}}})
	cloned := n.create(ctx, "pvc-cloned", 256<<20, nil, &csipb.VolumeContentSource{Type: &csipb.VolumeContentSource_Volume{
		Volume: &csipb.VolumeContentSource_VolumeSource{VolumeId: src.VolumeId}}})
	if restored.GetContentSource().GetSnapshot().GetSnapshotId() != "pvc-source@snapshot-1" || cloned.GetContentSource().GetVolume().GetVolumeId() != "pvc-source" {
		t.Fatalf("content sources: %v / %v", restored.GetContentSource(), cloned.GetContentSource())
	}
	if got := sha(t, filepath.Join(n.stage(ctx, restored.VolumeId, 0), "data")); got != before {
		t.Errorf("the volume restored from the snapshot holds %s, the source held %s when it was taken", got, before)
	}
	if got := sha(t, filepath.Join(n.stage(ctx, cloned.VolumeId, 0), "data")); got != after {
		t.Errorf("the clone of the volume holds %s, the source holds %s", got, after)
	}
	// The clone's own snapshot of the source is not a CSI snapshot.
	list, err := n.ctrl.ListSnapshots(ctx, &csipb.ListSnapshotsRequest{SourceVolumeId: src.VolumeId})
	if err != nil || len(list.GetEntries()) != 1 {
		t.Fatalf("ListSnapshots of the source: %v, %v; want snapshot-1 only", list.GetEntries(), err)
	}

	for _, id := range []string{src.VolumeId, restored.VolumeId, cloned.VolumeId} {
		n.unstage(ctx, id)
	}
	_, err = n.ctrl.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: src.VolumeId})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "snapshot") {
		t.Fatalf("delete the source while it has a snapshot and clones: %v; want FAILED_PRECONDITION", err)
	}
	for _, id := range []string{cloned.VolumeId, restored.VolumeId} {
		if _, err := n.ctrl.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: id}); err != nil {
			t.Fatalf("delete %s: %v", id, err)
		}
	}
	if _, err := n.ctrl.DeleteSnapshot(ctx, &csipb.DeleteSnapshotRequest{SnapshotId: snap.GetSnapshot().GetSnapshotId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ctrl.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: src.VolumeId}); err != nil {
		t.Fatalf("delete the source once its clones and snapshot are gone: %v", err)
	}
	if vols, _ := n.client.ListVolumes(ctx); len(vols) != 0 {
		t.Fatalf("volumes left: %v", vols)
	}
}

// TestCSIPassphrase: a StorageClass asking for encryption with no
// secret_key takes the passphrase from the CSI secrets: the provisioner
// secret at CreateVolume (refused without), the node-stage secret at every
// NodeStageVolume (refused without, or with a wrong one, with
// INVALID_ARGUMENT and nothing staged). The data written reads back after
// an unstage and a stage again, and a clone made through CreateVolume opens
// with the same passphrase.
func TestCSIPassphrase(t *testing.T) {
	n := launchCSI(t, "n1", []string{"disk1", "disk2"})
	ctx := n.ctx()
	params := map[string]string{"repl": "2", "encrypted": "true"}
	secrets := map[string]string{"passphrase": "csi passphrase 41c2"}
	create := func(name string, secrets map[string]string, src *csipb.VolumeContentSource) (*csipb.CreateVolumeResponse, error) {
		return n.ctrl.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: name, CapacityRange: &csipb.CapacityRange{RequiredBytes: 128 << 20},
			VolumeCapabilities: []*csipb.VolumeCapability{mountCap}, Parameters: params, Secrets: secrets, VolumeContentSource: src})
	}
	if _, err := create("pvc-enc", nil, nil); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "provisioner secret") {
		t.Fatalf("CreateVolume encrypted with no passphrase: %v; want INVALID_ARGUMENT naming the provisioner secret", err)
	}
	r, err := create("pvc-enc", secrets, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := r.GetVolume().GetVolumeId()
	if v, err := n.client.InspectVolume(ctx, id); err != nil || !v.Encrypted || v.SecretKey != "" {
		t.Fatalf("the volume is %+v (%v); want encrypted, with no secret key", v, err)
	}
	staging := filepath.Join(n.paths, "staging-"+id)
	if err := os.MkdirAll(staging, 0o750); err != nil {
		t.Fatal(err)
	}
	for _, s := range []map[string]string{nil, {"passphrase": "not it"}} {
		_, err := n.nodeSvc.NodeStageVolume(ctx, &csipb.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging, VolumeCapability: mountCap, Secrets: s})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("NodeStageVolume with secrets %v: %v; want INVALID_ARGUMENT", s, err)
		}
	}
	if v, err := n.client.InspectVolume(ctx, id); err != nil || v.Attachment != nil {
		t.Fatalf("refused stages attached it: %+v, %v", v, err)
	}
	dir := n.stageWith(ctx, id, 0, secrets)
	want := writeRandom(t, filepath.Join(dir, "data"), 8<<20)
	n.unstage(ctx, id)
	if got := sha(t, filepath.Join(n.stageWith(ctx, id, 0, secrets), "data")); got != want {
		t.Fatalf("staged again, the file holds %s, %s was written", got, want)
	}
	cr, err := create("pvc-enc-clone", secrets, &csipb.VolumeContentSource{Type: &csipb.VolumeContentSource_Volume{
		Volume: &csipb.VolumeContentSource_VolumeSource{VolumeId: id}}})
	if err != nil {
		t.Fatal(err)
	}
	clone := cr.GetVolume().GetVolumeId()
	if got := sha(t, filepath.Join(n.stageWith(ctx, clone, 0, secrets), "data")); got != want {
		t.Fatalf("the clone holds %s, its source %s", got, want)
	}
	for _, v := range []string{clone, id} {
		n.unstage(ctx, v)
		if _, err := n.ctrl.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: v}); err != nil {
			t.Fatalf("delete %s: %v", v, err)
		}
	}
}

// startCSICluster starts n daemons (a, b, ...) sharing an external etcd,
// as startCluster does, each serving the CSI driver.
func startCSICluster(t *testing.T, n int) []*csiNode {
	t.Helper()
	etcd := startEtcd(t)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("a cluster secret for the tests"), 0o600); err != nil {
		t.Fatal(err)
	}
	var nodes []*csiNode
	for i := range n {
		id := string(rune('a' + i))
		nodes = append(nodes, launchCSI(t, id, []string{"disk"}, "--etcd-endpoints", etcd.URL, "--cluster-secret-file", secret,
			"--lease-ttl", "2s", "--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--labels", "zone=z"+id))
	}
	return nodes
}

// TestCSIFailover stages a repl 2 volume on node a and writes to it, kills
// a with SIGKILL, and publishes and stages the volume on node b as
// Kubernetes would after rescheduling the pod: refused while a's lease
// lives, then b takes it over and the data is there.
func TestCSIFailover(t *testing.T) {
	nodes := startCSICluster(t, 2)
	a, b := nodes[0], nodes[1]
	ctx := a.ctx()

	info, err := b.nodeSvc.NodeGetInfo(ctx, &csipb.NodeGetInfoRequest{})
	if err != nil || info.GetNodeId() != "b" || info.GetAccessibleTopology().GetSegments()["topology.ballast.io/zone"] != "zb" ||
		info.GetAccessibleTopology().GetSegments()["topology.ballast.io/node"] != "b" {
		t.Fatalf("NodeGetInfo on b: %v, %v", info, err)
	}
	capa, err := a.ctrl.GetCapacity(ctx, &csipb.GetCapacityRequest{AccessibleTopology: &csipb.Topology{Segments: map[string]string{"topology.ballast.io/zone": "zb"}}})
	if err != nil || capa.GetAvailableCapacity() <= 0 {
		t.Fatalf("GetCapacity of zone zb: %v, %v", capa, err)
	}

	vol := a.create(ctx, "pvc-moving", 512<<20, map[string]string{"repl": "2", "fs": "xfs"}, nil)
	if _, err := a.ctrl.ControllerPublishVolume(ctx, &csipb.ControllerPublishVolumeRequest{VolumeId: vol.VolumeId, NodeId: "a", VolumeCapability: mountCap}); err != nil {
		t.Fatal(err)
	}
	dirA := a.stage(ctx, vol.VolumeId, 0)
	want := writeRandom(t, filepath.Join(dirA, "data"), 32<<20)

	// Expansion from b's controller of a volume attached on a: nothing
	// changes until node expansion on a, which grows it all.
	before := dfBytes(t, dirA)
	er, err := b.ctrl.ControllerExpandVolume(ctx, &csipb.ControllerExpandVolumeRequest{VolumeId: vol.VolumeId, CapacityRange: &csipb.CapacityRange{RequiredBytes: 1 << 30}})
	if err != nil || !er.GetNodeExpansionRequired() || er.GetCapacityBytes() != 1<<30 {
		t.Fatalf("expand from b a volume attached on a: %v, %v", er, err)
	}
	if v, _ := b.client.InspectVolume(ctx, vol.VolumeId); v.Size != 512<<20 {
		t.Fatalf("b's controller grew a volume attached on a to %d bytes itself", v.Size)
	}
	if _, err := a.nodeSvc.NodeExpandVolume(ctx, &csipb.NodeExpandVolumeRequest{VolumeId: vol.VolumeId, VolumePath: dirA, CapacityRange: &csipb.CapacityRange{RequiredBytes: 1 << 30}}); err != nil {
		t.Fatalf("node expansion on a: %v", err)
	}
	if after := dfBytes(t, dirA); after < before+400<<20 {
		t.Fatalf("df on a after node expansion: %d bytes, before %d", after, before)
	}
	_, err = b.ctrl.ControllerPublishVolume(ctx, &csipb.ControllerPublishVolumeRequest{VolumeId: vol.VolumeId, NodeId: "b", VolumeCapability: mountCap})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "node a") {
		t.Fatalf("publish on b while a is up and holds the volume: %v; want FAILED_PRECONDITION naming a", err)
	}

	a.kill9()
	killed := time.Now()
	for {
		_, err := b.ctrl.ControllerPublishVolume(ctx, &csipb.ControllerPublishVolumeRequest{VolumeId: vol.VolumeId, NodeId: "b", VolumeCapability: mountCap})
		if err == nil {
			break
		}
		if status.Code(err) != codes.FailedPrecondition || time.Since(killed) > 30*time.Second {
			t.Fatalf("publish on b after a died: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	dir := b.stage(ctx, vol.VolumeId, 30*time.Second)
	t.Logf("b staged the volume %s after a was killed", time.Since(killed).Round(time.Millisecond))
	if got := sha(t, filepath.Join(dir, "data")); got != want {
		t.Fatalf("after the takeover the data reads %s, a wrote %s", got, want)
	}
	if _, err := b.ctrl.ControllerUnpublishVolume(ctx, &csipb.ControllerUnpublishVolumeRequest{VolumeId: vol.VolumeId, NodeId: "a"}); err != nil {
		t.Fatalf("unpublish from the dead a: %v", err)
	}
	h, err := b.ctrl.ControllerGetVolumeHealth(ctx, &csipb.ControllerGetVolumeHealthRequest{VolumeId: vol.VolumeId})
	if err != nil || len(h.GetVolumeHealth().GetHealthStatuses()) == 0 || h.GetVolumeHealth().GetHealthStatuses()[0].GetStatus() != csipb.VolumeHealthErrorType_DEGRADED {
		t.Fatalf("health with a's replica lost: %v, %v; want DEGRADED", h, err)
	}
	t.Logf("health: %v", h.GetVolumeHealth().GetHealthStatuses())
	b.unstage(ctx, vol.VolumeId)
	if v, err := b.client.InspectVolume(ctx, vol.VolumeId); err != nil || v.Attachment != nil {
		t.Fatalf("after NodeUnstageVolume on b: %+v, %v; want it detached", v, err)
	}
}
