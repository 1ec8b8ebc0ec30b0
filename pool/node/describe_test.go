package node

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/spec"
)

// TestDescribeMarksLocalReplica: a volume's description marks the replica on
// its attach node as local, and no other; unattached, none is local. The
// describing node is another one, as for `volume inspect` run elsewhere.
func TestDescribeMarksLocalReplica(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := meta.StartEmbedded(ctx, meta.EmbedConfig{Name: "a", DataDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	cli, err := meta.Connect([]string{e.Endpoint}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	store := meta.NewStore(cli)
	n := &Node{cfg: Config{ID: "a"}, meta: store, pools: map[string]*pool{}, attached: map[string]*attachment{}}

	v := &meta.Volume{Volume: spec.Volume{Name: "v", Size: 1 << 20, Repl: 3, FS: "ext4"}, ID: "vid", State: meta.StateReady,
		Replicas: []meta.Replica{{ID: "r1", Node: "a", Pool: "p1"}, {ID: "r2", Node: "b", Pool: "p2"}, {ID: "r3", Node: "c", Pool: "p3"}},
		InSync:   []string{"r1", "r2", "r3"}}
	if err := store.Commit(ctx, meta.PutVolume(v, 0)); err != nil {
		t.Fatal(err)
	}
	local := func() []string {
		t.Helper()
		d, err := n.describe(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range d.Replicas {
			if r.Local {
				out = append(out, r.ID)
			}
		}
		return out
	}
	if got := local(); len(got) != 0 {
		t.Errorf("unattached: local replicas %v, want none", got)
	}
	if err := store.Commit(ctx, meta.PutAttachment(&meta.Attachment{Volume: "v", Node: "b", Epoch: 1, MountPath: "/m/v"}, 0)); err != nil {
		t.Fatal(err)
	}
	if got := local(); len(got) != 1 || got[0] != "r2" {
		t.Errorf("attached on b: local replicas %v, want [r2]", got)
	}
}
