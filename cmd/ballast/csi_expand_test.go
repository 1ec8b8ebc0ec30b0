package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/hostfs"
)

var blockCap = &csipb.VolumeCapability{
	AccessType: &csipb.VolumeCapability_Block{Block: &csipb.VolumeCapability_BlockVolume{}},
	AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}

// TestCSIExpand grows published volumes as Kubernetes does (controller
// expansion, then node expansion on the node they are published on): df
// inside the target path sees the new size, the data stays. ext4 grows
// online only where the daemon has CAP_SYS_RESOURCE; elsewhere node
// expansion says so and the filesystem has grown once staged again.
func TestCSIExpand(t *testing.T) {
	n := launchCSI(t, "n1", []string{"disk1", "disk2"})
	ctx := n.ctx()
	for _, fs := range []string{"xfs", "ext4"} {
		vol := n.create(ctx, "pvc-grow-"+fs, 320<<20, map[string]string{"repl": "2", "fs": fs}, nil)
		dir := n.stage(ctx, vol.VolumeId, 0)
		want := writeRandom(t, filepath.Join(dir, "data"), 16<<20)
		before := dfBytes(t, dir)

		r, err := n.ctrl.ControllerExpandVolume(ctx, &csipb.ControllerExpandVolumeRequest{VolumeId: vol.VolumeId,
			CapacityRange: &csipb.CapacityRange{RequiredBytes: 1 << 30}, VolumeCapability: mountCap})
		if err != nil || r.GetCapacityBytes() != 1<<30 || !r.GetNodeExpansionRequired() {
			t.Fatalf("%s: ControllerExpandVolume: %v, %v", fs, r, err)
		}
		nr, err := n.nodeSvc.NodeExpandVolume(ctx, &csipb.NodeExpandVolumeRequest{VolumeId: vol.VolumeId, VolumePath: dir,
			CapacityRange: &csipb.CapacityRange{RequiredBytes: 1 << 30}, VolumeCapability: mountCap})
		if fs == "ext4" && !hostfs.CanGrowExt4Online() {
			if status.Code(err) != codes.FailedPrecondition {
				t.Fatalf("ext4 node expansion without CAP_SYS_RESOURCE: %v; want FAILED_PRECONDITION", err)
			}
			t.Logf("ext4 node expansion refused as expected: %v", status.Convert(err).Message())
			n.unstage(ctx, vol.VolumeId)
			dir = n.stage(ctx, vol.VolumeId, 0)
		} else if err != nil || nr.GetCapacityBytes() != 1<<30 {
			t.Fatalf("%s: NodeExpandVolume: %v, %v", fs, nr, err)
		}
		after := dfBytes(t, dir)
		t.Logf("%s: df in the target path %d -> %d bytes", fs, before, after)
		if after < before+512<<20 {
			t.Fatalf("%s: df in the target path shows %d bytes after growing to 1 GiB (before %d)", fs, after, before)
		}
		stats, err := n.nodeSvc.NodeGetVolumeStats(ctx, &csipb.NodeGetVolumeStatsRequest{VolumeId: vol.VolumeId, VolumePath: dir})
		if err != nil || stats.GetUsage()[0].GetTotal() != after {
			t.Fatalf("%s: NodeGetVolumeStats after growing: %v, %v", fs, stats.GetUsage(), err)
		}
		if got := sha(t, filepath.Join(dir, "data")); got != want {
			t.Fatalf("%s: data after growing reads %s, was %s", fs, got, want)
		}
		n.unstage(ctx, vol.VolumeId)
	}
}

