package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
)

// newTest returns a driver on node "n1" over a fake holding volume v1.
func newTest(t *testing.T) (*Driver, *fake) {
	t.Helper()
	f := newFake("n1")
	d := New(f, "n1", Options{}, nil)
	if err := d.create(context.Background(), "v1", map[string]string{"size": "1G", "repl": "2"}); err != nil {
		t.Fatal(err)
	}
	return d, f
}

func TestMountsShareOneAttach(t *testing.T) {
	ctx := context.Background()
	d, f := newTest(t)
	p1, err := d.mount(ctx, "v1", "id1")
	if err != nil {
		t.Fatal(err)
	}
	p2, err := d.mount(ctx, "v1", "id2")
	if err != nil {
		t.Fatal(err)
	}
	if p1 != "/var/lib/ballast/mounts/v1" || p2 != p1 {
		t.Fatalf("mount paths %q, %q", p1, p2)
	}
	if _, err := d.mount(ctx, "v1", "id1"); err != nil { // repeated: idempotent
		t.Fatal(err)
	}
	if n := f.Count("attach"); n != 1 {
		t.Fatalf("%d attaches for two mount IDs, want 1", n)
	}
	if err := d.unmount(ctx, "v1", "id1"); err != nil {
		t.Fatal(err)
	}
	if f.Count("detach") != 0 || f.Attachment("v1") == nil {
		t.Fatal("detached while id2 still uses the volume")
	}
	if err := d.unmount(ctx, "v1", "id2"); err != nil {
		t.Fatal(err)
	}
	if f.Count("detach") != 1 || f.Attachment("v1") != nil {
		t.Fatalf("not detached after the last unmount (%d detaches)", f.Count("detach"))
	}
	// A second unmount of the same ID, or of one from before a restart.
	if err := d.unmount(ctx, "v1", "id2"); err != nil {
		t.Fatal(err)
	}
	if err := d.unmount(ctx, "v1", "unknown"); err != nil {
		t.Fatal(err)
	}
	if f.Count("detach") != 1 {
		t.Fatal("unknown mount IDs detached the volume")
	}
	if len(d.mounts.vols) != 0 {
		t.Fatalf("mount table not empty: %v", d.mounts.vols)
	}
}

func TestMountFailureLeaksNothing(t *testing.T) {
	ctx := context.Background()
	d, f := newTest(t)
	f.FailAttach(errors.New("loop device setup failed"))
	_, err := d.mount(ctx, "v1", "id1")
	if err == nil || !strings.Contains(err.Error(), "loop device setup failed") || !strings.Contains(err.Error(), `mount volume "v1"`) {
		t.Fatalf("mount error %v", err)
	}
	if len(d.mounts.vols) != 0 {
		t.Fatalf("failed mount left a count: %v", d.mounts.vols["v1"])
	}
	f.FailAttach(nil)
	if err := d.remove(ctx, "v1"); err != nil {
		t.Fatalf("remove after a failed mount: %v", err)
	}
	// A retry after a failure attaches again.
	d, f = newTest(t)
	f.FailAttach(errors.New("boom"))
	_, _ = d.mount(ctx, "v1", "id1")
	f.FailAttach(nil)
	if _, err := d.mount(ctx, "v1", "id1"); err != nil {
		t.Fatal(err)
	}
	if f.Count("attach") != 2 || f.Attachment("v1") == nil {
		t.Fatal("retry did not attach")
	}
}

func TestMountAttachedElsewhere(t *testing.T) {
	ctx := context.Background()
	d, f := newTest(t)
	f.AttachOn("v1", "n2")
	_, err := d.mount(ctx, "v1", "id1")
	if !errors.Is(err, api.ErrInUse) {
		t.Fatalf("mount of a volume held by n2: %v", err)
	}
	for _, want := range []string{"node n2", "stop the container using it on that node"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if len(d.mounts.vols) != 0 {
		t.Fatal("failed mount left a count")
	}
	if _, err := d.mount(ctx, "nope", "id1"); !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "docker volume create -d ballast") {
		t.Fatalf("mount of a missing volume: %v", err)
	}
}

