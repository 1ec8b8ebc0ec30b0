package sensors

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	if h.Quantile(0.99) != 0 {
		t.Fatal("empty histogram")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var all []time.Duration
	for range 100000 {
		// Log-uniform from 10 µs to 10 s.
		d := time.Duration(10e3 * pow10(rng.Float64()*6))
		all = append(all, d)
		h.Add(d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := all[int(q*float64(len(all)))-1]
		got := h.Quantile(q)
		if ratio := float64(got) / float64(exact); ratio < 0.97 || ratio > 1.07 {
			t.Errorf("q%.3f = %v, exact %v (ratio %.3f)", q, got, exact, ratio)
		}
	}
	if h.Count() != 100000 || h.Max() != all[len(all)-1] {
		t.Errorf("count %d max %v", h.Count(), h.Max())
	}
	if h.Quantile(1) != h.Max() {
		t.Errorf("q1 = %v, max %v", h.Quantile(1), h.Max())
	}
}

func TestHistogramBuckets(t *testing.T) {
	prev := -1
	for us := uint64(0); us < 1<<20; us += 1 + us/64 {
		b := bucket(us)
		if b < prev {
			t.Fatalf("bucket(%d) = %d < %d: not monotonic", us, b, prev)
		}
		if upper(b) < us {
			t.Fatalf("upper(bucket(%d)) = %d", us, upper(b))
		}
		if b > 0 && upper(b-1) >= us {
			t.Fatalf("%d also fits bucket %d", us, b-1)
		}
		prev = b
	}
	var h Histogram
	h.Add(-time.Second) // a clock step: counts as 0
	if h.Quantile(0.5) != 0 {
		t.Fatal("negative duration")
	}
}

func pow10(x float64) float64 {
	r := 1.0
	for x >= 1 {
		r *= 10
		x--
	}
	// 10^x for x in [0,1) by a few Taylor terms of e^(x ln 10).
	y := x * 2.302585092994046
	e, term := 1.0, 1.0
	for i := 1; i < 20; i++ {
		term *= y / float64(i)
		e += term
	}
	return r * e
}

// A snapshot goes through JSON, and the difference of two is what was
// recorded in between.
func TestHistogramSnapshotSub(t *testing.T) {
	var h Histogram
	for i := range 100 {
		h.Add(time.Duration(i+1) * time.Second) // slow: the warm-up
	}
	before := h.Snapshot()
	for i := range 1000 {
		h.Add(time.Duration(i%10+1) * time.Millisecond)
	}
	b, err := json.Marshal(h.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var after HistogramSnapshot
	if err := json.Unmarshal(b, &after); err != nil {
		t.Fatal(err)
	}
	d := after.Sub(before)
	if d.Count() != 1000 {
		t.Fatalf("count %d, want 1000", d.Count())
	}
	if q := d.Quantile(0.99); q < 9*time.Millisecond || q > 11*time.Millisecond {
		t.Errorf("p99 of the interval %v, want about 10ms (the warm-up left out)", q)
	}
	if d.MaxNs > int64(11*time.Millisecond) {
		t.Errorf("max of the interval %v", time.Duration(d.MaxNs))
	}
	if after.Quantile(0.99) < time.Second {
		t.Errorf("p99 of everything %v, want the warm-up's seconds", after.Quantile(0.99))
	}
}
