package engine

import "github.com/ballast-io/ballast/pool/bitset"

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

// newMissed returns the empty set of chunks a replica out of the in-sync
// set missed, for a volume of size bytes: one bit per chunk.
func newMissed(size int64) bitset.Set { return bitset.New(chunkOf(size + rebuildChunk - 1)) }