// TestCSIBlock stages and publishes a raw block volume: the target path is
// the volume's device, what is written there is there after the volume is
// unstaged and staged again, it grows, and it is not also staged as a
// filesystem meanwhile.
func TestCSIBlock(t *testing.T) {
	n := launchCSI(t, "n1", []string{"disk1", "disk2"})
	ctx := n.ctx()
	r, err := n.ctrl.CreateVolume(ctx, &csipb.CreateVolumeRequest{Name: "pvc-raw", CapacityRange: &csipb.CapacityRange{RequiredBytes: 64 << 20},
		VolumeCapabilities: []*csipb.VolumeCapability{blockCap}, Parameters: map[string]string{"repl": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	id := r.GetVolume().GetVolumeId()
	staging, target := filepath.Join(n.paths, "staging-raw"), filepath.Join(n.paths, "pods", "raw-dev")
	stage := func() {
		t.Helper()
		if _, err := n.nodeSvc.NodeStageVolume(ctx, &csipb.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging, VolumeCapability: blockCap}); err != nil {
			t.Fatalf("NodeStageVolume (block): %v", err)
		}
		if _, err := n.nodeSvc.NodePublishVolume(ctx, &csipb.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: staging, TargetPath: target, VolumeCapability: blockCap}); err != nil {
			t.Fatalf("NodePublishVolume (block): %v", err)
		}
	}
	unstage := func() {
		t.Helper()
		if _, err := n.nodeSvc.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target}); err != nil {
			t.Fatalf("NodeUnpublishVolume (block): %v", err)
		}
		if _, err := n.nodeSvc.NodeUnstageVolume(ctx, &csipb.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging}); err != nil {
			t.Fatalf("NodeUnstageVolume (block): %v", err)
		}
	}
	stage()
	stage() // idempotent
	var st unix.Stat_t
	if err := unix.Stat(target, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
		t.Fatalf("the target %s is not a block device: %v, mode %o", target, err, st.Mode)
	}
	if _, err := n.nodeSvc.NodeStageVolume(ctx, &csipb.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging + "-fs", VolumeCapability: mountCap}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("stage as a filesystem while staged as a block device: %v; want FAILED_PRECONDITION", err)
	}
	// Unstage refuses while the device is still published.
	if _, err := n.nodeSvc.NodeUnstageVolume(ctx, &csipb.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("unstage while published: %v; want FAILED_PRECONDITION", err)
	}

	want := alignedRandom(1 << 20)
	writeAt(t, target, want, 63<<20)
	unstage()
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Fatalf("unpublish left the target: %v", err)
	}
	stage()
	if got := readAt(t, target, len(want), 63<<20); !bytes.Equal(got, want) {
		t.Fatal("the data written to the block device is not there after unstage and stage")
	}

	// Grow: the device takes the new size at once; node expansion has
	// nothing more to do.
	er, err := n.ctrl.ControllerExpandVolume(ctx, &csipb.ControllerExpandVolumeRequest{VolumeId: id,
		CapacityRange: &csipb.CapacityRange{RequiredBytes: 128 << 20}, VolumeCapability: blockCap})
	if err != nil || er.GetCapacityBytes() != 128<<20 || er.GetNodeExpansionRequired() {
		t.Fatalf("ControllerExpandVolume (block): %v, %v", er, err)
	}
	if size := blockSize(t, target); size != 128<<20 {
		t.Fatalf("the published device has %d bytes after growing to 128 MiB", size)
	}
	stats, err := n.nodeSvc.NodeGetVolumeStats(ctx, &csipb.NodeGetVolumeStatsRequest{VolumeId: id, VolumePath: target})
	if err != nil || len(stats.GetUsage()) != 1 || stats.GetUsage()[0].GetTotal() != 128<<20 {
		t.Fatalf("NodeGetVolumeStats (block): %v, %v", stats.GetUsage(), err)
	}
	writeAt(t, target, want, 127<<20)
	if got := readAt(t, target, len(want), 127<<20); !bytes.Equal(got, want) {
		t.Fatal("the grown end of the device does not read back")
	}
	unstage()
	if _, err := n.ctrl.DeleteVolume(ctx, &csipb.DeleteVolumeRequest{VolumeId: id}); err != nil {
		t.Fatal(err)
	}
}

func alignedRandom(n int) []byte {
	b := block.Aligned(n)
	rand.Read(b)
	return b
}

func writeAt(t *testing.T, path string, b []byte, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func readAt(t *testing.T, path string, n int, off int64) []byte {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := alignedRandom(n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

// blockSize asks the kernel for the size of the block device at path.
func blockSize(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var size uint64
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size))); errno != 0 {
		t.Fatal(errno)
	}
	return int64(size)
}
