package frontend_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/hostfs"
	"github.com/ballast-io/ballast/pool/spec"
)

func TestGrowMountedExt4(t *testing.T) { testGrowMounted(t, "ext4", 128<<20) }
func TestGrowMountedXFS(t *testing.T)  { testGrowMounted(t, "xfs", 320<<20) }

// testGrowMounted grows the device under a mounted filesystem and checks
// that the filesystem sees the new space at once, keeps its files, and can
// fill space beyond the old size. An ext4 filesystem grows online only
// where this process has CAP_SYS_RESOURCE (the kernel's rule); without it
// Grow must say so (ErrGrowAtAttach), and the filesystem must have grown
// once detached and attached again.
func testGrowMounted(t *testing.T, fstype string, size int64) {
	en := newEnv(t, "mkfs."+fstype)
	mem := block.NewMem(size)
	mp := filepath.Join(en.mountRoot, "g")
	devPath, err := en.att.Attach(bg, spec.MustName("g"), mem, fstype, mp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := en.att.Detach(bg, spec.MustName("g"), mp); err != nil {
			t.Error(err)
		}
	})
	files := writeFiles(t, mp, 10)
	before := fsBytes(t, mp)

	if err := mem.Resize(3 * size); err != nil {
		t.Fatal(err)
	}
	online := fstype == "xfs" || hostfs.CanGrowExt4Online()
	err = en.att.Grow(bg, spec.MustName("g"))
	switch {
	case online && err != nil:
		t.Fatalf("grow: %v", err)
	case !online && !errors.Is(err, hostfs.ErrGrowAtAttach):
		t.Fatalf("grow of ext4 without CAP_SYS_RESOURCE: err = %v, want ErrGrowAtAttach", err)
	case !online:
		t.Logf("online ext4 growth refused as expected without CAP_SYS_RESOURCE: %v", err)
		if got := fsBytes(t, mp); got != before {
			t.Fatalf("filesystem changed size to %d though growth was refused", got)
		}
		if err := en.att.Detach(bg, spec.MustName("g"), mp); err != nil {
			t.Fatal(err)
		}
		if devPath, err = en.att.Attach(bg, spec.MustName("g"), mem, fstype, mp); err != nil {
			t.Fatalf("attach after growing detached: %v", err)
		}
	}
	if got, err := hostfs.DeviceSize(devPath); err != nil || got != 3*size {
		t.Fatalf("device size after grow = %d, %v; want %d", got, err, 3*size)
	}
	after := fsBytes(t, mp)
	t.Logf("%s: filesystem %d -> %d bytes", fstype, before, after)
	if after < before+size { // grew by 2x size, less metadata
		t.Fatalf("filesystem did not grow: %d -> %d bytes", before, after)
	}
	checkFiles(t, files)
	// Space only the grown filesystem has.
	big := make([]byte, size+size/2)
	rand.Read(big)
	name := filepath.Join(mp, "big")
	if err := os.WriteFile(name, big, 0o644); err != nil {
		t.Fatalf("write %d bytes into the grown filesystem: %v", len(big), err)
	}
	unix.Sync()
	// Idempotent: nothing more to grow.
	if err := en.att.Grow(bg, spec.MustName("g")); err != nil {
		t.Fatalf("second grow: %v", err)
	}
	// Detach and attach again: the filesystem is the grown one.
	if err := en.att.Detach(bg, spec.MustName("g"), mp); err != nil {
		t.Fatal(err)
	}
	if _, err := en.att.Attach(bg, spec.MustName("g"), mem, fstype, mp); err != nil {
		t.Fatal(err)
	}
	if got := fsBytes(t, mp); got != after {
		t.Fatalf("filesystem after re-attach has %d bytes, before %d", got, after)
	}
	got, err := os.ReadFile(name)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("big file after re-attach: %v, equal %v", err, bytes.Equal(got, big))
	}
	checkFiles(t, files)
}

func fsBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks) * st.Bsize
}

// TestAttachBlock attaches a device raw: what is written to the block
// device reaches the Device, nothing is formatted, and it grows.
func TestAttachBlock(t *testing.T) {
	en := newEnv(t)
	const size = 64 << 20
	mem := block.NewMem(size)
	devPath, err := en.att.AttachBlock(bg, spec.MustName("raw"), mem)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := en.att.Detach(bg, spec.MustName("raw"), ""); err != nil {
			t.Error(err)
		}
	})
	if again, err := en.att.AttachBlock(bg, spec.MustName("raw"), mem); err != nil || again != devPath {
		t.Fatalf("second AttachBlock = %q, %v; want %q", again, err, devPath)
	}
	if _, err := en.att.Attach(bg, spec.MustName("raw"), mem, "ext4", filepath.Join(en.mountRoot, "raw")); err == nil {
		t.Fatal("Attach with a filesystem of a volume attached raw succeeded")
	}
	head := make([]byte, 4096)
	if _, err := mem.ReadAt(head, 0); err != nil || !bytes.Equal(head, make([]byte, 4096)) {
		t.Fatalf("a raw attach wrote to the device (a filesystem?): %v", err)
	}
	want := alignedBuf(1 << 20)
	rand.Read(want)
	f, err := os.OpenFile(devPath, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(want, size-(1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := mem.ReadAt(got, size-(1<<20)); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("data written to %s is not on the device: %v", devPath, err)
	}
	if err := mem.Resize(2 * size); err != nil {
		t.Fatal(err)
	}
	if err := en.att.Grow(bg, spec.MustName("raw")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(want, 2*size-(1<<20)); err != nil {
		t.Fatalf("write to the grown end of %s: %v", devPath, err)
	}
	if _, err := mem.ReadAt(got, 2*size-(1<<20)); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("data written to the grown end is not on the device: %v", err)
	}
}
