package replica

import (
	"slices"
	"sync"

	"github.com/ballast-io/ballast/pool/bitset"
)

// spanBlocks is the number of blocks one bitmap of a presence map covers
// (a span): 4096 blocks, 16 MiB of volume, 512 bytes of memory. (Not the
// engine's rebuild chunk, which is a unit of copying.)
const spanBlocks = 4096

// presence records which blocks a layer holds (data or zeroed). It is
// sparse: only 16 MiB spans with at least one block have a bitmap, so its
// memory is proportional to written data. Safe for concurrent use.
type presence struct {
	mu    sync.RWMutex
	spans map[int64]bitset.Set // by span index; a bit per block of the span
}

func newPresence() *presence { return &presence{spans: make(map[int64]bitset.Set)} }

// set marks blocks [b, b+n) present.
func (p *presence) set(b, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := b; i < b+n; i++ {
		c := i / spanBlocks
		bm := p.spans[c]
		if bm == nil {
			bm = bitset.New(spanBlocks)
			p.spans[c] = bm
		}
		bm.Add(i % spanBlocks)
	}
}

// clear marks blocks [b, b+n) absent, dropping bitmaps that become empty.
func (p *presence) clear(b, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := b; i < b+n; i++ {
		c := i / spanBlocks
		bm := p.spans[c]
		if bm == nil {
			i = (c+1)*spanBlocks - 1
			continue
		}
		k := i % spanBlocks
		bm.Remove(k)
		if (k == spanBlocks-1 || i == b+n-1) && bm.Empty() {
			delete(p.spans, c)
		}
	}
}

// has reports whether block b is present.
func (p *presence) has(b int64) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	bm := p.spans[b/spanBlocks]
	return bm != nil && bm.Has(b%spanBlocks)
}

// claim sets owner[i] = li for each block b+i that is present and whose
// owner is still unset (-1). It returns how many blocks it claimed.
func (p *presence) claim(owner []int16, b int64, li int16) int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	claimed := 0
	var bm bitset.Set
	cur := int64(-1)
	for i := range owner {
		blk := b + int64(i)
		if c := blk / spanBlocks; c != cur {
			cur, bm = c, p.spans[c]
		}
		if bm == nil || owner[i] >= 0 {
			continue
		}
		if bm.Has(blk % spanBlocks) {
			owner[i] = li
			claimed++
		}
	}
	return claimed
}

// count returns the number of present blocks.
func (p *presence) count() int64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	var n int64
	for _, bm := range p.spans {
		n += bm.Count()
	}
	return n
}

// spanList returns the indexes of the spans holding blocks, ascending.
func (p *presence) spanList() []int64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	cs := make([]int64, 0, len(p.spans))
	for c := range p.spans {
		cs = append(cs, c)
	}
	slices.Sort(cs)
	return cs
}

// any reports whether any block of [b, b+n) is present.
func (p *presence) any(b, n int64) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for i := b; i < b+n; i++ {
		bm := p.spans[i/spanBlocks]
		if bm == nil {
			i = (i/spanBlocks+1)*spanBlocks - 1
			continue
		}
		if bm.Has(i % spanBlocks) {
			return true
		}
	}
	return false
}

// spansOf calls fn with the index of each span holding blocks and its
// bitmap, which fn must not keep or change.
func (p *presence) spansOf(fn func(span int64, bm bitset.Set)) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for c, bm := range p.spans {
		fn(c, bm)
	}
}