// TestMountWaitsForOwner: a Mount of a volume another node holds tries
// again until that node is declared down (its attachment released, in
// the fake) and then takes it; an owner that stays up fails the Mount
// once the wait is over, not before.
func TestMountWaitsForOwner(t *testing.T) {
	ctx := context.Background()
	d, f := newTest(t)
	d.ownerWait = 5 * time.Second
	f.AttachOn("v1", "n2")
	go func() {
		time.Sleep(3 * ownerPoll / 2)
		f.DetachOn("v1")
	}()
	path, err := d.mount(ctx, "v1", "id1")
	if err != nil || path == "" {
		t.Fatalf("mount once n2 was declared down: %q, %v", path, err)
	}
	if a := f.Attachment("v1"); a == nil || a.Node != "n1" {
		t.Fatalf("attachment %+v, want on n1", a)
	}
	if n := f.Count("attach"); n < 2 {
		t.Fatalf("%d attach calls; want the first refused and a later one", n)
	}

	d2, f2 := newTest(t)
	d2.ownerWait = 3 * ownerPoll
	f2.AttachOn("v1", "n2")
	start := time.Now()
	_, err = d2.mount(ctx, "v1", "id1")
	if !errors.Is(err, api.ErrInUse) {
		t.Fatalf("mount of a volume whose owner stays up: %v", err)
	}
	if waited := time.Since(start); waited < 2*ownerPoll || f2.Count("attach") < 3 {
		t.Fatalf("gave up after %v and %d attach calls; want about %v of tries", waited, f2.Count("attach"), d2.ownerWait)
	}

	cctx, cancel := context.WithTimeout(ctx, ownerPoll/2)
	defer cancel()
	d2.ownerWait = time.Minute
	if _, err := d2.mount(cctx, "v1", "id1"); !errors.Is(err, api.ErrInUse) || cctx.Err() == nil {
		t.Fatalf("mount whose caller gave up: %v (ctx %v)", err, cctx.Err())
	}
}

func TestUnmountDetachFailure(t *testing.T) {
	ctx := context.Background()
	d, f := newTest(t)
	if _, err := d.mount(ctx, "v1", "id1"); err != nil {
		t.Fatal(err)
	}
	f.FailDetach(errors.New("device busy"))
	err := d.unmount(ctx, "v1", "id1")
	if err == nil || !strings.Contains(err.Error(), "ballast volume detach v1") {
		t.Fatalf("unmount with a failing detach: %v", err)
	}
	if len(d.mounts.vols) != 0 {
		t.Fatal("the mount ID outlived its container")
	}
	// Taken over by another node meanwhile: nothing to release here.
	d, f = newTest(t)
	if _, err := d.mount(ctx, "v1", "id1"); err != nil {
		t.Fatal(err)
	}
	f.AttachOn("v1", "n2")
	if err := d.unmount(ctx, "v1", "id1"); err != nil {
		t.Fatalf("unmount of a volume taken over by n2: %v", err)
	}
}

