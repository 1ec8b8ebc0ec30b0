package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

// startCluster starts n daemons (a, b, ...) sharing an external etcd, each
// with one pool dir and a replica server on loopback, all with the same
// cluster secret.
func startCluster(t *testing.T, n int, extra ...string) []*daemon {
	t.Helper()
	endpoint := startEtcd(t)
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
	return nodes
}

// TestClusterFailover: a repl 2 volume spans two nodes; the node it is
// attached on is killed with SIGKILL after fio wrote and fsynced through
// it; the other node attaches it once the dead node's lease expires, and
// every byte fio wrote verifies, with a clean filesystem.
func TestClusterFailover(t *testing.T) {
	nodes := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	ctx := a.ctx()
	v, err := a.client.CreateVolume(ctx, spec.Volume{Name: "shared", Size: 512 << 20, Repl: 2})
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
	if _, err := a.client.CreateVolume(ctx, spec.Volume{Name: "three", Size: 512 << 20, Repl: 3}); !errors.Is(err, api.ErrInvalid) {
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
