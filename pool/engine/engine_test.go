package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/ballast-io/ballast/pool/block"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// flaky wraps a Replica and can be told to fail writes or corrupt reads.
type flaky struct {
	block.Replica
	mu        sync.Mutex
	failWrite bool
	corrupt   map[int64]bool // offsets whose reads fail their checksum
	repaired  []int64
}

func (f *flaky) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	fail := f.failWrite
	f.mu.Unlock()
	if fail {
		return 0, errors.New("disk gone")
	}
	return f.Replica.WriteAt(p, off)
}

func (f *flaky) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.Replica.ReadAt(p, off)
	f.mu.Lock()
	defer f.mu.Unlock()
	var bad []int64
	for o := off; o < off+int64(len(p)); o += block.Size {
		if f.corrupt[o] {
			clear(p[o-off : o-off+block.Size])
			bad = append(bad, o)
		}
	}
	if len(bad) > 0 {
		return n, &block.ChecksumError{Offsets: bad}
	}
	return n, err
}

func (f *flaky) Repair(off int64, good []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.corrupt, off)
	f.repaired = append(f.repaired, off)
	_, err := f.Replica.WriteAt(good, off)
	return err
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func TestWriteReachesEveryReplica(t *testing.T) {
	a, b := block.NewMem(1<<20), block.NewMem(1<<20)
	e, err := New("v", []Member{{"a", a}, {"b", b}}, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	data := pattern(3*block.Size, 1)
	if _, err := e.WriteAt(data, 8192); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*block.Mem{a, b} {
		got := make([]byte, len(data))
		d.ReadAt(got, 8192)
		if !bytes.Equal(got, data) {
			t.Fatal("a replica misses the write")
		}
	}
	if err := e.Discard(8192, block.Size); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, block.Size)
	b.ReadAt(got, 8192)
	if !bytes.Equal(got, make([]byte, block.Size)) {
		t.Fatal("discard did not reach replica b")
	}
}

func TestFailedReplicaIsDroppedBeforeAck(t *testing.T) {
	a := &flaky{Replica: block.NewMem(1 << 20)}
	b := &flaky{Replica: block.NewMem(1 << 20)}
	var dropped []string
	drop := func(id string, _ error) error { dropped = append(dropped, id); return nil }
	e, _ := New("v", []Member{{"a", a}, {"b", b}}, drop, quiet)
	b.failWrite = true
	if _, err := e.WriteAt(pattern(block.Size, 2), 0); err != nil {
		t.Fatalf("write with one healthy replica left: %v", err)
	}
	if len(dropped) != 1 || dropped[0] != "b" {
		t.Fatalf("dropped %v, want [b]", dropped)
	}
	if ids := e.InSync(); len(ids) != 1 || ids[0] != "a" {
		t.Fatalf("in sync %v", ids)
	}
	// The last replica failing fails the write: nothing is acknowledged
	// that no replica holds.
	a.failWrite = true
	if _, err := e.WriteAt(pattern(block.Size, 3), 0); err == nil {
		t.Fatal("write acknowledged with no replica holding it")
	}
}

func TestDropRefusedFailsTheWrite(t *testing.T) {
	a := &flaky{Replica: block.NewMem(1 << 20)}
	b := &flaky{Replica: block.NewMem(1 << 20)}
	drop := func(string, error) error { return errors.New("etcd unreachable") }
	e, _ := New("v", []Member{{"a", a}, {"b", b}}, drop, quiet)
	b.failWrite = true
	if _, err := e.WriteAt(pattern(block.Size, 2), 0); err == nil {
		t.Fatal("write acknowledged although the failed replica is still in the in-sync set")
	}
	if len(e.InSync()) != 2 {
		t.Fatal("replica removed locally although the store refused")
	}
}

func TestChecksumRepair(t *testing.T) {
	a := &flaky{Replica: block.NewMem(1 << 20), corrupt: map[int64]bool{}}
	b := &flaky{Replica: block.NewMem(1 << 20)}
	e, _ := New("v", []Member{{"a", a}, {"b", b}}, nil, quiet)
	data := pattern(4*block.Size, 5)
	if _, err := e.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	a.corrupt[block.Size] = true
	a.corrupt[3*block.Size] = true
	got := make([]byte, len(data))
	if _, err := e.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("read returned corrupt data")
	}
	if e.Repairs() != 2 || len(a.repaired) != 2 {
		t.Fatalf("repairs %d, repaired %v", e.Repairs(), a.repaired)
	}
	// Without a second replica a checksum error is an I/O error.
	solo, _ := New("s", []Member{{"a", a}}, nil, quiet)
	a.corrupt[0] = true
	if _, err := solo.ReadAt(got, 0); err == nil {
		t.Fatal("corrupt read with no peer succeeded")
	}
}

func TestBadRequests(t *testing.T) {
	e, _ := New("v", []Member{{"a", block.NewMem(1 << 20)}}, nil, quiet)
	if _, err := e.WriteAt(make([]byte, 100), 0); !errors.Is(err, block.ErrUnaligned) {
		t.Fatalf("unaligned: %v", err)
	}
	if _, err := e.ReadAt(make([]byte, block.Size), 1<<20); !errors.Is(err, block.ErrOutOfRange) {
		t.Fatalf("past end: %v", err)
	}
	if _, err := New("v", []Member{{"a", block.NewMem(1 << 20)}, {"b", block.NewMem(2 << 20)}}, nil, quiet); err == nil {
		t.Fatal("replicas of different sizes accepted")
	}
}

