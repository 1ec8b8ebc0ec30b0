package blocktest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ballast-io/ballast/pool/block"
)

func TestFillNamesBlocks(t *testing.T) {
	a := Fill("a", 3, 2)
	if len(a) != 2*block.Size || !bytes.HasPrefix(a, []byte("a block 3 ")) || !bytes.HasPrefix(a[block.Size:], []byte("a block 4 ")) {
		t.Fatalf("Fill(a, 3, 2) starts %q and %q", a[:12], a[block.Size:block.Size+12])
	}
	if bytes.Equal(Fill("a", 3, 1), Fill("b", 3, 1)) || bytes.Equal(Fill("a", 3, 1), Fill("a", 4, 1)) {
		t.Error("blocks of other tags or numbers are equal")
	}
	d := block.NewMem(16 * block.Size)
	w := Write(t, d, "x", 5, 3)
	if got := Read(t, d, 5, 3); !bytes.Equal(got, w) {
		t.Error("read back differs from what was written")
	}
	if got := Read(t, d, 4, 1); bytes.Equal(got, Fill("x", 4, 1)) {
		t.Error("a block never written reads as written")
	}
}

// onlyDevice hides every method of a Mem but the Device ones.
type onlyDevice struct{ block.Device }

func TestReplicaAdapter(t *testing.T) {
	r := Replica(onlyDevice{block.NewMem(4 * block.Size)})
	good := Fill("g", 1, 1)
	if err := r.Repair(block.Size, good); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(Read(t, r, 1, 1), good) {
		t.Error("Repair of a plain device did not write the good block")
	}
	if err := r.Resize(8 * block.Size); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Resize of a device that cannot grow: %v", err)
	}
	if err := r.Snapshot("s"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Snapshot: %v", err)
	}
	grows := Replica(block.NewMem(4 * block.Size))
	if err := grows.Resize(8 * block.Size); err != nil || grows.Size() != 8*block.Size {
		t.Errorf("Resize of a Mem: %v, size %d", err, grows.Size())
	}
}
