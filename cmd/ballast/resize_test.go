package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/hostfs"
	"github.com/ballast-io/ballast/pool/spec"
)

// TestResize grows volumes on a real daemon: mounted (online: df sees the
// new size at once, where the kernel lets the daemon), detached (grows at
// the next attach), with the data verified by fio and the filesystem
// checked; a snapshot taken before keeps its size in its clone; shrinking
// and bad sizes are refused.
func TestResize(t *testing.T) {
	for _, fs := range []string{"xfs", "ext4"} {
		t.Run(fs, func(t *testing.T) { testResize(t, fs) })
	}
}

func testResize(t *testing.T, fs string) {
	d := startDaemon(t)
	ctx := d.ctx()
	c := d.client
	const small = 320 << 20
	if _, err := c.CreateVolume(ctx, spec.Volume{Name: "r1", Size: small, Repl: 2, FS: fs}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	att, err := c.AttachVolume(ctx, "r1", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mnt := att.MountPath
	fioWrite(t, filepath.Join(mnt, "a"), "64M", 1)
	before := dfBytes(t, mnt)
	if _, err := c.CreateSnapshot(ctx, "r1", "small"); err != nil {
		t.Fatal(err)
	}

	// Online, through the CLI.
	out, err := d.cli("volume", "resize", "r1", "--size", "1G")
	online := fs == "xfs" || hostfs.CanGrowExt4Online()
	switch {
	case online && err != nil:
		t.Fatalf("resize of the mounted volume: %v\n%s", err, out)
	case online:
		if !strings.Contains(out, "1GiB") || !strings.Contains(out, "grown online") {
			t.Errorf("resize output %q", out)
		}
	case err == nil || !strings.Contains(out, "CAP_SYS_RESOURCE") || !strings.Contains(out, "next attach"):
		t.Fatalf("ext4 resize without CAP_SYS_RESOURCE: err %v, output %q; want an error naming the capability and the next attach", err, out)
	default:
		t.Logf("ext4 without CAP_SYS_RESOURCE: %s", strings.TrimSpace(out))
		if got := dfBytes(t, mnt); got != before {
			t.Fatalf("df changed to %d bytes though the growth was refused", got)
		}
		if err := c.DetachVolume(ctx, "r1"); err != nil {
			t.Fatal(err)
		}
		if att, err = c.AttachVolume(ctx, "r1", api.AttachOptions{}); err != nil {
			t.Fatalf("attach after a refused online growth: %v", err)
		}
	}
	v, err := c.InspectVolume(ctx, "r1")
	if err != nil || v.Size != 1<<30 {
		t.Fatalf("inspect after resize: size %d, %v", v.Size, err)
	}
	grown := dfBytes(t, mnt)
	t.Logf("%s: df %d -> %d bytes", fs, before, grown)
	if grown < before+512<<20 {
		t.Fatalf("df shows %d bytes after growing to 1 GiB (before: %d)", grown, before)
	}
	fioVerify(t, filepath.Join(mnt, "a"), "64M", 1)
	// Space the volume did not have before: more than its old size.
	big := append(fioArgs(filepath.Join(mnt, "b"), "400M", 2), "--rw=write", "--bs=1M")
	run(t, "fio", append(big, "--end_fsync=1")...)
	// The same size again: nothing to do.
	if v, err := c.ResizeVolume(ctx, "r1", 1<<30); err != nil || v.Size != 1<<30 {
		t.Fatalf("resize to the same size: %v", err)
	}

	// Refusals, with nothing changed.
	if _, err := c.ResizeVolume(ctx, "r1", 512<<20); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "only grow") {
		t.Errorf("shrink: %v", err)
	}
	if out, err := d.cli("volume", "resize", "r1", "--size", "lots"); err == nil || !strings.Contains(out, "unknown unit") {
		t.Errorf("bad size: %v %q", err, out)
	}
	if out, err := d.cli("volume", "resize", "r1"); err == nil || !strings.Contains(out, "--size is required") {
		t.Errorf("no size: %v %q", err, out)
	}
	if _, err := c.ResizeVolume(ctx, "nope", 1<<30); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("resize of a missing volume: %v", err)
	}
	if _, err := c.ResizeVolume(ctx, "r1", 900<<40); !errors.Is(err, api.ErrNoCapacity) {
		t.Errorf("resize beyond the pool: %v", err)
	}
	if v, _ := c.InspectVolume(ctx, "r1"); v.Size != 1<<30 {
		t.Fatalf("refused resizes changed the size to %d", v.Size)
	}

	// Detached: the record grows at once, the replicas and the filesystem
	// at the next attach.
	if err := c.DetachVolume(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	out, err = d.cli("volume", "resize", "r1", "--size", "1536M")
	if err != nil || !strings.Contains(out, "grows when next attached") {
		t.Fatalf("resize of a detached volume: %v %q", err, out)
	}
	if att, err = c.AttachVolume(ctx, "r1", api.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := dfBytes(t, mnt); got < grown+400<<20 {
		t.Fatalf("after growing detached to 1.5 GiB and attaching, df shows %d bytes (was %d)", got, grown)
	}
	fioVerify(t, filepath.Join(mnt, "a"), "64M", 1)
	run(t, "fio", append(big, "--verify_only")...)
	if err := c.DetachVolume(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	checkFS(t, d, "r1", fs)

	// The snapshot from before keeps the old size; its clone has it and the
	// old content, and grows like any volume.
	snaps, err := c.ListSnapshots(ctx, "r1")
	if err != nil || len(snaps) != 1 || snaps[0].Size != small {
		t.Fatalf("snapshot list: %+v %v; want one of %d bytes", snaps, err, small)
	}
	cl, err := c.CreateVolume(ctx, spec.Volume{Name: "r1c", FromSnapshot: "r1@small"}, api.CreateOptions{})
	if err != nil || cl.Size != small {
		t.Fatalf("clone of the small snapshot: %+v %v", cl, err)
	}
	catt, err := c.AttachVolume(ctx, "r1c", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fioVerify(t, filepath.Join(catt.MountPath, "a"), "64M", 1)
	if _, err := os.Stat(filepath.Join(catt.MountPath, "b")); !os.IsNotExist(err) {
		t.Fatalf("the clone of a snapshot from before b was written has b: %v", err)
	}
	if err := c.DetachVolume(ctx, "r1c"); err != nil {
		t.Fatal(err)
	}
}

// dfBytes is the size of the filesystem mounted at path, as df shows it.
func dfBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks) * st.Bsize
}

// checkFS attaches a detached volume raw and checks its filesystem
// read-only (e2fsck -fn or xfs_repair -n).
func checkFS(t *testing.T, d *daemon, vol, fs string) {
	t.Helper()
	ctx := d.ctx()
	att, err := d.client.AttachVolume(ctx, vol, api.AttachOptions{Block: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.client.DetachVolume(ctx, vol)
	if !att.Block || !strings.HasPrefix(att.Device, "/dev/loop") || att.MountPath != "" {
		t.Fatalf("raw attach: %+v", att)
	}
	cmd := exec.Command("e2fsck", "-fn", att.Device)
	if fs == "xfs" {
		cmd = exec.Command("xfs_repair", "-n", att.Device)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	// The raw device shows the whole volume.
	v, _ := d.client.InspectVolume(ctx, vol)
	if size, err := hostfs.DeviceSize(att.Device); err != nil || size != v.Size {
		t.Fatalf("raw device has %d bytes (%v), the volume %d", size, err, v.Size)
	}
	if !strings.Contains(v.Attachment.Device, "/dev/loop") {
		t.Fatalf("inspect does not name the device: %+v", v.Attachment)
	}
}

// TestResizeFromAnotherNode resizes, through the CLI of node b, a volume
// attached on node a: a grows it and its mounted filesystem online. With
// a down, the resize is refused with an error naming a.
func TestResizeFromAnotherNode(t *testing.T) {
	nodes, _ := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	ctx := a.ctx()
	if _, err := a.client.CreateVolume(ctx, spec.Volume{Name: "far", Size: 320 << 20, Repl: 2, FS: "xfs"}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	att, err := a.client.AttachVolume(ctx, "far", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fioWrite(t, filepath.Join(att.MountPath, "a"), "32M", 5)
	before := dfBytes(t, att.MountPath)
	out, err := b.cli("volume", "resize", "far", "--size", "1G")
	if err != nil || !strings.Contains(out, "1GiB") {
		t.Fatalf("resize on b of a volume attached on a: %v\n%s", err, out)
	}
	if after := dfBytes(t, att.MountPath); after < before+512<<20 {
		t.Fatalf("df on a after the resize from b: %d bytes, before %d", after, before)
	}
	if v, err := b.client.InspectVolume(ctx, "far"); err != nil || v.Size != 1<<30 {
		t.Fatalf("inspect on b: %v", err)
	}
	fioVerify(t, filepath.Join(att.MountPath, "a"), "32M", 5)
	if _, err := b.client.ResizeVolume(ctx, "far", 512<<20); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("shrink from b: %v", err)
	}

	a.kill9()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := b.client.ResizeVolume(ctx, "far", 2<<30)
		if errors.Is(err, api.ErrInUse) && strings.Contains(err.Error(), "node a, which is down") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("resize from b with a down: %v; want an error saying a is down", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if v, _ := b.client.InspectVolume(ctx, "far"); v.Size != 1<<30 {
		t.Fatalf("a refused resize changed the size to %d", v.Size)
	}
}