func TestQuiesceWaitsForWrites(t *testing.T) {
	e, _ := New("v", []Member{{"a", block.NewMem(1 << 20)}, {"b", block.NewMem(1 << 20)}}, nil, quiet)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				e.WriteAt(pattern(block.Size, byte(i+j)), int64(i)*block.Size)
			}
		})
	}
	for range 5 {
		err := e.Quiesce(func(ms []Member) error {
			x, y := make([]byte, 8*block.Size), make([]byte, 8*block.Size)
			ms[0].Dev.ReadAt(x, 0)
			ms[1].Dev.ReadAt(y, 0)
			if !bytes.Equal(x, y) {
				return errors.New("replicas differ while quiesced")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

// TestFencedFailsFast: once the DropFunc reports the volume taken over,
// every later I/O fails at once with ErrFenced and reaches no replica.
func TestFencedFailsFast(t *testing.T) {
	const size = 1 << 20
	a := &flaky{Replica: block.NewMem(size)}
	b := &flaky{Replica: block.NewMem(size), failWrite: true}
	drop := func(string, error) error { return fmt.Errorf("taken over: %w", ErrFenced) }
	e, _ := New("v", []Member{{"a", a}, {"b", b}}, drop, quiet)
	if _, err := e.WriteAt(pattern(block.Size, 1), 0); !errors.Is(err, ErrFenced) {
		t.Fatalf("write whose drop was refused as fenced: %v", err)
	}
	a.mu.Lock()
	a.failWrite = true // a write reaching a now would fail differently
	a.mu.Unlock()
	for name, err := range map[string]error{
		"write":   func() error { _, err := e.WriteAt(pattern(block.Size, 2), 0); return err }(),
		"read":    func() error { _, err := e.ReadAt(make([]byte, block.Size), 0); return err }(),
		"flush":   e.Flush(),
		"discard": e.Discard(0, block.Size),
	} {
		if !errors.Is(err, ErrFenced) {
			t.Errorf("%s on a fenced volume: %v, want ErrFenced", name, err)
		}
	}
}

// TestGrow: the volume and every in-sync replica grow; the new space
// reads as zeros and takes writes on all of them; shrinking is refused.
func TestGrow(t *testing.T) {
	a, b := block.NewMem(1<<20), block.NewMem(1<<20)
	e, _ := New("v", []Member{{"a", a}, {"b", b}}, nil, quiet)
	if err := e.Grow(3 << 20); err != nil {
		t.Fatal(err)
	}
	if e.Size() != 3<<20 || a.Size() != 3<<20 || b.Size() != 3<<20 {
		t.Fatalf("sizes after grow: volume %d, replicas %d %d", e.Size(), a.Size(), b.Size())
	}
	p := pattern(block.Size, 7)
	if _, err := e.WriteAt(p, 2<<20); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, block.Size)
	b.ReadAt(got, 2<<20)
	if !bytes.Equal(got, p) {
		t.Fatal("a write in the grown space did not reach every replica")
	}
	if err := e.Grow(1 << 20); err == nil {
		t.Fatal("shrink accepted")
	}
}

// noGrow is a replica whose Resize fails.
type noGrow struct{ *block.Mem }

func (noGrow) Resize(int64) error { return errors.New("disk full") }

// TestGrowDropsReplicaThatCannotGrow: a replica failing to grow leaves the
// in-sync set before Grow returns, and the volume grows on the rest; when
// no replica may be dropped, Grow fails and the size stays.
func TestGrowDropsReplicaThatCannotGrow(t *testing.T) {
	a, b := block.NewMem(1<<20), noGrow{block.NewMem(1 << 20)}
	var dropped []string
	drop := func(id string, _ error) error { dropped = append(dropped, id); return nil }
	e, _ := New("v", []Member{{"a", a}, {"b", b}}, drop, quiet)
	if err := e.Grow(2 << 20); err != nil {
		t.Fatal(err)
	}
	if e.Size() != 2<<20 || fmt.Sprint(dropped) != "[b]" || fmt.Sprint(e.InSync()) != "[a]" {
		t.Fatalf("after grow: size %d, dropped %v, in sync %v", e.Size(), dropped, e.InSync())
	}

	refuse := func(string, error) error { return errors.New("below the minimum") }
	e, _ = New("w", []Member{{"b", noGrow{block.NewMem(1 << 20)}}, {"a", block.NewMem(1 << 20)}}, refuse, quiet)
	if err := e.Grow(2 << 20); err == nil || e.Size() != 1<<20 {
		t.Fatalf("grow with a replica that can neither grow nor be dropped: err %v, size %d", err, e.Size())
	}
	if err := e.Grow(2<<20 + 1); !errors.Is(err, block.ErrUnaligned) {
		t.Fatalf("unaligned grow: %v", err)
	}
}
