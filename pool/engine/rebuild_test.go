package engine

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/ballast-io/ballast/pool/block"
)

// startWriters starts n goroutines writing random 4 KiB blocks to e until
// the returned stop is called (it waits for them). Writer w writes only
// blocks whose number is w modulo n: two writes in flight at once never
// overlap, as a filesystem's never do. (Overlapping writes in flight
// together have no defined order, on one disk or across replicas, and
// replicas may end up holding different ones of them: with them the
// comparisons of replicas below failed about once in fifty runs.)
func startWriters(t *testing.T, e *Engine, n int, seed uint64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), seed))
			for {
				select {
				case <-done:
					return
				default:
				}
				blocks := e.Size() / block.Size / int64(n)
				off := (r.Int64N(blocks)*int64(n) + int64(w)) * block.Size
				if _, err := e.WriteAt(pattern(block.Size, byte(r.Uint32())), off); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	return func() { close(done); wg.Wait() }
}

// TestRebuildDuringWrites fills a new replica while writers keep changing
// the volume: when the rebuild ends, the new replica is byte-for-byte the
// old one and serves as an in-sync member.
func TestRebuildDuringWrites(t *testing.T) {
	const size = 8 << 20
	src := block.NewMem(size)
	e, _ := New("v", []Member{{"a", src}}, nil, quiet)
	for off := int64(0); off < size/2; off += 64 << 10 { // half the volume has data
		e.WriteAt(pattern(64<<10, byte(off>>16)), off)
	}
	target := block.NewMem(size)
	promoted := false
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := startWriters(t, e, 4, 1)
	rb, err := e.Rebuild(ctx, Member{"c", target}, 0, func() error { promoted = true; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := rb.Wait(); err != nil {
		t.Fatal(err)
	}
	stop()
	if !promoted || !slices.Contains(e.InSync(), "c") {
		t.Fatalf("promoted %v, in sync %v", promoted, e.InSync())
	}
	if p := rb.Progress(); p.Done != p.Total || p.Total != size {
		t.Fatalf("progress %+v", p)
	}
	a, c := make([]byte, size), make([]byte, size)
	src.ReadAt(a, 0)
	target.ReadAt(c, 0)
	if !bytes.Equal(a, c) {
		t.Fatal("the rebuilt replica differs from its source")
	}
}

// TestSecondRebuildRefused: while one rebuild runs (held back by its rate
// limit), another is refused; cancelled, the first ends and frees the way.
func TestSecondRebuildRefused(t *testing.T) {
	const size = 8 << 20
	e, _ := New("v", []Member{{"a", block.NewMem(size)}}, nil, quiet)
	e.WriteAt(pattern(size, 1), 0) // data in every chunk
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rb, err := e.Rebuild(ctx, Member{"c", block.NewMem(size)}, 64<<10, func() error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Rebuild(context.Background(), Member{"d", block.NewMem(size)}, 0, nil); err == nil {
		t.Fatal("a second rebuild started while one runs")
	}
	cancel()
	if err := rb.Wait(); err == nil {
		t.Fatal("a cancelled rebuild succeeded")
	}
	if e.Rebuilding() != nil || slices.Contains(e.InSync(), "c") {
		t.Fatalf("after the cancelled rebuild: rebuilding %v, in sync %v", e.Rebuilding(), e.InSync())
	}
}

func TestRebuildTargetFailureSparesWrites(t *testing.T) {
	const size = 4 << 20
	e, _ := New("v", []Member{{"a", block.NewMem(size)}}, nil, quiet)
	target := &flaky{Replica: block.NewMem(size), failWrite: true}
	e.WriteAt(pattern(block.Size, 1), 0) // so the copier has data to write
	rb, err := e.Rebuild(context.Background(), Member{"c", target}, 1<<20, func() error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.WriteAt(pattern(block.Size, 2), block.Size); err != nil {
		t.Fatalf("a foreground write failed because the rebuild target did: %v", err)
	}
	if err := rb.Wait(); err == nil {
		t.Fatal("rebuild onto a failing replica succeeded")
	}
	if slices.Contains(e.InSync(), "c") {
		t.Fatal("a failed rebuild target joined the in-sync set")
	}
}

func TestRebuildPromoteRefused(t *testing.T) {
	e, _ := New("v", []Member{{"a", block.NewMem(1 << 20)}}, nil, quiet)
	rb, _ := e.Rebuild(context.Background(), Member{"c", block.NewMem(1 << 20)}, 0, func() error { return errors.New("etcd says no") })
	if err := rb.Wait(); err == nil || slices.Contains(e.InSync(), "c") {
		t.Fatalf("rebuild with a refused promotion: %v, in sync %v", err, e.InSync())
	}
	if e.Rebuilding() != nil {
		t.Fatal("rebuild still registered after it ended")
	}
}

// TestScrubRepairsEveryReplica: bit rot on the replica that reads never
// come from is found and repaired by a scrub.
func TestScrubRepairsEveryReplica(t *testing.T) {
	a := &flaky{Replica: block.NewMem(4 << 20)}
	b := &flaky{Replica: block.NewMem(4 << 20), corrupt: map[int64]bool{}}
	e, _ := New("v", []Member{{"a", a}, {"b", b}}, nil, quiet)
	e.WriteAt(pattern(8*block.Size, 3), 0)
	b.corrupt[2*block.Size] = true
	b.corrupt[3<<20] = true
	n, err := e.Scrub(context.Background(), 0)
	if err != nil || n != 2 || len(b.repaired) != 2 {
		t.Fatalf("scrub repaired %d (%v), replica b saw repairs at %v", n, err, b.repaired)
	}
	if n, _ := e.Scrub(context.Background(), 0); n != 0 {
		t.Fatalf("second scrub repaired %d more", n)
	}
}

// TestCatchUp: a replica drops out on a failed write, misses writes and a
// discard, and had lost a write it never flushed; CatchUp copies exactly
// the chunks it missed (plus the unflushed one) while writers go on, and
// it ends byte-for-byte equal to the in-sync replica.
func TestCatchUp(t *testing.T) {
	const size = 16 << 20
	const chunk = rebuildChunk
	a := block.NewMem(size)
	bmem := block.NewMem(size)
	b := &flaky{Replica: bmem}
	e, _ := New("v", []Member{{"a", a}, {"b", b}}, func(string, error) error { return nil }, quiet)
	for off := int64(0); off < size; off += chunk {
		e.WriteAt(pattern(chunk, byte(off/chunk)), off)
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	// Chunk 1 is written but not flushed, and b loses it (its cache).
	e.WriteAt(pattern(block.Size, 101), 1*chunk)
	bmem.WriteAt(pattern(block.Size, 1), 1*chunk)
	// b fails a write to chunk 3 and leaves the in-sync set.
	b.mu.Lock()
	b.failWrite = true
	b.mu.Unlock()
	if _, err := e.WriteAt(pattern(block.Size, 103), 3*chunk); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(e.InSync(), "b") {
		t.Fatal("b still in sync after failing a write")
	}
	e.WriteAt(pattern(2*block.Size, 105), 5*chunk+8192)
	e.Discard(7*chunk, chunk)
	e.WriteAt(pattern(block.Size, 109), 9*chunk)
	e.Flush()
	if n, ok := e.Missed("b"); !ok || n != 5*chunk {
		t.Fatalf("missed by b: %d bytes (%v), want chunks 1, 3, 5, 7 and 9", n, ok)
	}
	if _, err := e.CatchUp(context.Background(), Member{"z", block.NewMem(size)}, 0, nil); !errors.Is(err, ErrNoDelta) {
		t.Fatalf("catch-up of an unknown replica: %v, want ErrNoDelta", err)
	}

	b.mu.Lock()
	b.failWrite = false // b is back
	b.mu.Unlock()
	promoted := false
	rb, err := e.CatchUp(context.Background(), Member{"b", b}, 0, func() error { promoted = true; return nil })
	if err != nil {
		t.Fatal(err)
	}
	// Writers go on while it catches up (they started after it took the
	// chunks b missed: those they write go to b directly).
	stop := startWriters(t, e, 3, 2)
	if err := rb.Wait(); err != nil {
		t.Fatal(err)
	}
	stop()
	if p := rb.Progress(); p.Kind != "catch-up" || p.Total != 5*chunk || p.Done != p.Total {
		t.Fatalf("progress %+v: want 5 chunks copied", p)
	}
	if !promoted || !slices.Contains(e.InSync(), "b") {
		t.Fatalf("promoted %v, in sync %v", promoted, e.InSync())
	}
	if _, ok := e.Missed("b"); ok {
		t.Fatal("b is in sync but still tracked as missing writes")
	}
	x, y := make([]byte, size), make([]byte, size)
	a.ReadAt(x, 0)
	bmem.ReadAt(y, 0)
	for off := 0; off < size; off += block.Size {
		if !bytes.Equal(x[off:off+block.Size], y[off:off+block.Size]) {
			t.Fatalf("b differs from a at %d after catching up", off)
		}
	}
}

// TestRelocateThenRetire: a replica relocated while writers run becomes
// the first member (reads go to it); retiring another one commits first,
// then stops all I/O to it, and the last member is never retired.
func TestRelocateThenRetire(t *testing.T) {
	const size = 4 << 20
	a, b := block.NewMem(size), block.NewMem(size)
	e, _ := New("v", []Member{{ID: "a", Dev: a}, {ID: "b", Dev: b}}, nil, quiet)
	e.WriteAt(pattern(1<<20, 7), 0)
	stop := startWriters(t, e, 2, 3)
	local := block.NewMem(size)
	rb, err := e.Relocate(context.Background(), Member{ID: "l", Dev: local}, 0, func() error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Retire("a", func() error { return nil }); err == nil {
		t.Error("retired a replica while a relocation runs")
	}
	if err := rb.Wait(); err != nil {
		t.Fatal(err)
	}
	if p := rb.Progress(); p.Kind != "locality" {
		t.Errorf("kind %q, want locality", p.Kind)
	}
	if got := e.InSync(); !slices.Equal(got, []string{"l", "a", "b"}) {
		t.Fatalf("in sync %v, want the relocated replica first", got)
	}
	if err := e.Retire("b", func() error { return errors.New("etcd says no") }); err == nil || !slices.Contains(e.InSync(), "b") {
		t.Fatalf("a refused commit: %v, in sync %v", err, e.InSync())
	}
	if err := e.Retire("a", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	stop()
	before := make([]byte, size)
	a.ReadAt(before, 0)
	e.WriteAt(pattern(1<<20, 9), 0)
	after := make([]byte, size)
	a.ReadAt(after, 0)
	if !bytes.Equal(before, after) {
		t.Error("a write reached the retired replica")
	}
	l, r := make([]byte, size), make([]byte, size)
	local.ReadAt(l, 0)
	b.ReadAt(r, 0)
	if !bytes.Equal(l, r) {
		t.Error("the relocated replica differs from the remaining one")
	}
	if err := e.Retire("b", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := e.Retire("l", func() error { return nil }); err == nil {
		t.Error("retired the last in-sync replica")
	}
}
