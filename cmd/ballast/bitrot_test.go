package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/hostfs"
	"github.com/ballast-io/ballast/pool/spec"
)

// layerFile returns the data file of the head layer of replica r.
func layerFile(t *testing.T, pools []api.Pool, r api.Replica) string {
	t.Helper()
	for _, p := range pools {
		if p.ID != r.Pool {
			continue
		}
		b, err := os.ReadFile(filepath.Join(p.Dir, "replicas", r.ID+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var m struct{ Layers []string }
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(p.Dir, "layers", m.Layers[len(m.Layers)-1]+".data")
	}
	t.Fatalf("pool %s of replica %s not found", r.Pool, r.ID)
	return ""
}

// dataBlocks returns offsets of up to n allocated 4 KiB blocks of f, spread
// over its data.
func dataBlocks(t *testing.T, f *os.File, n int) []int64 {
	t.Helper()
	var all []int64
	st, _ := f.Stat()
	for off := int64(0); off < st.Size(); {
		start, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if err != nil {
			break
		}
		end, err := unix.Seek(int(f.Fd()), start, unix.SEEK_HOLE)
		if err != nil {
			t.Fatal(err)
		}
		for b := start &^ 4095; b < end; b += 4096 {
			all = append(all, b)
		}
		off = end
	}
	if len(all) < n {
		t.Fatalf("only %d data blocks", len(all))
	}
	var out []int64
	for i := range n {
		out = append(out, all[i*len(all)/n])
	}
	return out
}

// TestBitRot flips bytes in one replica's data file behind the daemon's
// back: reads still return correct data, the bad blocks are repaired from
// the other replica, and the repairs are counted.
func TestBitRot(t *testing.T) {
	d := startDaemon(t)
	ctx := d.ctx()
	c := d.client
	if _, err := c.CreateVolume(ctx, spec.Volume{Name: "rot", Size: 1 << 30, Repl: 2}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	att, err := c.AttachVolume(ctx, "rot", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fioWrite(t, filepath.Join(att.MountPath, "a"), "64M", 11)
	if err := c.DetachVolume(ctx, "rot"); err != nil {
		t.Fatal(err)
	}
	v, err := c.InspectVolume(ctx, "rot")
	if err != nil {
		t.Fatal(err)
	}
	pools, err := c.ListPools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bad := layerFile(t, pools, v.Replicas[0]) // the replica reads go to first
	good := layerFile(t, pools, v.Replicas[1])
	f, err := os.OpenFile(bad, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	flipped := dataBlocks(t, f, 32)
	for _, off := range flipped {
		b := make([]byte, 1)
		f.ReadAt(b, off+100)
		b[0] ^= 0xff
		if _, err := f.WriteAt(b, off+100); err != nil {
			t.Fatal(err)
		}
	}
	f.Sync()
	f.Close()

	att, err = c.AttachVolume(ctx, "rot", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := hostfs.MountSource(att.MountPath)
	if err != nil {
		t.Fatal(err)
	}
	run(t, "dd", "if="+dev, "of=/dev/null", "bs=1M", "iflag=direct") // read every block once
	fioVerify(t, filepath.Join(att.MountPath, "a"), "64M", 11)
	v, err = c.InspectVolume(ctx, "rot")
	if err != nil {
		t.Fatal(err)
	}
	if v.Repairs < int64(len(flipped))/2 {
		t.Fatalf("%d blocks flipped, %d repairs counted", len(flipped), v.Repairs)
	}
	if err := c.DetachVolume(ctx, "rot"); err != nil {
		t.Fatal(err)
	}
	if v, _ = c.InspectVolume(ctx, "rot"); v.Repairs < int64(len(flipped))/2 {
		t.Fatalf("repair count not kept after detach: %d", v.Repairs)
	}
	// The repaired replica holds the good bytes again wherever it was read.
	bf, err := os.Open(bad)
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	gf, err := os.Open(good)
	if err != nil {
		t.Fatal(err)
	}
	defer gf.Close()
	healed := 0
	for _, off := range flipped {
		x, y := make([]byte, 4096), make([]byte, 4096)
		bf.ReadAt(x, off)
		gf.ReadAt(y, off)
		if bytes.Equal(x, y) {
			healed++
		}
	}
	if int64(healed) < v.Repairs && healed < len(flipped)/2 {
		t.Fatalf("only %d of %d flipped blocks are healed on disk", healed, len(flipped))
	}
	t.Logf("%d blocks flipped, %d repaired, %d healed on disk", len(flipped), v.Repairs, healed)
}

// TestScrub flips bytes in the replica that reads never come from (the
// second): only a scrub can find them; with --scrub-interval 2s the daemon
// repairs them without any read by the user.
func TestScrub(t *testing.T) {
	d := startDaemon(t, "--scrub-interval", "2s")
	ctx := d.ctx()
	c := d.client
	if _, err := c.CreateVolume(ctx, spec.Volume{Name: "scrub", Size: 256 << 20, Repl: 2}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	att, err := c.AttachVolume(ctx, "scrub", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fioWrite(t, filepath.Join(att.MountPath, "a"), "32M", 71)
	if err := c.DetachVolume(ctx, "scrub"); err != nil {
		t.Fatal(err)
	}
	v, _ := c.InspectVolume(ctx, "scrub")
	pools, _ := c.ListPools(ctx)
	f, err := os.OpenFile(layerFile(t, pools, v.Replicas[1]), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	flipped := dataBlocks(t, f, 8)
	for _, off := range flipped {
		b := make([]byte, 1)
		f.ReadAt(b, off+7)
		b[0] ^= 0x5a
		f.WriteAt(b, off+7)
	}
	f.Close()
	if _, err := c.AttachVolume(ctx, "scrub", api.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); ; time.Sleep(500 * time.Millisecond) {
		v, err := c.InspectVolume(ctx, "scrub")
		if err != nil {
			t.Fatal(err)
		}
		if v.Repairs >= int64(len(flipped))/2 { // the filesystem may rewrite some first
			t.Logf("scrub repaired %d blocks", v.Repairs)
			return
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("%d blocks flipped in the second replica, %d repaired after 30s of scrubbing", len(flipped), v.Repairs)
		}
	}
}
