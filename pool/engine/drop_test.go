package engine

import (
	"errors"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/block"
)

// failLow fails the writes that start in the volume's first chunk.
type failLow struct{ block.Replica }

func (f failLow) WriteAt(p []byte, off int64) (int, error) {
	if off < rebuildChunk {
		return 0, errors.New("bad sector")
	}
	return f.Replica.WriteAt(p, off)
}

// within fails the test if fn has not returned after a while.
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { fn(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s blocked while a failed replica was being dropped", what)
	}
}

// TestDropOutsideTheLock: while the metadata store drops a failed replica,
// the engine's other I/O and bookkeeping go on, later failures of the same
// replica wait for that drop's outcome, and what the replica misses
// includes what was unflushed when it failed and everything written during
// the drop, though a flush completed meanwhile.
func TestDropOutsideTheLock(t *testing.T) {
	const size = 8 << 20
	a := block.NewMem(size)
	b := failLow{block.NewMem(size)}
	entered, release := make(chan struct{}), make(chan struct{})
	drops := 0
	drop := func(id string, _ error) error {
		drops++
		close(entered)
		<-release
		return nil
	}
	e, err := New("v", []Member{{"a", a}, {"b", b}}, drop, quiet)
	if err != nil {
		t.Fatal(err)
	}
	chunk := func(c int64) int64 { return c * rebuildChunk }
	if _, err := e.WriteAt(pattern(block.Size, 1), chunk(3)); err != nil { // unflushed when b fails
		t.Fatal(err)
	}

	failed := make(chan error, 2)
	go func() { _, err := e.WriteAt(pattern(block.Size, 2), chunk(0)); failed <- err }()
	<-entered

	within(t, "InSync", func() {
		if ids := e.InSync(); len(ids) != 2 {
			t.Errorf("in sync during the drop: %v, want both until the store dropped b", ids)
		}
	})
	within(t, "a write b takes", func() {
		if _, err := e.WriteAt(pattern(block.Size, 3), chunk(5)); err != nil {
			t.Error(err)
		}
	})
	within(t, "a flush", func() {
		if err := e.Flush(); err != nil {
			t.Error(err)
		}
	})
	go func() { _, err := e.WriteAt(pattern(block.Size, 4), chunk(0)+block.Size); failed <- err }()
	select {
	case err := <-failed:
		t.Fatalf("a write that failed on b returned before b was dropped: %v", err)
	case <-time.After(50 * time.Millisecond):
	}

	close(release)
	for range 2 {
		if err := <-failed; err != nil {
			t.Fatalf("write with a healthy replica left: %v", err)
		}
	}
	if drops != 1 {
		t.Fatalf("the store was asked %d times to drop b", drops)
	}
	if ids := e.InSync(); len(ids) != 1 || ids[0] != "a" {
		t.Fatalf("in sync %v, want [a]", ids)
	}
	e.mu.Lock()
	missed := e.missed["b"]
	e.mu.Unlock()
	for c, want := range map[int64]bool{0: true, 3: true, 5: true, 1: false, 7: false} {
		if missed.Has(c) != want {
			t.Errorf("b missed chunk %d: %v, want %v", c, missed.Has(c), want)
		}
	}
}

// TestDropRefusedWaiters: a drop the store refuses fails the write
// that failed, and every write waiting on it, and leaves the replica a
// member with no missed set.
func TestDropRefusedWaiters(t *testing.T) {
	const size = 4 << 20
	b := failLow{block.NewMem(size)}
	entered, release := make(chan struct{}), make(chan struct{})
	drop := func(string, error) error {
		select {
		case <-entered:
		default:
			close(entered)
		}
		<-release
		return errors.New("etcd unreachable")
	}
	e, _ := New("v", []Member{{"a", block.NewMem(size)}, {"b", b}}, drop, quiet)
	errs := make(chan error, 2)
	go func() { _, err := e.WriteAt(pattern(block.Size, 1), 0); errs <- err }()
	<-entered
	go func() { _, err := e.WriteAt(pattern(block.Size, 2), block.Size); errs <- err }()
	time.Sleep(20 * time.Millisecond)
	close(release)
	for range 2 {
		if err := <-errs; err == nil {
			t.Fatal("write acknowledged although the failed replica is still in the in-sync set")
		}
	}
	if len(e.InSync()) != 2 {
		t.Fatal("replica removed locally although the store refused")
	}
	if _, ok := e.Missed("b"); ok {
		t.Fatal("a missed set kept for a replica still in sync")
	}
}

// failHigh fails the writes that start beyond the volume's first chunk.
type failHigh struct{ block.Replica }

func (f failHigh) WriteAt(p []byte, off int64) (int, error) {
	if off >= rebuildChunk {
		return 0, errors.New("bad sector")
	}
	return f.Replica.WriteAt(p, off)
}

// TestTwoFailAtOnce: when each of two replicas fails a different write at
// the same time, one is dropped and the other stays, the last in-sync
// replica, though the store would let both go: the engine never empties
// its in-sync set.
func TestTwoFailAtOnce(t *testing.T) {
	const size = 4 << 20
	a, b := failLow{block.NewMem(size)}, failHigh{block.NewMem(size)}
	entered, release := make(chan string, 2), make(chan struct{})
	drop := func(id string, _ error) error {
		entered <- id
		<-release
		return nil
	}
	e, _ := New("v", []Member{{"a", a}, {"b", b}}, drop, quiet)
	errs := make(chan error, 2)
	for _, off := range []int64{0, rebuildChunk} { // fails on a, on b
		go func() { _, err := e.WriteAt(pattern(block.Size, 1), off); errs <- err }()
	}
	first := <-entered
	select {
	case id := <-entered:
		t.Fatalf("both replicas are being dropped (%s and %s)", first, id)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	var failed int
	for range 2 {
		if err := <-errs; err != nil {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("%d of the two writes failed, want the one on the replica that stayed", failed)
	}
	if ids := e.InSync(); len(ids) != 1 || ids[0] == first {
		t.Fatalf("in sync %v, want the one not dropped (%s was)", ids, first)
	}
}
