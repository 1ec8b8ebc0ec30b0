// Package bitset is a fixed-size set of small non-negative integers, one
// bit each: which blocks of a layer are present (pool/replica), which
// chunks of a volume a replica missed (pool/engine).
package bitset

import "math/bits"

// Set holds the integers [0, 64*len(s)). It is not safe for concurrent
// use; its owner guards it.
type Set []uint64

// New returns an empty set with room for [0, n).
func New(n int64) Set { return make(Set, (n+63)/64) }

// Add puts i in the set.
func (s Set) Add(i int64) { s[i/64] |= 1 << (i % 64) }

// Remove takes i out of the set.
func (s Set) Remove(i int64) { s[i/64] &^= 1 << (i % 64) }

// Has says whether i is in the set.
func (s Set) Has(i int64) bool { return s[i/64]&(1<<(i%64)) != 0 }

// Count is how many integers the set holds.
func (s Set) Count() int64 {
	n := 0
	for _, w := range s {
		n += bits.OnesCount64(w)
	}
	return int64(n)
}

// Empty says whether the set holds nothing.
func (s Set) Empty() bool {
	for _, w := range s {
		if w != 0 {
			return false
		}
	}
	return true
}

// Clone returns a copy that shares nothing with s.
func (s Set) Clone() Set { return append(Set(nil), s...) }
