package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

// clusterArgs are the flags of a node of an embedded-etcd cluster on
// loopback, with ports of its own.
func clusterArgs(t *testing.T, secret string) (listen string, args []string) {
	listen = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	return listen, []string{"--cluster-secret-file", secret, "--lease-ttl", "2s", "--listen", listen,
		"--etcd-client-addr", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--etcd-peer-addr", fmt.Sprintf("127.0.0.1:%d", freePort(t))}
}

func writeSecret(t *testing.T, secret string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func etcdRoles(t *testing.T, d *daemon) map[string]string {
	t.Helper()
	nodes, err := d.client.ClusterStatus(d.ctx())
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for _, n := range nodes {
		roles[n.ID] = string(n.State) + "/" + n.Etcd
	}
	return roles
}

// TestJoinEmbeddedEtcd builds a cluster with no external etcd: a starts
// it, b and c join as etcd members, d as a client (through b, not the
// first node). A node with the wrong secret is refused. Then the etcd
// member a is killed with a volume attached on it: b takes the volume
// over (the two remaining members keep quorum), fio verifies every byte,
// and a restarts as a member from its data.
func TestJoinEmbeddedEtcd(t *testing.T) {
	secret := writeSecret(t, "the secret of the embedded cluster")
	listenA, argsA := clusterArgs(t, secret)
	a := launch(t, "a", []string{"disk"}, argsA...)
	_, argsB := clusterArgs(t, secret)
	b := launch(t, "b", []string{"disk"}, append(argsB, "--join", listenA)...)
	_, argsC := clusterArgs(t, secret)
	c := launch(t, "c", []string{"disk"}, append(argsC, "--join", listenA)...)
	_, argsD := clusterArgs(t, secret)
	listenB := argsB[5]
	d := launch(t, "d", []string{"disk"}, append(argsD, "--join", listenB)...)

	roles := etcdRoles(t, d)
	members := 0
	for _, id := range []string{"a", "b", "c"} {
		if r := roles[id]; r == "up/leader" || r == "up/member" {
			members++
		}
	}
	if members != 3 || roles["d"] != "up/" {
		t.Fatalf("etcd roles %v: want a, b and c voting members, d a client", roles)
	}
	out, err := d.cli("cluster", "status")
	if err != nil || !strings.Contains(out, "ETCD") {
		t.Fatalf("cluster status: %v\n%s", err, out)
	}

	// A node with another secret is refused and leaves no trace.
	_, argsE := clusterArgs(t, writeSecret(t, "not the secret of this cluster"))
	dirE := t.TempDir()
	ectx, ecancel := context.WithTimeout(context.Background(), time.Minute)
	defer ecancel()
	outE, err := exec.CommandContext(ectx, ballastBin, append([]string{"daemon", "--node-id", "e", "--data-dir", filepath.Join(dirE, "data"),
		"--socket", filepath.Join(dirE, "sock"), "--docker-socket=", "--join", listenA}, argsE...)...).CombinedOutput()
	if err == nil || !strings.Contains(string(outE), "refused this node's cluster secret") {
		t.Fatalf("join with a wrong secret: %v\n%s", err, outE)
	}
	if _, ok := etcdRoles(t, a)["e"]; ok {
		t.Fatal("the refused node is listed in the cluster")
	}

	// Volumes work across the cluster; losing an etcd member loses nothing.
	ctx := d.ctx()
	if _, err := d.client.CreateVolume(ctx, spec.Volume{Name: "v", Size: 256 << 20, Repl: 2}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	att, err := a.client.AttachVolume(ctx, "v", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fioWrite(t, filepath.Join(att.MountPath, "data"), "64M", 41)
	a.kill9()
	killed := time.Now()
	var batt *api.Attachment
	for {
		batt, err = b.client.AttachVolume(ctx, "v", api.AttachOptions{})
		if err == nil {
			break
		}
		// In use until a's lease expires; etcd may also time out while
		// it elects a new leader.
		if time.Since(killed) > time.Minute {
			t.Fatalf("attach on b after a died: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("b attached the volume %s after the etcd member a was killed", time.Since(killed).Round(time.Millisecond))
	fioVerify(t, filepath.Join(batt.MountPath, "data"), "64M", 41)
	fsckFrozen(t, batt.MountPath)

	a.start() // from its data dir, as an etcd member again
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		r := etcdRoles(t, c)["a"]
		if r == "up/member" || r == "up/leader" {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatalf("a restarted but shows as %q", r)
		}
	}
}

// TestEtcdLeaderDies kills the node that is both the leader of the
// cluster's embedded etcd and the owner of a volume a writer fsyncs on.
// The two other members elect a leader, which renews every lease in full,
// so the dead node's liveness mark outlives it by the election and a whole
// TTL; its heartbeats stopped at its death, and the node taking over goes
// by them (its log says so) instead of waiting for the lease. Every
// acknowledged record is there afterwards and the filesystem is clean.
func TestEtcdLeaderDies(t *testing.T) {
	secret := writeSecret(t, "the secret of the embedded cluster")
	const ttl = "4s" // wide enough that the heartbeats decide before the renewed lease lapses
	listenA, argsA := clusterArgs(t, secret)
	nodes := map[string]*daemon{"a": launch(t, "a", []string{"disk"}, append(argsA, "--lease-ttl", ttl)...)}
	for _, id := range []string{"b", "c"} {
		_, args := clusterArgs(t, secret)
		nodes[id] = launch(t, id, []string{"disk"}, append(args, "--lease-ttl", ttl, "--join", listenA)...)
	}
	leader := ""
	for id, r := range etcdRoles(t, nodes["a"]) {
		if r == "up/leader" {
			leader = id
		}
	}
	if leader == "" {
		t.Fatalf("no etcd leader among %v", etcdRoles(t, nodes["a"]))
	}
	l := nodes[leader]
	ctx := l.ctx()
	if _, err := l.client.CreateVolume(ctx, spec.Volume{Name: "v", Size: 256 << 20, Repl: 3}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	att, err := l.client.AttachVolume(ctx, "v", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := startAckWriter(filepath.Join(att.MountPath, "log"))
	time.Sleep(time.Second)
	l.kill9()
	killed := time.Now()
	<-w.done
	var taker *daemon
	var batt *api.Attachment
	for taker == nil {
		for id, d := range nodes {
			if id == leader {
				continue
			}
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			batt, err = d.client.AttachVolume(actx, "v", api.AttachOptions{})
			cancel()
			if err == nil {
				taker = d
				break
			}
		}
		if time.Since(killed) > time.Minute {
			t.Fatalf("the volume was not taken over within a minute of the etcd leader %s's death: %v", leader, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%s took the volume over %s after the etcd leader %s (its owner) was killed (lease TTL %s)", taker.node, time.Since(killed).Round(time.Millisecond), leader, ttl)
	logText, _ := os.ReadFile(taker.logPath)
	if !strings.Contains(string(logText), "nodes silent for their lease TTL") {
		t.Errorf("%s took the volume over without going by the dead node's heartbeats: it waited for the renewed lease", taker.node)
	}
	checkRecords(t, filepath.Join(batt.MountPath, "log"), w.acked)
	fsckFrozen(t, batt.MountPath)
}
