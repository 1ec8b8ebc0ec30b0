package replica

import (
	"errors"
	"slices"
	"testing"

	"github.com/ballast-io/ballast/pool/bitset"
)

func members(s bitset.Set, n int64) []int64 {
	var out []int64
	for i := int64(0); i < n; i++ {
		if s.Has(i) {
			out = append(out, i)
		}
	}
	return out
}

// TestChanged: the units written or discarded between two snapshots (a
// discard of a block an older layer holds is a change), and
// no others; still so after a snapshot between them is deleted (merged),
// and after the replica is closed (layers read from disk).
func TestChanged(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const mib = 1 << 20
	r, err := s.Create("v", 32*mib)
	if err != nil {
		t.Fatal(err)
	}
	blk := make([]byte, 4096)
	blk[0] = 1
	write := func(off int64) {
		if _, err := r.WriteAt(blk, off); err != nil {
			t.Fatal(err)
		}
	}
	write(0)
	write(9 * mib) // discarded after b: a change
	if err := r.Snapshot("a"); err != nil {
		t.Fatal(err)
	}
	write(5 * mib)
	if err := r.Snapshot("b"); err != nil {
		t.Fatal(err)
	}
	if err := r.Discard(9*mib, 4096); err != nil {
		t.Fatal(err)
	}
	write(14*mib - 4096)
	if err := r.Snapshot("c"); err != nil {
		t.Fatal(err)
	}
	write(20 * mib) // after c: not a change between a and c
	check := func(from, to string, want ...int64) {
		t.Helper()
		got, err := s.Changed("v", from, to, 2*mib)
		if err != nil {
			t.Fatalf("Changed(%s, %s): %v", from, to, err)
		}
		if m := members(got, 16); !slices.Equal(m, want) {
			t.Errorf("Changed(%s, %s) = %v, want %v", from, to, m, want)
		}
	}
	check("a", "c", 2, 4, 6)
	check("a", "b", 2)
	check("b", "c", 4, 6)
	for _, bad := range [][2]string{{"c", "a"}, {"a", "a"}, {"a", "zz"}} {
		if _, err := s.Changed("v", bad[0], bad[1], 2*mib); !errors.Is(err, ErrNotFound) {
			t.Errorf("Changed(%s, %s): %v, want ErrNotFound", bad[0], bad[1], err)
		}
	}
	if err := r.DeleteSnapshot("b"); err != nil {
		t.Fatal(err)
	}
	check("a", "c", 2, 4, 6)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	check("a", "c", 2, 4, 6)
}
