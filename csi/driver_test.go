package csi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

var testCap = &csipb.VolumeCapability{
	AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}},
	AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}

func newController(f *fake) *Controller { return &Controller{Driver: New(f, f.Node, nil)} }

func create(t *testing.T, c *Controller, name string, src *csipb.VolumeContentSource) (*csipb.Volume, error) {
	t.Helper()
	r, err := c.CreateVolume(context.Background(), &csipb.CreateVolumeRequest{Name: name, VolumeCapabilities: []*csipb.VolumeCapability{testCap},
		CapacityRange: &csipb.CapacityRange{RequiredBytes: 1 << 30}, VolumeContentSource: src})
	return r.GetVolume(), err
}

func TestCreateVolume(t *testing.T) {
	f := newFake("a")
	c := newController(f)
	ctx := context.Background()
	v, err := create(t, c, "pvc-1", nil)
	if err != nil || v.VolumeId != "pvc-1" || v.CapacityBytes != 1<<30 {
		t.Fatalf("create: %v, %v", v, err)
	}
	if again, err := create(t, c, "pvc-1", nil); err != nil || again.VolumeId != "pvc-1" {
		t.Fatalf("the same create again: %v, %v", again, err)
	}
	_, err = c.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: "pvc-1", VolumeCapabilities: []*csipb.VolumeCapability{testCap},
		CapacityRange: &csipb.CapacityRange{RequiredBytes: 2 << 30}})
	if status.Code(err) != codes.AlreadyExists {
		t.Fatalf("same name, other size: %v; want ALREADY_EXISTS", err)
	}
	block := &csipb.VolumeCapability{AccessType: &csipb.VolumeCapability_Block{Block: &csipb.VolumeCapability_BlockVolume{}},
		AccessMode: testCap.AccessMode}
	if _, err = c.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: "raw", VolumeCapabilities: []*csipb.VolumeCapability{block}}); err != nil {
		t.Fatalf("block volume: %v", err)
	}
	nfs := &csipb.VolumeCapability{AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{FsType: "nfs"}},
		AccessMode: testCap.AccessMode}
	_, err = c.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: "nfs", VolumeCapabilities: []*csipb.VolumeCapability{nfs}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "ext4 or xfs") {
		t.Fatalf("nfs volume: %v; want INVALID_ARGUMENT naming the filesystems offered", err)
	}
	_, err = c.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: "bad", VolumeCapabilities: []*csipb.VolumeCapability{testCap}, Parameters: map[string]string{"replicas": "2"}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "repl") {
		t.Fatalf("unknown parameter: %v", err)
	}
	long := strings.Repeat("n", 128)
	lv, err := create(t, c, long, nil)
	if err != nil || spec.ValidateName("volume name", lv.VolumeId) != nil {
		t.Fatalf("128-character name: %v, %v", lv, err)
	}
	if again, _ := create(t, c, long, nil); again.GetVolumeId() != lv.VolumeId {
		t.Fatalf("the long name maps to %s, then %s", lv.VolumeId, again.GetVolumeId())
	}
}

