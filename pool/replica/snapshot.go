package replica

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ballast-io/ballast/pool/block"
)

// SnapshotInfo describes one snapshot of a replica.
type SnapshotInfo struct {
	Name    string
	Created time.Time
	Layer   string // ID of the frozen layer holding the snapshot's top
}

// mergeBatch is the number of blocks DeleteSnapshot copies per exclusive
// lock, so that I/O continues between batches.
const mergeBatch = 256

// Snapshot freezes the current head as snapshot name and starts a new,
// empty head. It costs a flush of the head, two empty files and one
// metadata write, whatever the volume's size.
func (r *Replica) Snapshot(name string) error { return r.snapshot(name, anyEpoch) }

func (r *Replica) snapshot(name string, epoch uint64) error {
	if name == "" || strings.ContainsRune(name, 0) {
		return fmt.Errorf("replica %s: snapshot %q: invalid name", r.id, name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.admit(epoch, "snapshot"); err != nil {
		return err
	}
	if _, ok := r.meta.Snapshots[name]; ok {
		return fmt.Errorf("replica %s: snapshot %s: %w", r.id, name, ErrExists)
	}
	head := r.layers[len(r.layers)-1]
	if err := head.sync(); err != nil {
		return fmt.Errorf("replica %s: snapshot %s: %w", r.id, name, err)
	}
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	lid := newLayerID()
	if err := createLayer(s.dir, lid, r.size.Load()); err != nil {
		return fmt.Errorf("replica %s: snapshot %s: %w", r.id, name, err)
	}
	l, err := openLayer(s.dir, lid, r.size.Load())
	if err != nil {
		removeLayerFiles(s.dir, lid)
		return fmt.Errorf("replica %s: snapshot %s: %w", r.id, name, err)
	}
	m := r.meta.clone()
	m.Snapshots[name] = head.id
	m.Created[name] = time.Now().UTC()
	m.Layers = append(m.Layers, lid)
	if err := writeMeta(s.dir, m); err != nil {
		l.close()
		removeLayerFiles(s.dir, lid)
		return fmt.Errorf("replica %s: snapshot %s: %w", r.id, name, err)
	}
	l.refs = 1
	s.layers[lid] = l
	r.layers = append(slices.Clip(r.layers), l)
	r.meta = m
	return nil
}

// Resize grows the replica to size bytes, in O(1) like a snapshot: the
// head is frozen (unnamed) and a new, larger head starts; reads of blocks
// beyond a lower layer's size fall through it as absent, so the new space
// reads as zeros. Shrinking is refused.
func (r *Replica) Resize(size int64) error { return r.resize(size, anyEpoch) }

func (r *Replica) resize(size int64, epoch uint64) error {
	if size%block.Size != 0 {
		return fmt.Errorf("replica %s: resize to %d: %w", r.id, size, block.ErrUnaligned)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.admit(epoch, "resize"); err != nil {
		return err
	}
	switch {
	case size == r.size.Load():
		return nil
	case size < r.size.Load():
		return fmt.Errorf("replica %s: resize from %d to %d bytes: %w", r.id, r.size.Load(), size, ErrShrink)
	}
	head := r.layers[len(r.layers)-1]
	if err := head.sync(); err != nil {
		return fmt.Errorf("replica %s: resize: %w", r.id, err)
	}
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	lid := newLayerID()
	if err := createLayer(s.dir, lid, size); err != nil {
		return fmt.Errorf("replica %s: resize: %w", r.id, err)
	}
	l, err := openLayer(s.dir, lid, size)
	if err != nil {
		removeLayerFiles(s.dir, lid)
		return fmt.Errorf("replica %s: resize: %w", r.id, err)
	}
	m := r.meta.clone()
	if m.LayerSizes == nil {
		m.LayerSizes = map[string]int64{}
	}
	for _, old := range m.Layers {
		m.LayerSizes[old] = m.layerSize(old)
	}
	m.Size = size
	m.Layers = append(m.Layers, lid)
	if err := writeMeta(s.dir, m); err != nil {
		l.close()
		removeLayerFiles(s.dir, lid)
		return fmt.Errorf("replica %s: resize: %w", r.id, err)
	}
	l.refs = 1
	s.layers[lid] = l
	r.layers = append(slices.Clip(r.layers), l)
	r.meta = m
	r.size.Store(size)
	return nil
}

// Snapshots lists the replica's snapshots, oldest first.
func (r *Replica) Snapshots() []SnapshotInfo {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []SnapshotInfo
	for name, lid := range r.meta.Snapshots {
		out = append(out, SnapshotInfo{Name: name, Created: r.meta.Created[name], Layer: lid})
	}
	slices.SortFunc(out, func(a, b SnapshotInfo) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// DeleteSnapshot deletes snapshot name. If another replica (a clone) still
// references the snapshot's layer, only the name goes and the layer stays
// in the chain, anonymous. Otherwise the layer is merged into the layer
// above it (blocks it holds that the child does not are copied, in batches,
// while I/O continues), removed from the chain, and its files deleted.
// The views of the head and of the other snapshots do not change.
func (r *Replica) DeleteSnapshot(name string) error { return r.deleteSnapshot(name, anyEpoch) }

func (r *Replica) deleteSnapshot(name string, epoch uint64) error {
	r.deleteMu.Lock()
	defer r.deleteMu.Unlock()

	lid, shared, err := r.dropSnapshotName(name, epoch)
	if err != nil || shared {
		return err
	}
	if err := r.merge(lid); err != nil {
		return fmt.Errorf("replica %s: delete snapshot %s: %w", r.id, name, err)
	}
	return nil
}

// dropSnapshotName removes the name from the metadata (the layer stays in
// the chain, so a crash during the merge leaves a consistent replica) and
// reports whether another replica references the layer.
func (r *Replica) dropSnapshotName(name string, epoch uint64) (lid string, shared bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.admit(epoch, "delete snapshot"); err != nil {
		return "", false, err
	}
	lid, ok := r.meta.Snapshots[name]
	if !ok {
		return "", false, fmt.Errorf("replica %s: snapshot %s: %w", r.id, name, ErrNotFound)
	}
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	refs, err := s.references(r.id)
	if err != nil {
		return "", false, fmt.Errorf("replica %s: delete snapshot %s: %w", r.id, name, err)
	}
	m := r.meta.clone()
	delete(m.Snapshots, name)
	delete(m.Created, name)
	if err := writeMeta(s.dir, m); err != nil {
		return "", false, fmt.Errorf("replica %s: delete snapshot %s: %w", r.id, name, err)
	}
	r.meta = m
	return lid, refs[lid], nil
}

// merge copies layer lid into its child and removes it from the chain.
func (r *Replica) merge(lid string) error {
	r.mu.RLock()
	src := r.layerByID(lid)
	r.mu.RUnlock()
	if src == nil {
		return fmt.Errorf("layer %s not in chain", lid)
	}
	buf := block.Aligned(mergeBatch * block.Size)
	for _, c := range src.present.spanList() {
		for b := c * spanBlocks; b < (c+1)*spanBlocks && b < src.nblocks; b += mergeBatch {
			n := min(mergeBatch, src.nblocks-b)
			if err := r.mergeBatch(lid, b, n, buf); err != nil {
				return err
			}
		}
	}
	return r.finishMerge(lid)
}

func (r *Replica) layerByID(lid string) *layer {
	for _, l := range r.layers {
		if l.id == lid {
			return l
		}
	}
	return nil
}

// frozenPair returns the chain index of frozen layer lid, the layer and the
// layer above it. The caller holds r.mu.
func (r *Replica) frozenPair(lid string) (i int, src, child *layer, err error) {
	i = slices.IndexFunc(r.layers, func(l *layer) bool { return l.id == lid })
	if i < 0 || i == len(r.layers)-1 {
		return 0, nil, nil, fmt.Errorf("layer %s not frozen in chain", lid)
	}
	return i, r.layers[i], r.layers[i+1], nil
}

// mergeBatch copies the blocks of [b, b+n) that layer lid holds and its
// child does not into the child.
func (r *Replica) mergeBatch(lid string, b, n int64, buf []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkOpen(); err != nil {
		return err
	}
	_, src, child, err := r.frozenPair(lid)
	if err != nil {
		return err
	}
	owner := make([]int16, n)
	for k := range owner {
		owner[k] = -1
	}
	child.present.claim(owner, b, 1)
	src.present.claim(owner, b, 0)
	var bad []int64
	for k := int64(0); k < n; {
		if owner[k] != 0 {
			k++
			continue
		}
		j := k + 1
		for j < n && owner[j] == 0 {
			j++
		}
		seg := buf[:(j-k)*block.Size]
		v := make([]verdict, j-k)
		if err := src.read(seg, b+k, v); err != nil {
			return err
		}
		// Copy each sub-run of blocks that are really in src.
		for x := 0; x < len(v); {
			if v[x] == vBad {
				bad = append(bad, (b+k+int64(x))*block.Size)
			}
			if v[x] != vData && v[x] != vZero {
				x++
				continue
			}
			y := x + 1
			zeroed := []bool{v[x] == vZero}
			for y < len(v) && (v[y] == vData || v[y] == vZero) {
				zeroed = append(zeroed, v[y] == vZero)
				y++
			}
			if err := child.put(seg[x*block.Size:y*block.Size], b+k+int64(x), int64(y-x), zeroed); err != nil {
				return err
			}
			x = y
		}
		k = j
	}
	if len(bad) > 0 {
		return &block.ChecksumError{Offsets: bad}
	}
	return nil
}

// finishMerge makes the child durable, drops layer lid from the chain and
// deletes its files unless another replica references it.
func (r *Replica) finishMerge(lid string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkOpen(); err != nil {
		return err
	}
	i, src, child, err := r.frozenPair(lid)
	if err != nil {
		return err
	}
	if err := child.sync(); err != nil {
		return err
	}
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	m := r.meta.clone()
	m.Layers = slices.Delete(m.Layers, i, i+1)
	if err := writeMeta(s.dir, m); err != nil {
		return err
	}
	r.meta = m
	r.layers = slices.Delete(slices.Clone(r.layers), i, i+1)
	s.releaseLocked(src)
	refs, err := s.references("")
	if err != nil {
		return err
	}
	if !refs[lid] && s.layers[lid] == nil {
		if err := removeLayerFiles(s.dir, lid); err != nil {
			return errors.Join(fmt.Errorf("remove merged layer %s (left for gc)", lid), err)
		}
	}
	return nil
}
