package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/hostfs"
	"github.com/ballast-io/ballast/pool/spec"
)

// TestLifecycle walks a volume through its life on a real daemon with real
// FUSE, loop devices and filesystems: create, attach, write and verify with
// fio, snapshot while writes continue, clone the snapshot and find the
// snapshot's content in it, detach and delete.
func TestLifecycle(t *testing.T) {
	for _, fs := range []string{"ext4", "xfs"} {
		t.Run(fs, func(t *testing.T) { testLifecycle(t, fs) })
	}
}

func testLifecycle(t *testing.T, fs string) {
	d := startDaemon(t)
	ctx := d.ctx()
	c := d.client
	v, err := c.CreateVolume(ctx, spec.Volume{Name: "v1", Size: 1 << 30, Repl: 2, FS: fs}, api.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Replicas) != 2 || v.Replicas[0].Pool == v.Replicas[1].Pool {
		t.Fatalf("repl 2 must mirror two pool dirs: %+v", v.Replicas)
	}
	att, err := c.AttachVolume(ctx, "v1", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mnt := att.MountPath
	if again, err := c.AttachVolume(ctx, "v1", api.AttachOptions{}); err != nil || again.MountPath != mnt {
		t.Fatalf("second attach must be idempotent: %+v %v", again, err)
	}
	if got, _ := hostfs.MountSource(mnt); !strings.HasPrefix(got, "/dev/loop") {
		t.Fatalf("%s is mounted from %q, want a loop device", mnt, got)
	}
	a := filepath.Join(mnt, "a")
	fioWrite(t, a, "64M", 1)
	before := sha(t, a)

	// Snapshot while another file is being written with fsyncs.
	bg := exec.Command("fio", append(fioArgs(filepath.Join(mnt, "b"), "128M", 2), "--fsync=16")...)
	if err := bg.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSnapshot(ctx, "v1", "s1"); err != nil {
		bg.Process.Kill()
		bg.Wait()
		t.Fatal(err)
	}
	if err := bg.Wait(); err != nil {
		t.Fatalf("writes during the snapshot failed: %v", err)
	}
	fioVerify(t, filepath.Join(mnt, "b"), "128M", 2)

	// Change a after the snapshot: the original moves on, the snapshot not.
	fioWrite(t, a, "64M", 3)
	if sha(t, a) == before {
		t.Fatal("rewrite with another seed left the file unchanged; the test cannot tell snapshot from volume")
	}
	if _, err := c.CreateVolume(ctx, spec.Volume{Name: "c1", FromSnapshot: "v1@s1", Repl: 1}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	catt, err := c.AttachVolume(ctx, "c1", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := sha(t, filepath.Join(catt.MountPath, "a")); got != before {
		t.Fatalf("clone's a has sha %s, the snapshot's was %s", got, before)
	}
	fioVerify(t, filepath.Join(catt.MountPath, "a"), "64M", 1)
	fioVerify(t, a, "64M", 3)
	if fs == "ext4" {
		fsckFrozen(t, catt.MountPath) // taken mid-write, still consistent
		fsckFrozen(t, mnt)
	}
	// Writes to the clone do not reach the source.
	if err := os.WriteFile(filepath.Join(catt.MountPath, "only-in-clone"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "only-in-clone")); !os.IsNotExist(err) {
		t.Fatalf("a file written to the clone shows in the source: %v", err)
	}

	// What must be refused while things depend on each other.
	if err := c.DeleteVolume(ctx, "v1"); !errors.Is(err, api.ErrInUse) {
		t.Fatalf("delete of an attached volume: %v", err)
	}
	if err := c.DetachVolume(ctx, "v1"); err != nil {
		t.Fatal(err)
	}
	if mounted, _ := hostfs.IsMounted(mnt); mounted {
		t.Fatal("detach left the filesystem mounted")
	}
	if err := c.DeleteVolume(ctx, "v1"); !errors.Is(err, api.ErrInUse) || !strings.Contains(err.Error(), "c1") {
		t.Fatalf("delete of a volume with a clone: %v", err)
	}
	if err := c.DeleteSnapshot(ctx, "v1", "s1"); !errors.Is(err, api.ErrInUse) {
		t.Fatalf("delete of a snapshot with a clone: %v", err)
	}
	// Re-attach: the data is still there after a detach.
	att, err = c.AttachVolume(ctx, "v1", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fioVerify(t, filepath.Join(att.MountPath, "a"), "64M", 3)
	for _, name := range []string{"c1", "v1"} {
		if err := c.DetachVolume(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.DeleteVolume(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSnapshot(ctx, "v1", "s1"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteVolume(ctx, "v1"); err != nil {
		t.Fatal(err)
	}
	vols, err := c.ListVolumes(ctx)
	if err != nil || len(vols) != 0 {
		t.Fatalf("after deleting everything: %+v %v", vols, err)
	}
	pools, err := c.ListPools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pools {
		if p.Replicas != 0 {
			t.Errorf("pool %s still counts %d replicas", p.ID, p.Replicas)
		}
		layers, _ := filepath.Glob(filepath.Join(p.Dir, "layers", "*"))
		if len(layers) != 0 {
			t.Errorf("pool %s keeps layer files after every volume was deleted: %v", p.Dir, layers)
		}
	}
	if out, err := exec.Command("losetup", "-a").Output(); err == nil && strings.Contains(string(out), d.dir) {
		t.Errorf("loop devices left behind:\n%s", out)
	}
}

// TestBadInput checks that every kind of bad request gets a clear error
// naming the problem and leaves nothing half-created.
func TestBadInput(t *testing.T) {
	d := startDaemon(t)
	ctx := d.ctx()
	c := d.client
	if _, err := c.CreateVolume(ctx, spec.Volume{Name: "v1", Size: 1 << 30, Repl: 2}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"volume", "create", "x", "--size", "0"}, "zero"},
		{[]string{"volume", "create", "x", "--size", "-1G"}, "negative"},
		{[]string{"volume", "create", "x", "--size", "lots"}, "unknown unit"},
		{[]string{"volume", "create", "x", "--size", "900T"}, "can ever hold"},
		{[]string{"volume", "create", "x"}, "--size is required"},
		{[]string{"volume", "create", "", "--size", "1G"}, "empty"},
		{[]string{"volume", "create", strings.Repeat("n", 65), "--size", "1G"}, "limit is 64"},
		{[]string{"volume", "create", "a/b", "--size", "1G"}, "'/'"},
		{[]string{"volume", "create", "..", "--size", "1G"}, `".."`},
		{[]string{"volume", "create", "a b", "--size", "1G"}, "' '"},
		{[]string{"volume", "create", "x", "--size", "1G", "--repl", "3"}, "--repl 3 needs 3 pool dirs"},
		{[]string{"volume", "create", "x", "--size", "1G", "--fs", "btrfs"}, "not supported"},
		{[]string{"volume", "create", "x", "--size", "1G", "--repl", "2", "--min-in-sync", "3"}, "from 1 to its replication factor 2"},
		{[]string{"volume", "create", "x", "--size", "1G", "--pin", "zone"}, "key=value"},
		{[]string{"volume", "create", "v1", "--size", "2G", "--repl", "2"}, "different spec"},
		{[]string{"volume", "create", "x", "--from-snapshot", "v1@nope"}, "does not exist"},
		{[]string{"volume", "create", "x", "--from-snapshot", "v1"}, "VOLUME@SNAPSHOT"},
		{[]string{"volume", "inspect", "nope"}, "does not exist"},
		{[]string{"volume", "attach", "nope"}, "does not exist"},
		{[]string{"volume", "delete", "nope"}, "does not exist"},
		{[]string{"snapshot", "create", "v1", "bad/name"}, "'/'"},
		{[]string{"snapshot", "delete", "v1", "nope"}, "does not exist"},
		{[]string{"snapshot", "list", "nope"}, "does not exist"},
	}
	for _, tc := range cases {
		out, err := d.cli(tc.args...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("ballast %q: err %v, output %q; want an error saying %q", tc.args, err, out, tc.want)
		}
	}
	// Same spec again: idempotent.
	if out, err := d.cli("volume", "create", "v1", "--size", "1G", "--repl", "2"); err != nil {
		t.Errorf("create with the same spec must succeed: %v %s", err, out)
	}
	if _, err := c.CreateSnapshot(ctx, "v1", "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSnapshot(ctx, "v1", "s1"); !errors.Is(err, api.ErrExists) {
		t.Errorf("duplicate snapshot: %v", err)
	}
	vols, err := c.ListVolumes(ctx)
	if err != nil || len(vols) != 1 {
		t.Fatalf("bad requests left volumes behind: %+v %v", vols, err)
	}
	pools, _ := c.ListPools(ctx)
	for _, p := range pools {
		reps, _ := filepath.Glob(filepath.Join(p.Dir, "replicas", "*.json"))
		if len(reps) != 1 {
			t.Errorf("pool %s holds %d replicas, want only v1's: %v", p.Dir, len(reps), reps)
		}
	}
	// --json on every listing gives JSON.
	for _, args := range [][]string{{"volume", "list", "--json"}, {"volume", "inspect", "v1", "--json"}, {"snapshot", "list", "--json"}, {"pool", "list", "--json"}} {
		out, err := d.cli(args...)
		if err != nil || !(strings.HasPrefix(out, "[") || strings.HasPrefix(out, "{")) {
			t.Errorf("ballast %q: %v %q", args, err, out)
		}
	}
}

// TestClusterStatus checks the node's labels and state as the CLI shows
// them, and that bad labels stop the daemon with a clear error.
func TestClusterStatus(t *testing.T) {
	d := startDaemon(t, "--labels", "zone=a,rack=r1")
	nodes, err := d.client.ClusterStatus(d.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || nodes[0].ID != "n1" || nodes[0].State != "up" || nodes[0].Labels["zone"] != "a" || nodes[0].Pools != 2 || nodes[0].Capacity <= 0 {
		t.Fatalf("cluster status: %+v", nodes)
	}
	out, err := d.cli("cluster", "status")
	if err != nil || !strings.Contains(out, "rack=r1,zone=a") || !strings.Contains(out, "up since") {
		t.Fatalf("ballast cluster status: %v\n%s", err, out)
	}
	bad, err := exec.Command(ballastBin, "daemon", "--data-dir", t.TempDir(), "--docker-socket=", "--labels", "zone").CombinedOutput()
	if err == nil || !strings.Contains(string(bad), "--labels") || !strings.Contains(string(bad), "key=value") {
		t.Fatalf("daemon with bad labels: %v\n%s", err, bad)
	}
}

// TestMetrics scrapes the daemon's Prometheus endpoint after writing to a
// volume: its I/O, in-sync count and the pools are there.
func TestMetrics(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d := startDaemon(t, "--metrics-addr", addr)
	ctx := d.ctx()
	if _, err := d.client.CreateVolume(ctx, spec.Volume{Name: "m1", Size: 256 << 20, Repl: 2}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	att, err := d.client.AttachVolume(ctx, "m1", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	run(t, "dd", "if=/dev/zero", "of="+filepath.Join(att.MountPath, "f"), "bs=1M", "count=4", "oflag=direct")
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	text := string(body)
	for _, want := range []string{
		`ballast_volume_in_sync_replicas{volume="m1"} 2`,
		`ballast_volume_ops_total{op="flush",volume="m1"}`,
		`ballast_pool_capacity_bytes{dir=`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	var written float64
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, `ballast_volume_bytes_total{op="write",volume="m1"} `) {
			fmt.Sscan(strings.Fields(line)[1], &written)
		}
	}
	if written < 4<<20 {
		t.Errorf("write bytes for m1 = %v, want at least 4 MiB", written)
	}
}
