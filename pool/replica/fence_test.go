package replica

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestOwnerFenced: an owner attached at epoch 1 reads, writes and flushes;
// once the replica is fenced at 2 every operation of that owner is refused
// with ErrFenced and changes nothing, also after a reopen; an owner at 2
// (or later) works.
func TestOwnerFenced(t *testing.T) {
	s := newStore(t)
	r := create(t, s, "v", 1<<20)
	if err := r.Fence(1); err != nil {
		t.Fatal(err)
	}
	o1 := r.Owner(1)
	p := fill("epoch1", 0, 4)
	if _, err := o1.WriteAt(p, 0); err != nil {
		t.Fatalf("write at the replica's epoch: %v", err)
	}
	if err := o1.Flush(); err != nil {
		t.Fatalf("flush at the replica's epoch: %v", err)
	}
	got := make([]byte, len(p))
	if _, err := o1.ReadAt(got, 0); err != nil || !bytes.Equal(got, p) {
		t.Fatalf("read at the replica's epoch: %v (equal %v)", err, bytes.Equal(got, p))
	}
	if err := o1.Snapshot("s1"); err != nil {
		t.Fatalf("snapshot at the replica's epoch: %v", err)
	}

	if err := r.Fence(2); err != nil {
		t.Fatal(err)
	}
	checkFenced := func(o Owner) {
		t.Helper()
		for name, err := range map[string]error{
			"write":           second(o.WriteAt(fill("stale", 0, 4), 0)),
			"empty write":     second(o.WriteAt(nil, 0)),
			"read":            second(o.ReadAt(make([]byte, bs), 0)),
			"flush":           o.Flush(),
			"discard":         o.Discard(0, 4*bs),
			"repair":          o.Repair(0, fill("stale", 0, 1)),
			"snapshot":        o.Snapshot("s2"),
			"delete snapshot": o.DeleteSnapshot("s1"),
			"resize":          o.Resize(2 << 20),
		} {
			if !errors.Is(err, ErrFenced) {
				t.Errorf("%s at epoch %d on a replica at epoch %d: %v, want ErrFenced", name, o.Epoch(), r.Epoch(), err)
			}
		}
	}
	checkFenced(o1)
	expect(t, r, 0, p) // nothing of the stale owner landed
	if r.Size() != 1<<20 || len(r.Snapshots()) != 1 {
		t.Fatalf("after refused operations: size %d, snapshots %v", r.Size(), r.Snapshots())
	}

	for _, e := range []uint64{2, 3} { // the new owner, and a later one not fenced yet
		o := r.Owner(e)
		q := fill("epoch2", 0, 4)
		if _, err := o.WriteAt(q, 0); err != nil {
			t.Fatalf("write at epoch %d: %v", e, err)
		}
		if err := o.Flush(); err != nil {
			t.Fatalf("flush at epoch %d: %v", e, err)
		}
		if _, err := o.ReadAt(got, 0); err != nil || !bytes.Equal(got, q) {
			t.Fatalf("read at epoch %d: %v", e, err)
		}
	}

	// The fence holds across a reopen.
	r.Close()
	s2, err := OpenStore(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s2.Open("v")
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	checkFenced(r2.Owner(1))
	if _, err := r2.Owner(2).WriteAt(fill("after reopen", 0, 1), 0); err != nil {
		t.Fatalf("write at epoch 2 after reopen: %v", err)
	}
}

// TestOwnerFenceRace: writers at epoch 1 write as fast as they can while
// the replica is fenced at 2. Once Fence has returned, no write of epoch 1
// lands: every block holds the last write that succeeded on it, and the
// content read right after Fence returned never changes.
func TestOwnerFenceRace(t *testing.T) {
	s := newStore(t)
	const writers, per = 8, 16 // each writer owns per blocks
	r := create(t, s, "v", writers*per*bs)
	if err := r.Fence(1); err != nil {
		t.Fatal(err)
	}
	o1 := r.Owner(1)
	// A block's content: writer, sequence number.
	blk := func(w int, seq uint64) []byte {
		p := make([]byte, bs)
		binary.LittleEndian.PutUint64(p, uint64(w)+1)
		binary.LittleEndian.PutUint64(p[8:], seq)
		return p
	}
	var stop atomic.Bool
	var wrote atomic.Int64 // successful writes, so the fence lands mid-stream
	var wg sync.WaitGroup
	last := make([][]uint64, writers) // per writer and block: last seq acknowledged, 0 none
	late := make([]int, writers)      // writes tried after the first refusal
	for w := range writers {
		last[w] = make([]uint64, per)
		wg.Go(func() {
			refused := false
			for seq := uint64(1); !stop.Load(); seq++ {
				i := int(seq % per)
				_, err := o1.WriteAt(blk(w, seq), int64(w*per+i)*bs)
				switch {
				case err == nil && refused:
					t.Errorf("writer %d: write of seq %d succeeded after an earlier one was refused", w, seq)
					return
				case err == nil:
					last[w][i] = seq
					wrote.Add(1)
				case errors.Is(err, ErrFenced):
					refused = true
					late[w]++
				default:
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	for wrote.Load() < 2000 {
		time.Sleep(time.Millisecond)
	}
	if err := r.Fence(2); err != nil {
		t.Fatal(err)
	}
	after := make([]byte, writers*per*bs)
	if _, err := r.ReadAt(after, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // epoch-1 writers keep trying
	stop.Store(true)
	wg.Wait()
	final := make([]byte, len(after))
	if _, err := r.ReadAt(final, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after, final) {
		t.Fatal("the replica changed after Fence returned: an epoch-1 write landed")
	}
	for w := range writers {
		if late[w] == 0 {
			t.Errorf("writer %d was never refused", w)
		}
		for i := range per {
			var want []byte
			if last[w][i] == 0 {
				want = make([]byte, bs)
			} else {
				want = blk(w, last[w][i])
			}
			off := (w*per + i) * bs
			if got := final[off : off+bs]; !bytes.Equal(got, want) {
				t.Errorf("writer %d block %d: holds writer %d seq %d, last acknowledged seq %d",
					w, i, binary.LittleEndian.Uint64(got)-1, binary.LittleEndian.Uint64(got[8:]), last[w][i])
			}
		}
	}
}
