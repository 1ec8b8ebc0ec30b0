package sensors

import (
	"math/bits"
	"sync"
	"time"
)

// Histogram counts durations in log-linear buckets (16 per power of two:
// a quantile is within about 4% of the true value). Safe for concurrent
// use; the zero value is ready.
type Histogram struct {
	mu     sync.Mutex
	counts [64 * subBuckets]uint64
	n      uint64
	max    time.Duration
}

const subBits = 4
const subBuckets = 1 << subBits

// bucket returns the bucket of a duration in microseconds.
func bucket(us uint64) int {
	if us < subBuckets {
		return int(us)
	}
	exp := bits.Len64(us) - 1 // >= subBits
	mant := (us >> (exp - subBits)) & (subBuckets - 1)
	return (exp-subBits+1)*subBuckets + int(mant)
}

// upper is the largest value (µs) in bucket i.
func upper(i int) uint64 {
	if i < subBuckets {
		return uint64(i)
	}
	exp := i/subBuckets + subBits - 1
	mant := uint64(i % subBuckets)
	lo := (subBuckets + mant) << (exp - subBits)
	return lo + (1 << (exp - subBits)) - 1
}

// Add records d (negative counts as 0).
func (h *Histogram) Add(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	h.mu.Lock()
	h.counts[bucket(us)]++
	h.n++
	if d > h.max {
		h.max = d
	}
	h.mu.Unlock()
}

// Count is the number of durations recorded.
func (h *Histogram) Count() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// Quantile returns the duration q (0..1) of the recorded ones are at or
// below (the upper edge of its bucket, at most the maximum seen), 0 when
// none are recorded.
func (h *Histogram) Quantile(q float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	if rank > h.n {
		rank = h.n
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			d := time.Duration(upper(i)) * time.Microsecond
			return min(d, h.max)
		}
	}
	return h.max
}

// Max is the longest duration recorded.
func (h *Histogram) Max() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.max
}
