package replica

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/ballast-io/ballast/pool/block"
)

// Replica is one open copy of a volume: a chain of layers, bottom to head.
// It implements block.Device. ReadAt, WriteAt, Discard and Repair may run
// concurrently on non-overlapping ranges; they share r.mu, which Snapshot and
// each batch of a snapshot merge take exclusively.
type Replica struct {
	s    *Store
	id   string
	size atomic.Int64 // grows by Resize

	mu     sync.RWMutex
	layers []*layer // bottom..head, guarded by mu
	meta   meta     // guarded by mu; written to disk under s.mu as well
	closed bool     // guarded by mu

	deleteMu sync.Mutex // serializes DeleteSnapshot
}

var _ block.Device = (*Replica)(nil)

// ID returns the replica's ID.
func (r *Replica) ID() string { return r.id }

// Size returns the volume size in bytes.
func (r *Replica) Size() int64 { return r.size.Load() }

func (r *Replica) checkOpen() error {
	if r.closed {
		return fmt.Errorf("replica %s: %w", r.id, os.ErrClosed)
	}
	return nil
}

// ReadAt reads len(p) bytes at off. Blocks whose checksum does not match
// are zeroed in p and reported by a *block.ChecksumError; the other blocks
// are read normally.
func (r *Replica) ReadAt(p []byte, off int64) (int, error) { return r.readAt(p, off, anyEpoch) }

