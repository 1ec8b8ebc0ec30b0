package replica

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/block/blocktest"
)

const bs = block.Size

func newStore(t testing.TB) *Store {
	t.Helper()
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func create(t testing.TB, s *Store, id string, size int64) *Replica {
	t.Helper()
	r, err := s.Create(id, size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// fill returns n blocks whose content identifies tag and block number.
var fill = blocktest.Fill

var (
	write = blocktest.Write
	read  = blocktest.Read
)

func expect(t testing.TB, r *Replica, first int64, want []byte) {
	t.Helper()
	got := read(t, r, first, int64(len(want)/bs))
	for i := 0; i < len(want); i += bs {
		if !bytes.Equal(got[i:i+bs], want[i:i+bs]) {
			t.Fatalf("%s: block %d: got %q..., want %q...", r.id, first+int64(i/bs), got[i:i+24], want[i:i+24])
		}
	}
}

func zeros(n int64) []byte { return make([]byte, n*bs) }

// model is the expected content of a volume, block by block.
type model map[int64][]byte

func (m model) write(t testing.TB, r *Replica, tag string, first, n int64) {
	p := write(t, r, tag, first, n)
	for i := range n {
		m[first+i] = p[i*bs : (i+1)*bs]
	}
}

func (m model) clone() model {
	c := model{}
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (m model) check(t testing.TB, r *Replica) {
	t.Helper()
	all := read(t, r, 0, r.Size()/bs)
	for b := range r.Size() / bs {
		want := m[b]
		if want == nil {
			want = zeros(1)
		}
		if got := all[b*bs : (b+1)*bs]; !bytes.Equal(got, want) {
			t.Fatalf("%s: block %d: got %q..., want %q...", r.id, b, got[:24], want[:24])
		}
	}
}

func TestChecksumDetectAndRepair(t *testing.T) {
	s := newStore(t)
	r := create(t, s, "v", 1<<20)
	good := write(t, r, "a", 0, 4)
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	// Flip a byte of block 2 behind the replica's back.
	f, err := os.OpenFile(filepath.Join(s.Dir(), "layers", r.layers[0].id+".data"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	f.ReadAt(b[:], 2*bs+100)
	b[0] ^= 0xff
	if _, err := f.WriteAt(b[:], 2*bs+100); err != nil {
		t.Fatal(err)
	}
	f.Sync()
	f.Close()

	p := make([]byte, 4*bs)
	n, err := r.ReadAt(p, 0)
	var ce *block.ChecksumError
	if !errors.As(err, &ce) {
		t.Fatalf("read of corrupt block: err %v, want ChecksumError", err)
	}
	if len(ce.Offsets) != 1 || ce.Offsets[0] != 2*bs {
		t.Fatalf("bad offsets %v, want [%d]", ce.Offsets, 2*bs)
	}
	if n != len(p) || !bytes.Equal(p[:2*bs], good[:2*bs]) || !bytes.Equal(p[3*bs:], good[3*bs:]) {
		t.Fatal("good blocks of a request with a bad block were not returned")
	}
	if err := r.Repair(2*bs, good[2*bs:3*bs]); err != nil {
		t.Fatal(err)
	}
	expect(t, r, 0, good)
}

func TestChecksumInLowerLayerRepairedThere(t *testing.T) {
	s := newStore(t)
	r := create(t, s, "v", 1<<20)
	good := write(t, r, "a", 0, 2)
	if err := r.Snapshot("s1"); err != nil {
		t.Fatal(err)
	}
	low := r.layers[0]
	bad := block.Aligned(bs)
	if _, err := low.data.ReadAt(bad, bs); err != nil {
		t.Fatal(err)
	}
	bad[7] ^= 1
	if _, err := low.data.WriteAt(bad, bs); err != nil {
		t.Fatal(err)
	}
	_, err := r.ReadAt(make([]byte, 2*bs), 0)
	var ce *block.ChecksumError
	if !errors.As(err, &ce) || ce.Offsets[0] != bs {
		t.Fatalf("err %v, want ChecksumError at %d", err, bs)
	}
	if err := r.Repair(bs, good[bs:]); err != nil {
		t.Fatal(err)
	}
	if r.layers[1].present.has(1) {
		t.Fatal("repair wrote to the head, not to the layer holding the block")
	}
	expect(t, r, 0, good)
}

func TestLayerFallThrough(t *testing.T) {
	s := newStore(t)
	r := create(t, s, "v", 1<<20)
	m := model{}
	m.write(t, r, "a", 0, 8)
	if err := r.Snapshot("s1"); err != nil {
		t.Fatal(err)
	}
	m.write(t, r, "b", 2, 2)
	if err := r.Snapshot("s2"); err != nil {
		t.Fatal(err)
	}
	m.write(t, r, "c", 3, 3)
	m.write(t, r, "c", 20, 1)
	m.check(t, r)
	if len(r.layers) != 3 {
		t.Fatalf("%d layers, want 3", len(r.layers))
	}
}

func TestSnapshotAndCloneIsolation(t *testing.T) {
	s := newStore(t)
	r := create(t, s, "v", 1<<20)
	m := model{}
	m.write(t, r, "a", 0, 16)
	if err := r.Snapshot("s1"); err != nil {
		t.Fatal(err)
	}
	snap := m.clone()
	m.write(t, r, "b", 4, 4) // after the snapshot: must not show in it

	c, err := s.Clone("c", "v", "s1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	snap.check(t, c)

	cm := snap.clone()
	cm.write(t, c, "clone", 0, 2)
	m.write(t, r, "after", 10, 2)
	cm.check(t, c)
	m.check(t, r)

	// Same through a fresh store: nothing depended on in-memory state.
	r.Close()
	c.Close()
	s2, err := OpenStore(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s2.Open("v")
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	c2, err := s2.Open("c")
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	m.check(t, r2)
	cm.check(t, c2)
}

func TestDiscard(t *testing.T) {
	s := newStore(t)
	r := create(t, s, "v", 32<<20)
	m := model{}
	m.write(t, r, "a", 0, 8)
	if err := r.Snapshot("s1"); err != nil {
		t.Fatal(err)
	}
	m.write(t, r, "b", 4, 8) // blocks 4..11 in head; 0..7 in s1
	// Discard 2..9: 2,3 only lower (zeroed), 4..7 both, 8,9 head only.
	if err := r.Discard(2*bs, 8*bs); err != nil {
		t.Fatal(err)
	}
	for b := int64(2); b < 10; b++ {
		delete(m, b)
	}
	m.check(t, r)
	if r.layers[1].present.has(8) || !r.layers[1].present.has(2) {
		t.Fatal("presence after discard: head-only blocks must be absent, lower blocks zeroed")
	}
	// Discard across a chunk boundary with nothing there.
	if err := r.Discard(spanBlocks*bs-8*bs, 16*bs); err != nil {
		t.Fatal(err)
	}
	r.Close()
	r, err := s.Open("v")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m.check(t, r)
	m.write(t, r, "c", 3, 1) // write over a zeroed block
	m.check(t, r)
}

func TestDeleteSnapshotMerge(t *testing.T) {
	s := newStore(t)
	const size = 24 << 20 // crosses a presence chunk
	r := create(t, s, "v", size)
	m := model{}
	rng := rand.New(rand.NewPCG(1, 2))
	scribble := func(tag string) {
		for i := 0; i < 40; i++ {
			b := rng.Int64N(size/bs - 8)
			m.write(t, r, tag, b, 1+rng.Int64N(8))
		}
	}
	views := map[string]model{}
	for _, name := range []string{"s1", "s2", "s3", "s4"} {
		scribble(name)
		if name == "s2" {
			if err := r.Discard(0, 1<<20); err != nil {
				t.Fatal(err)
			}
			for b := int64(0); b < 256; b++ {
				delete(m, b)
			}
		}
		if err := r.Snapshot(name); err != nil {
			t.Fatal(err)
		}
		views[name] = m.clone()
	}
	scribble("head")

	c1, err := s.Clone("c1", "v", "s1") // makes s1's layer shared
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	var s2ID string
	for _, si := range r.Snapshots() {
		if si.Name == "s2" {
			s2ID = si.Layer
		}
	}

	// Writes continue during the merges.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	wg.Go(func() {
		for i := int64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			m.write(t, r, "during", 5000+i%100, 1)
			mu.Unlock()
		}
	})
	for _, name := range []string{"s2", "s1", "s4"} { // s2 into s3, s1 only loses its name, s4 into the head
		if err := r.DeleteSnapshot(name); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()

	if _, err := os.Stat(filepath.Join(s.Dir(), "layers", s2ID+".data")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("merged layer file still there: %v", err)
	}
	if got := len(r.layers); got != 3 { // s1 (anonymous, shared), s3, head
		t.Fatalf("%d layers after merges, want 3", got)
	}
	if len(r.Snapshots()) != 1 || r.Snapshots()[0].Name != "s3" {
		t.Fatalf("snapshots %v, want [s3]", r.Snapshots())
	}
	m.check(t, r)
	views["s1"].check(t, c1)
	c3, err := s.Clone("c3", "v", "s3")
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	views["s3"].check(t, c3)
	if err := r.DeleteSnapshot("s2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete unknown snapshot: %v", err)
	}
}

func TestCrashLeftoversCleanedOnOpen(t *testing.T) {
	s := newStore(t)
	r := create(t, s, "v", 1<<20)
	m := model{}
	m.write(t, r, "a", 0, 4)
	r.Close()
	dir := s.Dir()
	// A half-created layer and a metadata temp file never renamed.
	if err := createLayer(dir, "deadbeef", 1<<20); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "replicas", tmpPrefix+"w-123")
	if err := os.WriteFile(tmp, []byte(`{"id":"w","size":4096,"layers":["deadbeef"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "layers", "deadbeef.data")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("orphan layer not removed: %v", err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("temp metadata not removed: %v", err)
	}
	if ids, _ := s2.List(); len(ids) != 1 || ids[0] != "v" {
		t.Fatalf("List = %v, want [v]", ids)
	}
	r2, err := s2.Open("v")
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	m.check(t, r2)
}

// tornWrite records the entries of a write of p at block b in l without
// writing the data: what a kill -9 between the two leaves.
func tornWrite(t *testing.T, l *layer, p []byte, b int64) {
	t.Helper()
	ents, err := l.readEntries(b, 1)
	if err != nil {
		t.Fatal(err)
	}
	e := decodeEntry(ents)
	e.prev = e.cur
	e.cur = slot{state: stateData, crc: checksum(p)}
	e.encode(ents)
	if err := l.writeEntries(ents, b); err != nil {
		t.Fatal(err)
	}
}

func TestTornWrite(t *testing.T) {
	s := newStore(t)
	r := create(t, s, "v", 1<<20)
	m := model{}
	m.write(t, r, "old", 0, 1)  // block 0: rewritten, torn
	m.write(t, r, "low", 10, 1) // block 10: in s1 only, torn in the head
	m.write(t, r, "disc", 20, 1)
	if err := r.Snapshot("s1"); err != nil {
		t.Fatal(err)
	}
	m.write(t, r, "old", 0, 1)
	m.write(t, r, "gone", 30, 1) // block 30: discarded in the head, punch lost
	head := r.layers[1]
	if err := head.discard(30, []bool{false}); err != nil {
		t.Fatal(err)
	}
	delete(m, 30)

	tornWrite(t, head, fill("new", 0, 1), 0)
	tornWrite(t, head, fill("new", 10, 1), 10)
	tornWrite(t, head, fill("new", 30, 1), 30)
	tornWrite(t, head, fill("new", 40, 1), 40) // never written anywhere
	r.Close()

	// Reopen: presence is rebuilt from the entries, which claim the blocks.
	r, err := s.Open("v")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.layers[1].present.has(10) {
		t.Fatal("torn block not present after reopen")
	}
	m.check(t, r) // old content or fall through, never a checksum error
	if r.layers[1].present.has(10) {
		t.Fatal("torn block not settled by the read")
	}
	// A second torn write after the first crash still reads cleanly.
	tornWrite(t, r.layers[1], fill("newer", 10, 1), 10)
	m.check(t, r)
	m.write(t, r, "fresh", 10, 1)
	m.check(t, r)
}

func TestReopenRebuildsPresence(t *testing.T) {
	s := newStore(t)
	const size = 64 << 20
	r := create(t, s, "v", size)
	m := model{}
	m.write(t, r, "a", 0, 3)
	m.write(t, r, "a", spanBlocks-1, 2)
	m.write(t, r, "a", size/bs-1, 1)
	if err := r.Snapshot("s"); err != nil {
		t.Fatal(err)
	}
	m.write(t, r, "b", 1, 1)
	m.write(t, r, "b", 3*spanBlocks+7, 300)
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
	if got := r2.layers[0].present.count() + r2.layers[1].present.count(); got != 3+2+1+1+300 {
		t.Fatalf("%d blocks present after reopen, want %d", got, 307)
	}
	m.check(t, r2)
}

func TestUnalignedBuffers(t *testing.T) {
	s := newStore(t)
	r := create(t, s, "v", 2<<20)
	raw := make([]byte, 5*bs+1)
	p := raw[1:]
	if isAligned(p) {
		t.Fatal("test buffer is aligned")
	}
	copy(p, fill("u", 3, 5))
	if _, err := r.WriteAt(p, 3*bs); err != nil {
		t.Fatal(err)
	}
	q := make([]byte, 5*bs+7)[7:]
	if _, err := r.ReadAt(q, 3*bs); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(q, fill("u", 3, 5)) {
		t.Fatal("unaligned read/write mismatch")
	}
	big := fill("big", 0, 256+3) // larger than a pooled bounce buffer
	if _, err := r.WriteAt(big[:len(big)], 0); err != nil {
		t.Fatal(err)
	}
	expect(t, r, 0, big)
}

func TestConcurrentWriters(t *testing.T) {
	s := newStore(t)
	const workers, per = 8, 64
	r := create(t, s, "v", workers*per*bs)
	var wg sync.WaitGroup
	errc := make(chan error, workers+1)
	for w := range workers {
		wg.Go(func() {
			base := int64(w * per)
			for round := range 20 {
				b := base + int64(round%(per-4))
				p := fill(fmt.Sprintf("w%d-%d", w, round), b, 4)
				if _, err := r.WriteAt(p, b*bs); err != nil {
					errc <- err
					return
				}
				q := make([]byte, len(p))
				if _, err := r.ReadAt(q, b*bs); err != nil {
					errc <- err
					return
				}
				if !bytes.Equal(p, q) {
					errc <- fmt.Errorf("worker %d round %d: read back differs", w, round)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 5 {
			if err := r.Snapshot(fmt.Sprint("s", i)); err != nil {
				errc <- err
				return
			}
			if err := r.Flush(); err != nil {
				errc <- err
				return
			}
		}
	})
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := r.DeleteSnapshot(fmt.Sprint("s", i)); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.layers) != 1 {
		t.Fatalf("%d layers after deleting all snapshots, want 1", len(r.layers))
	}
}

func TestBadInput(t *testing.T) {
	s := newStore(t)
	r := create(t, s, "v", 1<<20)
	p := make([]byte, bs)
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"unaligned read offset", second(r.ReadAt(p, 100)), block.ErrUnaligned},
		{"unaligned write length", second(r.WriteAt(p[:100], 0)), block.ErrUnaligned},
		{"read past end", second(r.ReadAt(p, 1<<20)), block.ErrOutOfRange},
		{"write past end", second(r.WriteAt(make([]byte, 2*bs), 1<<20-bs)), block.ErrOutOfRange},
		{"negative offset", second(r.WriteAt(p, -bs)), block.ErrOutOfRange},
		{"discard unaligned", r.Discard(0, 10), block.ErrUnaligned},
		{"repair past end", r.Repair(1<<20, p), block.ErrOutOfRange},
		{"create existing", second(s.Create("v", 1<<20)), ErrExists},
		{"create unaligned size", second(s.Create("w", 1000)), block.ErrUnaligned},
		{"open missing", second(s.Open("nope")), fs.ErrNotExist},
		{"open twice", second(s.Open("v")), ErrInUse},
		{"delete open", s.Delete("v"), ErrInUse},
		{"clone unknown snapshot", second(s.Clone("c", "v", "nope")), ErrNotFound},
		{"delete unknown snapshot", r.DeleteSnapshot("nope"), ErrNotFound},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if _, err := s.Create("../x", bs); err == nil {
		t.Error("create with a path as id succeeded")
	}
	if err := r.Snapshot("s"); err != nil {
		t.Fatal(err)
	}
	if err := r.Snapshot("s"); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate snapshot: %v", err)
	}
	if err := s.Delete("missing"); err != nil {
		t.Errorf("delete missing replica: %v", err)
	}
	r.Close()
	if _, err := r.ReadAt(p, 0); !errors.Is(err, os.ErrClosed) {
		t.Errorf("read after close: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

func TestDeleteAndUsage(t *testing.T) {
	s := newStore(t)
	r := create(t, s, "v", 8<<20)
	write(t, r, "a", 0, 256)
	if err := r.Snapshot("s"); err != nil {
		t.Fatal(err)
	}
	c, err := s.Clone("c", "v", "s")
	if err != nil {
		t.Fatal(err)
	}
	write(t, c, "c", 0, 16)
	alloc, capacity, err := s.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if alloc < 272*bs || capacity <= 0 {
		t.Fatalf("Usage = %d, %d", alloc, capacity)
	}
	if got := c.Allocated(); got < 272*bs {
		t.Fatalf("clone Allocated = %d, want >= %d", got, 272*bs)
	}
	r.Close()
	if err := s.Delete("v"); err != nil {
		t.Fatal(err)
	}
	countLayers := func() int {
		ents, _ := os.ReadDir(filepath.Join(s.Dir(), "layers"))
		return len(ents)
	}
	if n := countLayers(); n != 2 { // the clone keeps s's layer; v's head is gone
		t.Fatalf("%d layer files after deleting the source, want 2", n)
	}
	c.Close()
	if err := s.Delete("c"); err != nil {
		t.Fatal(err)
	}
	if n := countLayers(); n != 0 {
		t.Fatalf("%d layer files after deleting everything, want 0", n)
	}
	if s.Exists("c") || s.Exists("v") {
		t.Fatal("deleted replica still exists")
	}
}

func TestSnapshotLargeSparse(t *testing.T) {
	s := newStore(t)
	const size = 64 << 30
	r := create(t, s, "big", size)
	rng := rand.New(rand.NewPCG(3, 4))
	p := fill("x", 0, 256)
	for range 200 {
		b := rng.Int64N(size/bs - 256)
		if _, err := r.WriteAt(p[:bs*(1+rng.Int64N(256))], b*bs); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := r.Snapshot("s"); err != nil {
		t.Fatal(err)
	}
	t.Logf("snapshot of a 64 GiB replica: %v", time.Since(start))
	r.Close()
	start = time.Now()
	r, err := s.Open("big")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	t.Logf("open of a 64 GiB replica with 2 layers: %v, %d blocks present", time.Since(start), r.layers[0].present.count())
}

func benchReplica(b *testing.B, size int64) *Replica {
	dir := os.Getenv("BALLAST_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	} else {
		dir, _ = os.MkdirTemp(dir, "bench")
		b.Cleanup(func() { os.RemoveAll(dir) })
	}
	s, err := OpenStore(dir)
	if err != nil {
		b.Fatal(err)
	}
	return create(b, s, "bench", size)
}

func benchWrite(b *testing.B, n int) {
	const size = 1 << 30
	r := benchReplica(b, size)
	p := block.Aligned(n)
	copy(p, fill("bench", 0, int64(n/bs)))
	rng := rand.New(rand.NewPCG(5, 6))
	b.SetBytes(int64(n))
	b.ResetTimer()
	for b.Loop() {
		off := rng.Int64N(size/int64(n)) * int64(n)
		if _, err := r.WriteAt(p, off); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWrite4K(b *testing.B) { benchWrite(b, bs) }
func BenchmarkWrite1M(b *testing.B) { benchWrite(b, 1<<20) }

func BenchmarkRead4K(b *testing.B) {
	const size = 64 << 20
	r := benchReplica(b, size)
	p := block.Aligned(1 << 20)
	for off := int64(0); off < size; off += int64(len(p)) {
		if _, err := r.WriteAt(p, off); err != nil {
			b.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(7, 8))
	q := block.Aligned(bs)
	b.SetBytes(bs)
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.ReadAt(q, rng.Int64N(size/bs)*bs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawRead4K and BenchmarkRawWrite4K measure the same I/O on a
// plain O_DIRECT file, the baseline for the replica benchmarks.
func BenchmarkRawRead4K(b *testing.B)  { benchRaw(b, false) }
func BenchmarkRawWrite4K(b *testing.B) { benchRaw(b, true) }

func benchRaw(b *testing.B, writes bool) {
	const size = 64 << 20
	dir := os.Getenv("BALLAST_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	path := filepath.Join(dir, "raw-bench")
	b.Cleanup(func() { os.Remove(path) })
	f, _, err := openDirectCreate(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	p := block.Aligned(1 << 20)
	for off := int64(0); off < size; off += int64(len(p)) {
		if _, err := f.WriteAt(p, off); err != nil {
			b.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(7, 8))
	q := block.Aligned(bs)
	b.SetBytes(bs)
	b.ResetTimer()
	for b.Loop() {
		off := rng.Int64N(size/bs) * bs
		if writes {
			_, err = f.WriteAt(q, off)
		} else {
			_, err = f.ReadAt(q, off)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

func openDirectCreate(path string) (*os.File, bool, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, false, err
	}
	f.Close()
	return openDirect(path)
}

func TestStoreAllocatedWithoutOpen(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Create("r1", 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	if _, err := r.WriteAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	open := r.Allocated()
	r.Close()
	got, err := s.Allocated("r1")
	if err != nil || got != open || got < 1<<20 {
		t.Fatalf("Store.Allocated = %d, %v; open replica said %d", got, err, open)
	}
	if _, err := s.Allocated("nope"); err == nil {
		t.Fatal("Allocated of a missing replica succeeded")
	}
}

func TestFencePersists(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Create("f", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if r.Epoch() != 0 {
		t.Fatalf("new replica at epoch %d", r.Epoch())
	}
	for _, e := range []uint64{3, 2, 5, 5} {
		if err := r.Fence(e); err != nil {
			t.Fatal(err)
		}
	}
	if r.Epoch() != 5 {
		t.Fatalf("epoch %d after fencing at 3, 2, 5, 5; want 5", r.Epoch())
	}
	if err := r.Snapshot("s"); err != nil { // a later metadata write keeps it
		t.Fatal(err)
	}
	r.Close()
	s2, err := OpenStore(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s2.Open("f")
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if r2.Epoch() != 5 {
		t.Fatalf("epoch after reopen %d, want 5", r2.Epoch())
	}
}

// TestResize grows a replica with snapshots: old content stays, the new
// space reads as zeros and takes writes, it all survives a reopen, clones
// of snapshots taken before and after have the sizes of their time, a
// snapshot below the resize still merges away, and shrinking is refused.
func TestResize(t *testing.T) {
	s := newStore(t)
	const small, big = 64 * bs, 160 * bs
	r := create(t, s, "v", small)
	a := write(t, r, "a", 0, 64)
	if err := r.Snapshot("s1"); err != nil {
		t.Fatal(err)
	}
	b := write(t, r, "b", 8, 8)
	if err := r.Resize(big); err != nil {
		t.Fatal(err)
	}
	if r.Size() != big {
		t.Fatalf("size %d after resize to %d", r.Size(), big)
	}
	want := append([]byte{}, a...)
	copy(want[8*bs:], b)
	expect(t, r, 0, want)
	expect(t, r, 64, zeros(96))
	c := write(t, r, "c", 60, 40) // across the old end
	if err := r.Snapshot("s2"); err != nil {
		t.Fatal(err)
	}
	if err := r.Resize(small); !errors.Is(err, ErrShrink) {
		t.Fatalf("shrink: %v, want ErrShrink", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := s.Open("v")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Size() != big {
		t.Fatalf("size %d after reopen", r.Size())
	}
	copy(want[60*bs:], c[:4*bs])
	expect(t, r, 0, want)
	expect(t, r, 64, c[4*bs:])
	expect(t, r, 100, zeros(60))

	old, err := s.Clone("old", "v", "s1")
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if old.Size() != small {
		t.Fatalf("clone of a snapshot before the resize has size %d, want %d", old.Size(), small)
	}
	expect(t, old, 0, a)
	fresh, err := s.Clone("fresh", "v", "s2")
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if fresh.Size() != big {
		t.Fatalf("clone of a snapshot after the resize has size %d", fresh.Size())
	}
	expect(t, fresh, 0, want)
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("old"); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteSnapshot("s1"); err != nil {
		t.Fatal(err)
	}
	expect(t, r, 0, want)
	expect(t, r, 64, c[4*bs:])
}