func TestCloneAndSnapshots(t *testing.T) {
	f := newFake("a")
	c := newController(f)
	ctx := context.Background()
	if _, err := create(t, c, "src", nil); err != nil {
		t.Fatal(err)
	}
	snap, err := c.CreateSnapshot(ctx, &csipb.CreateSnapshotRequest{Name: "s1", SourceVolumeId: "src"})
	if err != nil || snap.Snapshot.SnapshotId != "src@s1" || snap.Snapshot.SizeBytes != 1<<30 {
		t.Fatalf("snapshot: %v, %v", snap, err)
	}
	if _, err := create(t, c, "other", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSnapshot(ctx, &csipb.CreateSnapshotRequest{Name: "s1", SourceVolumeId: "other"}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("snapshot name taken on another volume: %v", err)
	}
	restored, err := create(t, c, "restored", &csipb.VolumeContentSource{Type: &csipb.VolumeContentSource_Snapshot{Snapshot: &csipb.VolumeContentSource_SnapshotSource{SnapshotId: "src@s1"}}})
	if err != nil || restored.GetContentSource().GetSnapshot().GetSnapshotId() != "src@s1" {
		t.Fatalf("restore: %v, %v", restored, err)
	}
	cloned, err := create(t, c, "cloned", &csipb.VolumeContentSource{Type: &csipb.VolumeContentSource_Volume{Volume: &csipb.VolumeContentSource_VolumeSource{VolumeId: "src"}}})
	if err != nil || cloned.GetContentSource().GetVolume().GetVolumeId() != "src" {
		t.Fatalf("clone: %v, %v", cloned, err)
	}
	if !f.HasSnapshot("src@csi-clone-cloned") {
		t.Fatal("no snapshot of the source for the clone")
	}
	list, err := c.ListSnapshots(ctx, &csipb.ListSnapshotsRequest{SourceVolumeId: "src"})
	if err != nil || len(list.Entries) != 1 {
		t.Fatalf("the clone's snapshot is listed: %v", list)
	}
	// A bigger restore is a clone, grown.
	bigger, err := c.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: "bigger", VolumeCapabilities: []*csipb.VolumeCapability{testCap},
		CapacityRange:       &csipb.CapacityRange{RequiredBytes: 2 << 30},
		VolumeContentSource: &csipb.VolumeContentSource{Type: &csipb.VolumeContentSource_Snapshot{Snapshot: &csipb.VolumeContentSource_SnapshotSource{SnapshotId: "src@s1"}}}})
	if err != nil || bigger.Volume.CapacityBytes != 2<<30 || f.Volume("bigger").Size != 2<<30 {
		t.Fatalf("bigger restore: %v, %v", bigger, err)
	}
	// The snapshot keeps the size the volume had when it was taken.
	if _, err := c.ControllerExpandVolume(ctx, &csipb.ControllerExpandVolumeRequest{VolumeId: "src", CapacityRange: &csipb.CapacityRange{RequiredBytes: 3 << 30}}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.GetSnapshot(ctx, &csipb.GetSnapshotRequest{SnapshotId: "src@s1"}); err != nil || got.Snapshot.SizeBytes != 1<<30 {
		t.Fatalf("snapshot after its volume grew: %v, %v", got, err)
	}
	if _, err := c.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: "bigger"}); err != nil {
		t.Fatal(err)
	}

	if _, err := c.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: "src"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("delete a volume with snapshots: %v", err)
	}
	for _, id := range []string{"cloned", "restored"} {
		if _, err := c.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: id}); err != nil {
			t.Fatal(err)
		}
	}
	if f.HasSnapshot("src@csi-clone-cloned") {
		t.Fatal("the clone's snapshot outlived it")
	}
	if _, err := c.DeleteSnapshot(ctx, &csipb.DeleteSnapshotRequest{SnapshotId: "src@s1"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"src", "src", "no-such", "a/b"} {
		if _, err := c.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: id}); err != nil {
			t.Fatalf("delete %s: %v", id, err)
		}
	}
}

func TestPublish(t *testing.T) {
	f := newFake("a")
	f.SetUp("b", true)
	f.SetUp("c", false)
	c := newController(f)
	ctx := context.Background()
	if _, err := create(t, c, "v", nil); err != nil {
		t.Fatal(err)
	}
	publish := func(node string) error {
		_, err := c.ControllerPublishVolume(ctx, &csipb.ControllerPublishVolumeRequest{VolumeId: "v", NodeId: node, VolumeCapability: testCap})
		return err
	}
	unpublish := func(node string) error {
		_, err := c.ControllerUnpublishVolume(ctx, &csipb.ControllerUnpublishVolumeRequest{VolumeId: "v", NodeId: node})
		return err
	}
	if err := publish("x"); status.Code(err) != codes.NotFound {
		t.Fatalf("publish on an unknown node: %v", err)
	}
	if err := publish("b"); err != nil {
		t.Fatalf("publish a detached volume: %v", err)
	}
	f.AttachOn("v", "b")
	if err := publish("a"); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "node b") {
		t.Fatalf("publish on a while b (up) holds it: %v", err)
	}
	if err := unpublish("b"); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("unpublish from b (up, still attached) on a: %v", err)
	}
	if err := unpublish("a"); err != nil {
		t.Fatalf("unpublish from a node it is not attached on: %v", err)
	}
	f.AttachOn("v", "c") // c is down
	if err := publish("a"); err != nil {
		t.Fatalf("publish on a while the down c holds it: %v", err)
	}
	if err := unpublish("c"); err != nil {
		t.Fatalf("unpublish from the down c: %v", err)
	}
	f.AttachOn("v", "a")
	if err := unpublish("a"); err != nil || f.Attachment("v") != nil {
		t.Fatalf("unpublish from this node: %v; attachment %v", err, f.Attachment("v"))
	}
}

