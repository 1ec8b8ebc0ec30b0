package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/replica"
	"github.com/ballast-io/ballast/pool/spec"
)

// TestRecoverHalfDoneOps leaves a create, a delete and a snapshot half done
// (as a crash in the middle of each would), plus a snapshot the replicas
// took but etcd never recorded, kills the daemon, and checks
// that the restarted daemon brings each to a consistent end: the create and
// the snapshot rolled back, the delete finished, nothing left on disk.
func TestRecoverHalfDoneOps(t *testing.T) {
	d := startDaemon(t)
	ctx := d.ctx()
	c := d.client
	for _, name := range []string{"gone", "keep"} {
		if _, err := c.CreateVolume(ctx, spec.Volume{Name: name, Size: 1 << 30, Repl: 2}, api.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pools, err := c.ListPools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gone, err := c.InspectVolume(ctx, "gone")
	if err != nil {
		t.Fatal(err)
	}

	cli, err := meta.Connect([]string{"unix://" + filepath.Join(d.dir, "data", "etcd", "client.sock")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	store := meta.NewStore(cli)
	// A create that died after its record and one replica were written.
	half := &meta.Volume{Volume: spec.Volume{Name: "half", Size: 1 << 30, Repl: 1, FS: "ext4"}, ID: "deadbeef",
		State: meta.StateCreating, Replicas: []meta.Replica{{ID: "deadbeef-r0", Node: "n1", Pool: pools[0].ID}}, InSync: []string{"deadbeef-r0"}}
	if err := store.Commit(ctx, meta.PutVolume(half, 0)); err != nil {
		t.Fatal(err)
	}
	rs, err := replica.OpenStore(pools[0].Dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := rs.Create("deadbeef-r0", 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	// A delete that died after marking the volume.
	gv, rev, err := store.Volume(ctx, "gone")
	if err != nil {
		t.Fatal(err)
	}
	gv.State = meta.StateDeleting
	if err := store.Commit(ctx, meta.PutVolume(gv, rev)); err != nil {
		t.Fatal(err)
	}
	// A snapshot delete that died after marking the record.
	if err := store.Commit(ctx, meta.PutSnapshot(&meta.Snapshot{Volume: "keep", Name: "s-half", State: meta.StateDeleting, Created: time.Now()}, 0)); err != nil {
		t.Fatal(err)
	}
	// A snapshot that died after the replicas took it, before its record.
	keep, err := c.InspectVolume(ctx, "keep")
	if err != nil {
		t.Fatal(err)
	}
	for _, kr := range keep.Replicas {
		for _, p := range pools {
			if p.ID != kr.Pool {
				continue
			}
			ps, err := replica.OpenStore(p.Dir)
			if err != nil {
				t.Fatal(err)
			}
			r, err := ps.Open(kr.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Snapshot("s-orphan"); err != nil {
				t.Fatal(err)
			}
			r.Close()
		}
	}
	cli.Close()

	d.kill9()
	d.start()

	if _, err := c.InspectVolume(ctx, "half"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("interrupted create not rolled back: %v", err)
	}
	if _, err := c.InspectVolume(ctx, "gone"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("interrupted delete not finished: %v", err)
	}
	snaps, err := c.ListSnapshots(ctx, "keep")
	if err != nil || len(snaps) != 0 {
		t.Errorf("interrupted snapshot not rolled back: %+v %v", snaps, err)
	}
	replicaFiles := func() []string {
		var ids []string
		for _, p := range pools {
			m, _ := filepath.Glob(filepath.Join(p.Dir, "replicas", "*.json"))
			ids = append(ids, m...)
		}
		return ids
	}
	for _, f := range replicaFiles() {
		base := filepath.Base(f)
		if base == "deadbeef-r0.json" || base == gone.Replicas[0].ID+".json" || base == gone.Replicas[1].ID+".json" {
			t.Errorf("replica file %s left behind", f)
		}
	}
	if n := len(replicaFiles()); n != 2 {
		t.Errorf("want only keep's 2 replicas on disk, found %d", n)
	}
	// The survivor works.
	att, err := c.AttachVolume(ctx, "keep", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(att.MountPath, "ok"), []byte("ok"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"s-half", "s-orphan"} {
		if _, err := c.CreateSnapshot(context.Background(), "keep", name); err != nil {
			t.Fatalf("the name of interrupted snapshot %s must be free again on every replica: %v", name, err)
		}
	}
}