func TestConcurrentMounts(t *testing.T) {
	ctx := context.Background()
	d, f := newTest(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				id := fmt.Sprintf("c%d-%d", i, j)
				if _, err := d.mount(ctx, "v1", id); err != nil {
					t.Error(err)
					return
				}
				if f.Attachment("v1") == nil {
					t.Error("volume detached while a mount ID uses it")
					return
				}
				if err := d.unmount(ctx, "v1", id); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if f.Attachment("v1") != nil || len(d.mounts.vols) != 0 {
		t.Fatal("volume still attached or counted after every unmount")
	}
	if a, dt := f.Count("attach"), f.Count("detach"); a != dt {
		t.Fatalf("%d attaches, %d detaches", a, dt)
	}
}

func TestRemove(t *testing.T) {
	ctx := context.Background()
	d, f := newTest(t)
	if _, err := d.mount(ctx, "v1", "id1"); err != nil {
		t.Fatal(err)
	}
	err := d.remove(ctx, "v1")
	if !errors.Is(err, api.ErrInUse) || !strings.Contains(err.Error(), "mounted by 1 container(s) on this node") {
		t.Fatalf("remove of a mounted volume: %v", err)
	}
	if err := d.unmount(ctx, "v1", "id1"); err != nil {
		t.Fatal(err)
	}
	f.AttachOn("v1", "n2")
	err = d.remove(ctx, "v1")
	if !errors.Is(err, api.ErrInUse) || !strings.Contains(err.Error(), "attached on node n2") {
		t.Fatalf("remove of a volume attached on n2: %v", err)
	}
	if f.Count("delete") != 0 {
		t.Fatal("remove of a volume in use called DeleteVolume")
	}
	f.DetachOn("v1")
	if err := d.remove(ctx, "size=1G,name=v1"); err != nil {
		t.Fatal(err)
	}
	if f.Volume("v1") != nil {
		t.Fatal("not deleted")
	}
	if err := d.remove(ctx, "v1"); err != nil {
		t.Fatalf("remove of a volume already gone: %v", err)
	}
}

func TestGetListPath(t *testing.T) {
	ctx := context.Background()
	d, f := newTest(t)
	if err := d.create(ctx, "size=1G,name=v2", nil); err != nil {
		t.Fatal(err)
	}
	if err := d.create(ctx, "v3", map[string]string{"size": "1G"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.mount(ctx, "v1", "id1"); err != nil {
		t.Fatal(err)
	}
	f.AttachOn("v2", "n2")

	vs, err := d.list(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, v := range vs {
		got[v.Name] = v.Mountpoint
	}
	want := map[string]string{"v1": "/var/lib/ballast/mounts/v1", "v2": "", "v3": ""}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("list = %v, want %v", got, want)
	}

	v, err := d.get(ctx, "size=1G,name=v2")
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "size=1G,name=v2" || v.Mountpoint != "" || v.Status["attached"] != "n2" || v.Status["size"] != "1GiB" || v.CreatedAt == "" {
		t.Fatalf("get v2 = %+v", v)
	}
	v, err = d.get(ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if v.Mountpoint != "/var/lib/ballast/mounts/v1" || v.Status["in_sync"] != "2/2" || v.Status["repl"] != 2 {
		t.Fatalf("get v1 = %+v", v)
	}
	if _, err := d.get(ctx, "nope"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("get of a missing volume: %v", err)
	}

	for name, want := range map[string]string{"v1": "/var/lib/ballast/mounts/v1", "name=v2": "", "v3": ""} {
		if p, err := d.path(ctx, name); err != nil || p != want {
			t.Errorf("path(%s) = %q, %v; want %q", name, p, err, want)
		}
	}
}

// An inline spec that names an existing volume must describe it: Get, Path
// and Mount of one that asks for something else fail with the difference
// named, and attach nothing. A plain name, the same spec, or one leaving
// options out (they may have come from --opt, which Docker does not send
// again) keep working.
func TestInlineSpecMustMatch(t *testing.T) {
	ctx := context.Background()
	d, f := newTest(t) // v1: 1 GiB, repl 2, ext4
	for _, bad := range []struct{ name, want string }{
		{"size=2G,repl=2,name=v1", "size 1GiB (asked for 2GiB)"},
		{"size=1G,repl=1,name=v1", "repl 2 (asked for 1)"},
		{"size=1G,repl=2,fs=xfs,name=v1", "fs ext4 (asked for xfs)"},
		{"size=1G,repl=2,pin=zone=a,name=v1", "pin none (asked for zone=a)"},
		{"size=1G,repl=2,min_in_sync=2,name=v1", "min-in-sync 1 (asked for 2)"},
		{"size=4G,repl=3,name=v1", "size 1GiB (asked for 4GiB), repl 2 (asked for 3)"},
	} {
		checks := map[string]func() error{
			"get":   func() error { _, err := d.get(ctx, bad.name); return err },
			"path":  func() error { _, err := d.path(ctx, bad.name); return err },
			"mount": func() error { _, err := d.mount(ctx, bad.name, "id1"); return err },
		}
		for op, call := range checks {
			err := call()
			if !errors.Is(err, api.ErrExists) || !strings.Contains(err.Error(), `volume "v1" already exists with a different spec: `+bad.want) {
				t.Errorf("%s %s: %v; want the difference named: %s", op, bad.name, err, bad.want)
			}
		}
	}
	if n := f.Count("attach"); n != 0 {
		t.Fatalf("%d attaches for specs that do not match", n)
	}
	for _, good := range []string{"v1", "size=1G,repl=2,name=v1", "repl=2,name=v1", "size=1G,name=v1", "fs=ext4;name=v1", "size=512M,repl=2,name=v1"} {
		if _, err := d.get(ctx, good); err != nil {
			t.Errorf("get %s: %v", good, err)
		}
		if _, err := d.path(ctx, good); err != nil {
			t.Errorf("path %s: %v", good, err)
		}
		if _, err := d.mount(ctx, good, "id-"+good); err != nil {
			t.Errorf("mount %s: %v", good, err)
		}
	}
	// Docker's create of an inline spec for an existing volume goes
	// through the service, which says the same.
	err := d.create(ctx, "size=2G,repl=2,name=v1", nil)
	if !errors.Is(err, api.ErrExists) || !strings.Contains(err.Error(), "size 1GiB (asked for 2GiB)") {
		t.Fatalf("create of a different inline spec: %v", err)
	}
}

func TestCreateErrors(t *testing.T) {
	ctx := context.Background()
	d, f := newTest(t)
	// The same spec again is fine; another one names the difference.
	if err := d.create(ctx, "v1", map[string]string{"size": "1G", "repl": "2"}); err != nil {
		t.Fatalf("create again with the same spec: %v", err)
	}
	if err := d.create(ctx, "v1", map[string]string{"size": "2G"}); !errors.Is(err, api.ErrExists) {
		t.Fatalf("create again with another size: %v", err)
	}
	n := f.Count("create")
	for _, bad := range []map[string]string{{"size": "x"}, {"size": "1G", "bogus": "1"}, nil} {
		if err := d.create(ctx, "v9", bad); err == nil {
			t.Errorf("create with %v succeeded", bad)
		}
	}
	if f.Count("create") != n {
		t.Fatal("invalid options reached CreateVolume")
	}
}

func TestExplain(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("no pool can hold it: %w", api.ErrNoCapacity), "add pool disks"},
		{context.DeadlineExceeded, `create volume "v1" did not finish before Docker gave up`},
		{errors.New("etcd unreachable"), `ballast could not create volume "v1": etcd unreachable ('ballast cluster status'`},
	} {
		err := explain("create", "v1", tc.err)
		if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("explain(%v) = %v, want it to wrap and say %q", tc.err, err, tc.want)
		}
	}
}

// The Status's replicas name each replica's node and mark the one local to
// the attach node and those not in sync.
func TestStatusReplicas(t *testing.T) {
	d := New(newFake("n1"), "n1", Options{}, nil)
	v := &api.Volume{Replicas: []api.Replica{
		{Node: "n1", InSync: true, Local: true},
		{Node: "n2", InSync: false},
		{Node: "n3", InSync: true},
	}}
	if got, want := d.toDocker(v).Status["replicas"], "n1 (local), n2 (not in sync), n3"; got != want {
		t.Errorf("replicas = %q, want %q", got, want)
	}
	v.Replicas[0].InSync = false
	if got, want := d.toDocker(v).Status["replicas"], "n1 (local, not in sync), n2 (not in sync), n3"; got != want {
		t.Errorf("replicas = %q, want %q", got, want)
	}
}

// TestMountWithoutID: callers of the protocol before Docker 1.12 (dvdcli,
// for DC/OS) send no mount ID and count mounts themselves: repeated mounts
// attach once, and their one unmount detaches. Mounts with IDs count apart.
func TestMountWithoutID(t *testing.T) {
	ctx := context.Background()
	d, f := newTest(t)
	for range 2 {
		if p, err := d.mount(ctx, "v1", ""); err != nil || p != "/var/lib/ballast/mounts/v1" {
			t.Fatalf("mount without an ID: %q, %v", p, err)
		}
	}
	if _, err := d.mount(ctx, "v1", "docker-id"); err != nil {
		t.Fatal(err)
	}
	if n := f.Count("attach"); n != 1 {
		t.Fatalf("%d attaches, want 1", n)
	}
	if err := d.unmount(ctx, "v1", ""); err != nil {
		t.Fatal(err)
	}
	if f.Attachment("v1") == nil {
		t.Fatal("detached while the mount with an ID still uses the volume")
	}
	if err := d.unmount(ctx, "v1", "docker-id"); err != nil {
		t.Fatal(err)
	}
	if f.Count("detach") != 1 || f.Attachment("v1") != nil {
		t.Fatalf("not detached after the last unmount (%d detaches)", f.Count("detach"))
	}
}

// TestMountIDsSurviveRestart: with a mounts file, the mount IDs of
// containers started before a restart of the daemon are known after it,
// so the last one's unmount detaches the volume; IDs of a volume that is
// no longer attached here are dropped at the next mount, which attaches;
// an unreadable file is started afresh.
func TestMountIDsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "docker-mounts.json")
	f := newFake("n1")
	d := New(f, "n1", Options{MountsFile: file}, nil)
	if err := d.create(ctx, "v1", map[string]string{"size": "1G"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"id1", "id2"} {
		if _, err := d.mount(ctx, "v1", id); err != nil {
			t.Fatal(err)
		}
	}

	d = New(f, "n1", Options{MountsFile: file}, nil) // the daemon restarted
	if err := d.unmount(ctx, "v1", "id1"); err != nil || f.Attachment("v1") == nil {
		t.Fatalf("unmount of one of two IDs after a restart: %v, attachment %v; want it kept", err, f.Attachment("v1"))
	}
	d = New(f, "n1", Options{MountsFile: file}, nil)
	if err := d.unmount(ctx, "v1", "id2"); err != nil || f.Attachment("v1") != nil || f.Count("detach") != 1 {
		t.Fatalf("last unmount after a restart: %v, attachment %v, %d detaches; want the volume detached", err, f.Attachment("v1"), f.Count("detach"))
	}
	if b, err := os.ReadFile(file); err != nil || strings.Contains(string(b), "v1") {
		t.Fatalf("mounts file after the last unmount: %q, %v; want no v1", b, err)
	}

	// Detached behind the daemon's back (here: by another node's takeover).
	if _, err := d.mount(ctx, "v1", "id3"); err != nil {
		t.Fatal(err)
	}
	f.DetachOn("v1")
	d = New(f, "n1", Options{MountsFile: file}, nil)
	attaches := f.Count("attach")
	if _, err := d.mount(ctx, "v1", "id4"); err != nil || f.Count("attach") != attaches+1 || f.Attachment("v1") == nil {
		t.Fatalf("mount after the volume left this node: %v, %d attaches (was %d); want a new attach", err, f.Count("attach"), attaches)
	}
	if err := d.unmount(ctx, "v1", "id3"); err != nil {
		t.Fatal(err)
	}
	if a := f.Attachment("v1"); a == nil {
		t.Fatal("an ID from before the volume left this node detached it under a container started since")
	}

	if err := os.WriteFile(file, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	f2 := newFake("n1")
	d = New(f2, "n1", Options{MountsFile: file}, nil)
	if err := d.create(ctx, "v2", map[string]string{"size": "1G"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.mount(ctx, "v2", "id1"); err != nil {
		t.Fatalf("mount with an unreadable mounts file: %v", err)
	}
	if b, _ := os.ReadFile(file); !strings.Contains(string(b), `"v2"`) {
		t.Fatalf("mounts file not rewritten: %q", b)
	}
}
