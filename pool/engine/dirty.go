package engine

import "math/bits"

// chunkOf is the chunk of a byte offset; delta catch-up copies whole
// chunks of rebuildChunk bytes.
func chunkOf(off int64) int64 { return off / rebuildChunk }

// chunkRange calls f for every chunk that [off, off+length) touches.
func chunkRange(off, length int64, f func(int64)) {
	if length <= 0 {
		return
	}
	for c := chunkOf(off); c <= chunkOf(off+length-1); c++ {
		f(c)
	}
}

// chunkSet is a small set of chunks: what was written since a flush.
type chunkSet map[int64]struct{}

// bitmap is the set of chunks a replica out of the in-sync set missed:
// one bit per chunk of the volume.
type bitmap []uint64

func newBitmap(size int64) bitmap { return make(bitmap, (chunkOf(size+rebuildChunk-1)+63)/64) }

func (b bitmap) set(c int64) { b[c/64] |= 1 << (c % 64) }

func (b bitmap) has(c int64) bool { return b[c/64]&(1<<(c%64)) != 0 }

// count is how many chunks are set.
func (b bitmap) count() int64 {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return int64(n)
}

func (b bitmap) clone() bitmap { return append(bitmap(nil), b...) }