func (r *Replica) readAt(p []byte, off int64, epoch uint64) (int, error) {
	if err := block.Check(off, int64(len(p)), r.size.Load()); err != nil {
		return 0, fmt.Errorf("replica %s: read: %w", r.id, err)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if err := r.admit(epoch, "read"); err != nil {
		return 0, err
	}
	var bad []int64
	if err := r.readChain(len(r.layers)-1, p, off/block.Size, &bad); err != nil {
		return 0, fmt.Errorf("replica %s: read at %d: %w", r.id, off, err)
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return len(p), &block.ChecksumError{Offsets: bad}
	}
	return len(p), nil
}

// readChain reads the blocks starting at b into p from layers top and
// below, one read per run of blocks held by the same layer.
func (r *Replica) readChain(top int, p []byte, b int64, bad *[]int64) error {
	n := int64(len(p) / block.Size)
	owner := r.owners(top, b, n)
	for i := int64(0); i < n; {
		j := i + 1
		for j < n && owner[j] == owner[i] {
			j++
		}
		seg := p[i*block.Size : j*block.Size]
		if owner[i] < 0 {
			clear(seg)
			i = j
			continue
		}
		li := int(owner[i])
		v := make([]verdict, j-i)
		if err := r.layers[li].read(seg, b+i, v); err != nil {
			return err
		}
		for k, vk := range v {
			blk := seg[k*block.Size : (k+1)*block.Size]
			switch vk {
			case vFall:
				if err := r.readChain(li-1, blk, b+i+int64(k), bad); err != nil {
					return err
				}
			case vBad:
				clear(blk)
				*bad = append(*bad, (b+i+int64(k))*block.Size)
			}
		}
		i = j
	}
	return nil
}

// owners returns, for each block of [b, b+n), the index of the highest
// layer at or below top that holds it, or -1.
func (r *Replica) owners(top int, b, n int64) []int16 {
	owner := make([]int16, n)
	for i := range owner {
		owner[i] = -1
	}
	left := int(n)
	for li := top; li >= 0 && left > 0; li-- {
		left -= r.layers[li].present.claim(owner, b, int16(li))
	}
	return owner
}

// WriteAt writes p at off into the head layer: one checksum read, one
// checksum write and one data write.
func (r *Replica) WriteAt(p []byte, off int64) (int, error) { return r.writeAt(p, off, anyEpoch) }

func (r *Replica) writeAt(p []byte, off int64, epoch uint64) (int, error) {
	if err := block.Check(off, int64(len(p)), r.size.Load()); err != nil {
		return 0, fmt.Errorf("replica %s: write: %w", r.id, err)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if err := r.admit(epoch, "write"); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	head := r.layers[len(r.layers)-1]
	if err := head.put(p, off/block.Size, int64(len(p)/block.Size), nil); err != nil {
		return 0, fmt.Errorf("replica %s: write at %d: %w", r.id, off, err)
	}
	return len(p), nil
}

// Flush makes every completed write durable: fdatasync of the head's data
// and checksum files, and of any other layer repaired since the last flush.
func (r *Replica) Flush() error { return r.flush(anyEpoch) }

func (r *Replica) flush(epoch uint64) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if err := r.admit(epoch, "flush"); err != nil {
		return err
	}
	for _, l := range r.layers {
		if l.dirty.Load() {
			if err := l.sync(); err != nil {
				return fmt.Errorf("replica %s: flush: %w", r.id, err)
			}
		}
	}
	return nil
}

// Discard returns [off, off+length) to the pool: the head's data is punched
// out, and blocks a lower layer holds are recorded as zeroed in the head so
// that they read as zeros rather than falling through.
func (r *Replica) Discard(off, length int64) error { return r.discard(off, length, anyEpoch) }

func (r *Replica) discard(off, length int64, epoch uint64) error {
	if err := block.Check(off, length, r.size.Load()); err != nil {
		return fmt.Errorf("replica %s: discard: %w", r.id, err)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if err := r.admit(epoch, "discard"); err != nil {
		return err
	}
	if length == 0 {
		return nil
	}
	top := len(r.layers) - 1
	head := r.layers[top]
	b, n := off/block.Size, length/block.Size
	// Record the new states first, then punch: a crash in between leaves
	// entries that read as the discard already done.
	for start := b; start < b+n; {
		cnt := min(spanBlocks-start%spanBlocks, b+n-start)
		owner := r.owners(top-1, start, cnt)
		lower := make([]bool, cnt)
		touched := head.present.any(start, cnt)
		for i, o := range owner {
			lower[i] = o >= 0
			touched = touched || lower[i]
		}
		if touched {
			if err := head.discard(start, lower); err != nil {
				return fmt.Errorf("replica %s: discard at %d: %w", r.id, off, err)
			}
		}
		start += cnt
	}
	if err := head.punch(b, n); err != nil {
		return fmt.Errorf("replica %s: discard at %d: %w", r.id, off, err)
	}
	return nil
}

// Repair rewrites the blocks at off with good, the content another replica
// returned for them, with fresh checksums. Each block is rewritten in the
// layer that holds it (the head if none does).
func (r *Replica) Repair(off int64, good []byte) error { return r.repair(off, good, anyEpoch) }

func (r *Replica) repair(off int64, good []byte, epoch uint64) error {
	if err := block.Check(off, int64(len(good)), r.size.Load()); err != nil {
		return fmt.Errorf("replica %s: repair: %w", r.id, err)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if err := r.admit(epoch, "repair"); err != nil {
		return err
	}
	top := len(r.layers) - 1
	b, n := off/block.Size, int64(len(good)/block.Size)
	owner := r.owners(top, b, n)
	for i := int64(0); i < n; {
		j := i + 1
		for j < n && owner[j] == owner[i] {
			j++
		}
		li := int(owner[i])
		if li < 0 {
			li = top
		}
		if err := r.layers[li].put(good[i*block.Size:j*block.Size], b+i, j-i, nil); err != nil {
			return fmt.Errorf("replica %s: repair at %d: %w", r.id, off, err)
		}
		i = j
	}
	return nil
}

// Allocated returns the bytes on disk of every layer in the replica's chain,
// its own head and unshared snapshots AND the layers it shares with clones or
// with its clone source, so the sum over replicas can exceed Store.Usage.
func (r *Replica) Allocated() int64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var total int64
	for _, l := range r.layers {
		total += l.allocated()
	}
	return total
}

// Close closes the replica. Its layers stay open while another open replica
// uses them.
func (r *Replica) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	for _, l := range r.layers {
		r.s.releaseLocked(l)
	}
	delete(r.s.open, r.id)
	return nil
}
