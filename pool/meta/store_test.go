package meta

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/spec"
)

func startStore(t *testing.T) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	e, err := StartEmbedded(ctx, EmbedConfig{Name: "n1", DataDir: dir}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	cli, err := Connect([]string{e.Endpoint}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return NewStore(cli)
}

func TestVolumeCAS(t *testing.T) {
	s := startStore(t)
	ctx := context.Background()
	v := &Volume{Volume: spec.Volume{Name: "v1", Size: 1 << 30, Repl: 1, FS: "ext4"}, State: StateCreating}
	if err := s.Commit(ctx, PutVolume(v, 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, PutVolume(v, 0)); !errors.Is(err, ErrConflict) {
		t.Fatalf("second create: %v, want ErrConflict", err)
	}
	got, rev, err := s.Volume(ctx, "v1")
	if err != nil || got.Size != 1<<30 || got.State != StateCreating {
		t.Fatalf("read back: %+v %v", got, err)
	}
	got.State = StateReady
	att := &Attachment{Volume: "v1", Node: "n1", Epoch: 1}
	if err := s.Commit(ctx, PutVolume(got, rev), PutAttachment(att, 0)); err != nil {
		t.Fatal(err)
	}
	// A stale revision fails and changes nothing, not even the other key.
	if err := s.Commit(ctx, PutVolume(got, rev), DeleteAttachment("v1", 0)); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale write: %v", err)
	}
	if _, _, err := s.Attachment(ctx, "v1"); err != nil {
		t.Fatalf("attachment lost by a failed txn: %v", err)
	}
	if _, _, err := s.Volume(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing volume: %v", err)
	}
	vols, err := s.Volumes(ctx)
	if err != nil || len(vols) != 1 || vols[0].State != StateReady {
		t.Fatalf("list: %+v %v", vols, err)
	}
}

func TestSnapshotsAndAlive(t *testing.T) {
	s := startStore(t)
	ctx := context.Background()
	for _, n := range []string{"a", "b"} {
		if err := s.Commit(ctx, PutSnapshot(&Snapshot{Volume: "v1", Name: n, State: StateReady}, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit(ctx, PutSnapshot(&Snapshot{Volume: "v10", Name: "c"}, 0)); err != nil {
		t.Fatal(err)
	}
	snaps, err := s.Snapshots(ctx, "v1")
	if err != nil || len(snaps) != 2 {
		t.Fatalf("snapshots of v1 (must not include v10's): %+v %v", snaps, err)
	}
	revs, err := s.SnapshotRevs(ctx, "v1")
	if err != nil || len(revs) != 2 || revs["a"] == 0 {
		t.Fatalf("revs: %v %v", revs, err)
	}
	kctx, cancel := context.WithCancel(ctx)
	if err := s.KeepAlive(kctx, "n1", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	alive, err := s.Alive(ctx)
	if err != nil || !alive["n1"] {
		t.Fatalf("alive: %v %v", alive, err)
	}
	cancel()
}

func TestDeathIsRecorded(t *testing.T) {
	s := startStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.PutNode(ctx, &Node{ID: "n2", Started: time.Now()}); err != nil {
		t.Fatal(err)
	}
	n2ctx, n2stop := context.WithCancel(ctx)
	if err := s.KeepAlive(n2ctx, "n2", time.Second); err != nil {
		t.Fatal(err)
	}
	go s.WatchDeaths(ctx, func(id string) { s.MarkDown(ctx, id, time.Now()) })
	time.Sleep(200 * time.Millisecond) // let the watch start
	n2stop()                           // n2 stops refreshing its lease: it dies
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		nodes, err := s.Nodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) == 1 && !nodes[0].DownSince.IsZero() {
			alive, _ := s.Alive(ctx)
			if alive["n2"] {
				t.Fatal("n2 marked down while its lease lives")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("n2's death not recorded: %+v", nodes)
		}
	}
}

func TestAliveAgainAfterLeaseLoss(t *testing.T) {
	s := startStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.KeepAlive(ctx, "n1", time.Second); err != nil {
		t.Fatal(err)
	}
	// Lose the lease as an etcd outage longer than the TTL would: revoke it.
	resp, err := s.cli.Leases(ctx)
	if err != nil || len(resp.Leases) != 1 {
		t.Fatalf("leases: %+v %v", resp, err)
	}
	if _, err := s.cli.Revoke(ctx, resp.Leases[0].ID); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		alive, err := s.Alive(ctx)
		if err == nil && alive["n1"] {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("n1 not alive again after losing its lease: %v %v", alive, err)
		}
	}
}
