package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/hostfs"
	"github.com/ballast-io/ballast/pool/spec"
)

// devHash hashes a block device as it is on the replicas (O_DIRECT: no
// cache of this node in the way).
func devHash(t *testing.T, dev string) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", "dd if="+dev+" iflag=direct bs=1M status=none | sha256sum").CombinedOutput()
	if err != nil {
		t.Fatalf("hash %s: %v\n%s", dev, err, out)
	}
	return strings.Fields(string(out))[0]
}

// TestNetworkPartition: three nodes, each in its own network namespace,
// running the cluster's embedded etcd. The volume's replicas are on b and
// c; it is attached on a, where a writer fsyncs records. a's network is
// cut: b takes the volume over once a's lease expires (b and c keep the
// etcd quorum). The new owner's device is hashed with its filesystem
// frozen; the partition heals and a's writer, still running, must fail
// without a single block of it reaching a replica: the hash is unchanged.
// Every record a acknowledged before the cut is there, and e2fsck is clean.
func TestNetworkPartition(t *testing.T) {
	lab := newNetLab(t)
	secret := writeSecret(t, "the secret of the partitioned cluster")
	start := func(node, labels string, join string) (*daemon, string) {
		addr, wrap := lab.add(node)
		listen := addr + ":7400"
		args := []string{"--cluster-secret-file", secret, "--lease-ttl", "2s", "--listen", listen, "--labels", labels}
		if join != "" {
			args = append(args, "--join", join)
		}
		d := newDaemon(t, node, []string{"disk"}, args...)
		d.wrap = wrap
		d.start()
		return d, listen
	}
	a, joinA := start("a", "role=head", "")
	b, _ := start("b", "role=store", joinA)
	c, _ := start("c", "role=store", joinA)
	ctx := a.ctx()
	if _, err := a.client.CreateVolume(ctx, spec.Volume{Name: "split", Size: 512 << 20, Repl: 2, Avoid: "role=head"}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	att, err := a.client.AttachVolume(ctx, "split", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fioWrite(t, filepath.Join(att.MountPath, "base"), "32M", 81)
	w := startAckWriter(filepath.Join(att.MountPath, "late"))
	time.Sleep(time.Second)

	lab.cut("a")
	cutAcks := w.acked
	cut := time.Now()
	defer lab.mend("a")
	var batt *api.Attachment
	for ; ; time.Sleep(200 * time.Millisecond) {
		batt, err = b.client.AttachVolume(ctx, "split", api.AttachOptions{})
		if err == nil {
			break
		}
		if time.Since(cut) > 90*time.Second {
			t.Fatalf("b could not take over from the partitioned a: %v", err)
		}
	}
	t.Logf("b took the volume over %s after a was cut off", time.Since(cut).Round(time.Millisecond))
	dev, err := hostfs.MountSource(batt.MountPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := hostfs.Freeze(batt.MountPath); err != nil {
		t.Fatal(err)
	}
	frozen := true
	defer func() {
		if frozen {
			hostfs.Thaw(batt.MountPath)
		}
	}()
	before := devHash(t, dev)

	lab.mend("a") // a's writer and engine can reach the replicas again
	select {
	case <-w.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the old owner's writer still runs 60s after the partition healed: its writes must fail")
	}
	t.Logf("old owner's writer stopped with: %v (acked %d records before the cut, %d in all)", w.err, cutAcks, w.acked)
	time.Sleep(2 * time.Second) // anything still in flight from a lands now, or never
	if after := devHash(t, dev); after != before {
		t.Fatal("a block changed on the new owner's replicas after the takeover: the old owner wrote through the fence")
	}
	hostfs.Thaw(batt.MountPath)
	frozen = false

	v, err := c.client.InspectVolume(ctx, "split")
	if err != nil {
		t.Fatal(err)
	}
	if v.Attachment == nil || v.Attachment.Node != "b" || insync(*v) != "2/2" {
		t.Fatalf("after the partition healed: attached %+v, %s in sync; want b, 2/2", v.Attachment, insync(*v))
	}
	fioVerify(t, filepath.Join(batt.MountPath, "base"), "32M", 81)
	checkRecords(t, filepath.Join(batt.MountPath, "late"), cutAcks)
	fsckFrozen(t, batt.MountPath)
}
