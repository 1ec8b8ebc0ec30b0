package replica

import (
	"math/bits"
	"slices"
	"sync"
)

// chunkBlocks is the number of blocks covered by one bitmap of a presence
// map: 4096 blocks, 16 MiB of volume, 512 bytes of memory.
const chunkBlocks = 4096

type bitmap [chunkBlocks / 64]uint64

// presence records which blocks a layer holds (data or zeroed). It is
// sparse: only 16 MiB chunks with at least one block have a bitmap, so its
// memory is proportional to written data. Safe for concurrent use.
type presence struct {
	mu     sync.RWMutex
	chunks map[int64]*bitmap
}

func newPresence() *presence { return &presence{chunks: make(map[int64]*bitmap)} }

// set marks blocks [b, b+n) present.
func (p *presence) set(b, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := b; i < b+n; i++ {
		c := i / chunkBlocks
		bm := p.chunks[c]
		if bm == nil {
			bm = new(bitmap)
			p.chunks[c] = bm
		}
		k := i % chunkBlocks
		bm[k/64] |= 1 << (k % 64)
	}
}

// clear marks blocks [b, b+n) absent, dropping bitmaps that become empty.
func (p *presence) clear(b, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := b; i < b+n; i++ {
		c := i / chunkBlocks
		bm := p.chunks[c]
		if bm == nil {
			i = (c+1)*chunkBlocks - 1
			continue
		}
		k := i % chunkBlocks
		bm[k/64] &^= 1 << (k % 64)
		if k == chunkBlocks-1 || i == b+n-1 {
			if *bm == (bitmap{}) {
				delete(p.chunks, c)
			}
		}
	}
}

// has reports whether block b is present.
func (p *presence) has(b int64) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	bm := p.chunks[b/chunkBlocks]
	k := b % chunkBlocks
	return bm != nil && bm[k/64]&(1<<(k%64)) != 0
}

// claim sets owner[i] = li for each block b+i that is present and whose
// owner is still unset (-1). It returns how many blocks it claimed.
func (p *presence) claim(owner []int16, b int64, li int16) int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	claimed := 0
	var bm *bitmap
	cur := int64(-1)
	for i := range owner {
		blk := b + int64(i)
		if c := blk / chunkBlocks; c != cur {
			cur, bm = c, p.chunks[c]
		}
		if bm == nil || owner[i] >= 0 {
			continue
		}
		k := blk % chunkBlocks
		if bm[k/64]&(1<<(k%64)) != 0 {
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
	for _, bm := range p.chunks {
		for _, w := range bm {
			n += int64(bits.OnesCount64(w))
		}
	}
	return n
}

// chunkList returns the indexes of the chunks holding blocks, ascending.
func (p *presence) chunkList() []int64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	cs := make([]int64, 0, len(p.chunks))
	for c := range p.chunks {
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
		bm := p.chunks[i/chunkBlocks]
		if bm == nil {
			i = (i/chunkBlocks+1)*chunkBlocks - 1
			continue
		}
		k := i % chunkBlocks
		if bm[k/64]&(1<<(k%64)) != 0 {
			return true
		}
	}
	return false
}