// TestExpand: a detached volume (or one attached on this node) grows in
// the controller; one attached on another node is left to node expansion
// there; volumes never shrink; a limit below the size is OUT_OF_RANGE.
func TestExpand(t *testing.T) {
	f := newFake("a")
	f.SetUp("b", true)
	c := newController(f)
	ctx := context.Background()
	if _, err := create(t, c, "v", nil); err != nil {
		t.Fatal(err)
	}
	expand := func(req, limit int64) (*csipb.ControllerExpandVolumeResponse, error) {
		return c.ControllerExpandVolume(ctx, &csipb.ControllerExpandVolumeRequest{VolumeId: "v", VolumeCapability: testCap,
			CapacityRange: &csipb.CapacityRange{RequiredBytes: req, LimitBytes: limit}})
	}
	r, err := expand(2<<30+1, 0)
	if err != nil || r.CapacityBytes != 2<<30+4096 || !r.NodeExpansionRequired || f.Volume("v").Size != 2<<30+4096 {
		t.Fatalf("expand a detached volume: %v, %v (size %d)", r, err, f.Volume("v").Size)
	}
	if r, err := expand(1<<30, 0); err != nil || r.CapacityBytes != 2<<30+4096 {
		t.Fatalf("expand to less than it has: %v, %v", r, err)
	}
	if _, err := expand(1<<30, 1<<30); status.Code(err) != codes.OutOfRange {
		t.Fatalf("limit below the size: %v", err)
	}
	f.AttachOn("v", "b")
	f.Resized()
	r, err = expand(4<<30, 0)
	if resized := f.Resized(); err != nil || r.CapacityBytes != 4<<30 || !r.NodeExpansionRequired || len(resized) != 0 {
		t.Fatalf("expand a volume attached on b from a: %v, %v (resized %v)", r, err, resized)
	}
	if _, err := c.ControllerExpandVolume(ctx, &csipb.ControllerExpandVolumeRequest{VolumeId: "nope", CapacityRange: &csipb.CapacityRange{RequiredBytes: 1}}); status.Code(err) != codes.NotFound {
		t.Fatalf("expand a missing volume: %v", err)
	}
	if _, err := c.ControllerExpandVolume(ctx, &csipb.ControllerExpandVolumeRequest{VolumeId: "v"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("expand without a capacity range: %v", err)
	}
}

func TestHealthAndCapacity(t *testing.T) {
	f := newFake("a")
	f.SetUp("b", false)
	c := newController(f)
	ctx := context.Background()
	if _, err := create(t, c, "v", nil); err != nil {
		t.Fatal(err)
	}
	f.Edit("v", func(v *api.Volume) {
		v.Repl = 2
		v.Replicas = append(v.Replicas, api.Replica{ID: "v-r1", Node: "b", InSync: false})
	})
	h, err := c.ControllerGetVolumeHealth(ctx, &csipb.ControllerGetVolumeHealthRequest{VolumeId: "v"})
	if err != nil || len(h.VolumeHealth.HealthStatuses) != 1 || h.VolumeHealth.HealthStatuses[0].Status != csipb.VolumeHealthErrorType_DEGRADED {
		t.Fatalf("health: %v, %v", h, err)
	}
	capa, err := c.GetCapacity(ctx, &csipb.GetCapacityRequest{AccessibleTopology: &csipb.Topology{Segments: map[string]string{"topology.ballast.io/zone": "z-a"}}})
	if err != nil || capa.AvailableCapacity != 90<<30 {
		t.Fatalf("capacity of zone z-a: %v, %v", capa, err)
	}
	capa, err = c.GetCapacity(ctx, &csipb.GetCapacityRequest{Parameters: map[string]string{"repl": "2"}})
	if err != nil || capa.AvailableCapacity != 45<<30 {
		t.Fatalf("capacity for repl 2 (b is down): %v, %v", capa, err)
	}
}

func TestToStatus(t *testing.T) {
	for err, want := range map[error]codes.Code{
		fmt.Errorf("x: %w", api.ErrInvalid):        codes.InvalidArgument,
		fmt.Errorf("x: %w", api.ErrNotFound):       codes.NotFound,
		fmt.Errorf("x: %w", api.ErrExists):         codes.AlreadyExists,
		fmt.Errorf("x: %w", api.ErrInUse):          codes.FailedPrecondition,
		fmt.Errorf("x: %w", api.ErrNoCapacity):     codes.ResourceExhausted,
		fmt.Errorf("x: %w", api.ErrConflict):       codes.Aborted,
		fmt.Errorf("x: %w", errors.ErrUnsupported): codes.Unimplemented,
		context.DeadlineExceeded:                   codes.DeadlineExceeded,
		errors.New("disk on fire"):                 codes.Internal,
		status.Error(codes.OutOfRange, "x"):        codes.OutOfRange,
	} {
		if got := status.Code(toStatus(err)); got != want {
			t.Errorf("toStatus(%v) = %s; want %s", err, got, want)
		}
	}
}
