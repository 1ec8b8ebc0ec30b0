package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

// TestSchedulesSurviveLeaderDeath, on three nodes (external etcd), a
// volume with its replica on b, attached on c: a backup asked of c runs on
// b; a snapshot schedule and a backup schedule run on the node that leads
// the schedules, keep only their newest 2, and go on, run by another node,
// once that node is killed; every snapshot is taken on c, frozen; the
// last backup restores with the file written to the volume.
func TestSchedulesSurviveLeaderDeath(t *testing.T) {
	etcd := startEtcd(t)
	secret := filepath.Join(t.TempDir(), "secret")
	writeFile(t, secret, "a cluster secret for the tests")
	var nodes []*daemon
	for _, id := range []string{"a", "b", "c"} {
		nodes = append(nodes, launch(t, id, []string{"disk"}, "--etcd-endpoints", etcd.URL, "--cluster-secret-file", secret,
			"--lease-ttl", "2s", "--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--labels", "name="+id))
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := a.ctx()
	target := filepath.Join(t.TempDir(), "target")
	if _, err := a.client.AddBackupTarget(ctx, api.BackupTargetSpec{Name: "shared", URL: "file://" + target}); err != nil {
		t.Fatal(err)
	}
	// The volume lives on b alone.
	if _, err := a.client.CreateVolume(ctx, spec.Volume{Name: "v", Size: 64 << 20, Repl: 1, Pin: "name=b"}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The volume is attached on c: its snapshots, whoever asks, are taken
	// there, with the filesystem frozen.
	att, err := c.client.AttachVolume(ctx, "v", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeSynced(t, filepath.Join(att.MountPath, "hello"), []byte("hello from c"))

	// Asked of c, the backup runs on b.
	bk, err := c.client.CreateBackup(ctx, api.BackupSpec{Volume: "v", Target: "shared"})
	if err != nil {
		t.Fatal(err)
	}
	if bk.Node != "b" {
		t.Errorf("backup asked of c runs on %s, want b (which holds the replica)", bk.Node)
	}
	waitFor(t, 30*time.Second, "the forwarded backup to finish", func() (bool, string) {
		bs, err := a.client.ListBackups(ctx, "v")
		if err != nil || len(bs) != 1 {
			return false, fmt.Sprint(bs, err)
		}
		return bs[0].State == api.BackupDone, fmt.Sprintf("%+v", bs[0])
	})

	for _, s := range []api.ScheduleSpec{
		{Volume: "v", Kind: api.ScheduleSnapshot, Cron: "@every 2s", Retain: 2},
		{Volume: "v", Kind: api.ScheduleBackup, Cron: "@every 3s", Retain: 2, Target: "shared"},
	} {
		if _, err := a.client.SetSchedule(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.client.SetSchedule(ctx, api.ScheduleSpec{Volume: "v", Kind: api.ScheduleSnapshot, Cron: "every day", Retain: 2}); err == nil || !strings.Contains(err.Error(), "five cron fields") {
		t.Errorf("a bad cron: %v", err)
	}
	leader := ""
	waitFor(t, 60*time.Second, "both schedules to run twice beyond their retention", func() (bool, string) {
		ss, err := a.client.ListSchedules(ctx, "v")
		if err != nil || len(ss) != 2 {
			return false, fmt.Sprint(ss, err)
		}
		leader = ss[0].LastNode
		snaps, bs := scheduled(t, a)
		pruned := logCount(t, nodes, `msg="schedule retention: deleted"`)
		return leader != "" && len(snaps) == 2 && len(bs) == 2 && pruned >= 2, fmt.Sprintf("leader %s, snapshots %v, backups %v, %d pruned", leader, snaps, bs, pruned)
	})
	var dead *daemon
	for _, d := range nodes {
		if d.node == leader {
			dead = d
		}
	}
	if dead == nil || dead == b {
		t.Fatalf("the schedules ran on %q; the test kills the leader, which must not hold the volume's replica (b)", leader)
	}
	live := a
	if dead == a {
		live = c
	}
	snapsBefore, _ := scheduled(t, live)
	dead.kill9()
	t.Logf("killed %s, which led the schedules", leader)
	waitFor(t, 60*time.Second, "another node to run the schedules, with new snapshots and backups", func() (bool, string) {
		ss, err := live.client.ListSchedules(ctx, "v")
		if err != nil || len(ss) != 2 {
			return false, fmt.Sprint(ss, err)
		}
		snaps, bs := scheduled(t, live)
		newer := len(snaps) == 2 && len(snapsBefore) > 0 && snaps[0] > snapsBefore[len(snapsBefore)-1]
		return ss[0].LastNode != leader && ss[1].LastNode != leader && newer && len(bs) == 2,
			fmt.Sprintf("last nodes %s %s, snapshots %v (before %v), backups %v", ss[0].LastNode, ss[1].LastNode, snaps, snapsBefore, bs)
	})
	if n := logCount(t, []*daemon{c}, `msg="snapshot created" volume=v`); n < 4 {
		t.Errorf("c, where the volume is attached, took %d of its snapshots; want them all there", n)
	}
	if n := logCount(t, []*daemon{a, b}, `msg="snapshot created" volume=v`); n > 0 {
		t.Errorf("%d snapshots of the volume were taken on nodes it is not attached on", n)
	}
	// What the backups kept restores.
	_, bs := scheduled(t, live)
	if _, err := live.client.RestoreBackup(ctx, bs[len(bs)-1], "restored", api.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	ra, err := c.client.AttachVolume(ctx, "restored", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(ra.MountPath, "hello")); err != nil || string(got) != "hello from c" {
		t.Errorf("the restored volume's file: %q, %v", got, err)
	}
	for _, vol := range []string{"restored", "v"} {
		if err := c.client.DetachVolume(ctx, vol); err != nil {
			t.Error(err)
		}
	}
}

// scheduled lists the scheduled snapshots of v, by name (their times
// order them), and its finished scheduled backups.
func scheduled(t *testing.T, d *daemon) (snaps, backups []string) {
	t.Helper()
	ss, err := d.client.ListSnapshots(d.ctx(), "v")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if strings.HasPrefix(s.Name, "sched-") {
			snaps = append(snaps, s.Name)
		}
	}
	slices.Sort(snaps)
	bs, err := d.client.ListBackups(d.ctx(), "v")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.Scheduled && b.State == api.BackupDone {
			backups = append(backups, b.ID)
		}
	}
	return snaps, backups
}

// logCount counts the lines of the daemons' logs that hold msg.
func logCount(t *testing.T, nodes []*daemon, msg string) int {
	t.Helper()
	n := 0
	for _, d := range nodes {
		b, err := os.ReadFile(d.logPath)
		if err != nil {
			t.Fatal(err)
		}
		n += strings.Count(string(b), msg)
	}
	return n
}

// waitFor polls cond every 200 ms until it holds, or fails the test after
// timeout with what cond last said.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s: %s", timeout, what, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
