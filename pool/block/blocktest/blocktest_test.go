package blocktest

import (
	"bytes"
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
