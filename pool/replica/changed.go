package replica

import (
	"fmt"

	"github.com/ballast-io/ballast/pool/bitset"
	"github.com/ballast-io/ballast/pool/block"
)

// Changed answers which units (of unit bytes, a multiple of the block
// size) of replica id may differ between its snapshots from and to: those
// with a block written or discarded in a layer above from's, up to and
// including to's. It reads no data, only the layers' presence maps. A unit
// it leaves out is the same in both snapshots; one it includes may be
// (written with the same bytes, or a merge of a deleted snapshot copied
// it). Either snapshot missing, or from not older than to, is
// ErrNotFound: the caller then reads everything.
func (s *Store) Changed(id, from, to string, unit int64) (bitset.Set, error) {
	if unit <= 0 || unit%block.Size != 0 {
		return nil, fmt.Errorf("changed blocks of %s: unit %d: %w", id, unit, block.ErrUnaligned)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := readMeta(s.dir, id)
	if err != nil {
		return nil, fmt.Errorf("changed blocks: %w", err)
	}
	i, j := indexOf(m.Layers, m.Snapshots[from]), indexOf(m.Layers, m.Snapshots[to])
	if i < 0 || j < 0 || i >= j {
		return nil, fmt.Errorf("changed blocks of %s between snapshots %q and %q: %w", id, from, to, ErrNotFound)
	}
	size := m.layerSize(m.Layers[j])
	per := unit / block.Size
	out := bitset.New((size + unit - 1) / unit)
	for _, lid := range m.Layers[i+1 : j+1] {
		l := s.layers[lid]
		if l == nil {
			if l, err = openLayer(s.dir, lid, m.layerSize(lid)); err != nil {
				return nil, fmt.Errorf("changed blocks of %s: %w", id, err)
			}
			defer l.close()
		}
		l.present.spansOf(func(span int64, bm bitset.Set) {
			for k := int64(0); k < spanBlocks; k++ {
				if b := span*spanBlocks + k; b*block.Size < size && bm.Has(k) {
					out.Add(b / per)
				}
			}
		})
	}
	return out, nil
}
