package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/spec"
)

// TestFollowDeadOwner plays a volume attached on another node, n2, whose
// daemon is simulated by its lease and attachment record: while n2 is up,
// attaching here is refused with an error naming it; once its lease has
// expired, the attach takes the volume over with a higher epoch.
func TestFollowDeadOwner(t *testing.T) {
	d := startDaemon(t)
	ctx := d.ctx()
	if _, err := d.client.CreateVolume(ctx, spec.Volume{Name: "f1", Size: 256 << 20, Repl: 2}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cli, err := meta.Connect([]string{"unix://" + filepath.Join(d.dir, "data", "etcd", "client.sock")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	store := meta.NewStore(cli)
	v, rev, err := store.Volume(ctx, "f1")
	if err != nil {
		t.Fatal(err)
	}
	v.Epoch = 7
	att := &meta.Attachment{Volume: "f1", Node: "n2", Epoch: 7, MountPath: "/elsewhere/f1", Since: time.Now()}
	if err := store.Commit(ctx, meta.PutVolume(v, rev), meta.PutAttachment(att, 0)); err != nil {
		t.Fatal(err)
	}
	n2ctx, n2dies := context.WithCancel(ctx)
	defer n2dies()
	if err := store.KeepAlive(n2ctx, "n2", 2*time.Second); err != nil {
		t.Fatal(err)
	}

	_, err = d.client.AttachVolume(ctx, "f1", api.AttachOptions{})
	if !errors.Is(err, api.ErrInUse) || !strings.Contains(err.Error(), "node n2") {
		t.Fatalf("attach while n2 is up: %v; want an in-use error naming n2", err)
	}
	n2dies()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := d.client.AttachVolume(ctx, "f1", api.AttachOptions{})
		if err == nil {
			if got.Node != "n1" || got.Epoch <= 7 {
				t.Fatalf("takeover: %+v, want node n1 with an epoch above 7", got)
			}
			break
		}
		if !errors.Is(err, api.ErrInUse) || time.Now().After(deadline) {
			t.Fatalf("attach after n2's lease expired: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
