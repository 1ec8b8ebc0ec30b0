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

// HistogramSnapshot is a histogram's counts at one moment, in a form that
// goes through JSON (bucket index -> count, empty buckets left out), so a
// process can publish it and another subtract an earlier one.
type HistogramSnapshot struct {
	Counts map[int]uint64 `json:"counts"`
	MaxNs  int64          `json:"max_ns"`
}

// Snapshot returns h's counts now.
func (h *Histogram) Snapshot() HistogramSnapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := HistogramSnapshot{Counts: map[int]uint64{}, MaxNs: int64(h.max)}
	for i, c := range h.counts {
		if c > 0 {
			s.Counts[i] = c
		}
	}
	return s
}

// Sub returns what was recorded between earlier and s. Its maximum is the
// upper edge of the highest bucket still counted (the exact maximum of the
// interval is not known), capped by s's maximum.
func (s HistogramSnapshot) Sub(earlier HistogramSnapshot) HistogramSnapshot {
	out := HistogramSnapshot{Counts: map[int]uint64{}}
	top := -1
	for i, c := range s.Counts {
		if d := c - min(c, earlier.Counts[i]); d > 0 {
			out.Counts[i] = d
			top = max(top, i)
		}
	}
	if top >= 0 {
		out.MaxNs = min(int64(upper(top))*int64(time.Microsecond), s.MaxNs)
	}
	return out
}

// Count is the number of durations in s.
func (s HistogramSnapshot) Count() uint64 {
	var n uint64
	for _, c := range s.Counts {
		n += c
	}
	return n
}

// Quantile is as Histogram.Quantile, for the snapshot.
func (s HistogramSnapshot) Quantile(q float64) time.Duration {
	var h Histogram
	for i, c := range s.Counts {
		if i >= 0 && i < len(h.counts) {
			h.counts[i] = c
			h.n += c
		}
	}
	h.max = time.Duration(s.MaxNs)
	return h.Quantile(q)
}
