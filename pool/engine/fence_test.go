package engine

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/block/blocktest"
	"github.com/ballast-io/ballast/pool/replica"
)

// TestFencedLocalReplica: an engine whose replicas are local ones opened at
// epoch 1 (replica.Owner) works until another owner fences them at 2; then
// its write fails with ErrFenced without reaching a replica or calling the
// DropFunc, even on a single replica, and every later I/O fails at once.
// An engine at epoch 2 over the same replicas works.
func TestFencedLocalReplica(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("replicas=%d", n), func(t *testing.T) {
			st, err := replica.OpenStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			var reps []*replica.Replica
			var members []Member
			for i := range n {
				r, err := st.Create(fmt.Sprint("r", i), 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { r.Close() })
				if err := r.Fence(1); err != nil {
					t.Fatal(err)
				}
				reps = append(reps, r)
				members = append(members, Member{r.ID(), blocktest.Replica(r.Owner(1))})
			}
			drops := 0
			drop := func(string, error) error { drops++; return nil }
			e, err := New("v", members, drop, quiet)
			if err != nil {
				t.Fatal(err)
			}
			p1 := pattern(block.Size, 1)
			if _, err := e.WriteAt(p1, 0); err != nil {
				t.Fatal(err)
			}
			if err := e.Flush(); err != nil {
				t.Fatal(err)
			}

			for _, r := range reps { // the takeover
				if err := r.Fence(2); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := e.WriteAt(pattern(block.Size, 2), 0); !errors.Is(err, ErrFenced) {
				t.Fatalf("write after the takeover: %v, want ErrFenced", err)
			}
			for name, err := range map[string]error{
				"write":   func() error { _, err := e.WriteAt(pattern(block.Size, 3), 0); return err }(),
				"read":    func() error { _, err := e.ReadAt(make([]byte, block.Size), 0); return err }(),
				"flush":   e.Flush(),
				"discard": e.Discard(0, block.Size),
			} {
				if !errors.Is(err, ErrFenced) {
					t.Errorf("%s on a fenced volume: %v, want ErrFenced", name, err)
				}
			}
			if drops != 0 || len(e.InSync()) != n {
				t.Errorf("fenced replicas were dropped: %d drops, in sync %v", drops, e.InSync())
			}
			for _, r := range reps {
				got := make([]byte, block.Size)
				if _, err := r.ReadAt(got, 0); err != nil || !bytes.Equal(got, p1) {
					t.Fatalf("replica %s after the fenced writes: %v, content changed: %v", r.ID(), err, !bytes.Equal(got, p1))
				}
			}

			var members2 []Member
			for _, r := range reps {
				members2 = append(members2, Member{r.ID(), blocktest.Replica(r.Owner(2))})
			}
			e2, err := New("v", members2, drop, quiet)
			if err != nil {
				t.Fatal(err)
			}
			p4 := pattern(block.Size, 4)
			if _, err := e2.WriteAt(p4, 0); err != nil {
				t.Fatalf("write of the new owner: %v", err)
			}
			got := make([]byte, block.Size)
			if _, err := e2.ReadAt(got, 0); err != nil || !bytes.Equal(got, p4) {
				t.Fatalf("read of the new owner: %v", err)
			}
		})
	}
}
