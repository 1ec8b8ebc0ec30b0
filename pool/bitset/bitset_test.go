package bitset

import "testing"

func TestSet(t *testing.T) {
	s := New(130)
	if len(s) != 3 || !s.Empty() || s.Count() != 0 {
		t.Fatalf("new set: %d words, empty %v, count %d", len(s), s.Empty(), s.Count())
	}
	for _, i := range []int64{0, 63, 64, 129} {
		s.Add(i)
	}
	s.Add(64) // twice
	if s.Count() != 4 || s.Empty() {
		t.Fatalf("count %d after adding 4", s.Count())
	}
	for i := int64(0); i < 130; i++ {
		want := i == 0 || i == 63 || i == 64 || i == 129
		if s.Has(i) != want {
			t.Errorf("Has(%d) = %v", i, !want)
		}
	}
	c := s.Clone()
	s.Remove(63)
	s.Remove(62) // absent
	if s.Has(63) || !c.Has(63) || s.Count() != 3 || c.Count() != 4 {
		t.Errorf("after Remove: s has 63 %v (count %d), clone has 63 %v (count %d)", s.Has(63), s.Count(), c.Has(63), c.Count())
	}
	for _, i := range []int64{0, 64, 129} {
		s.Remove(i)
	}
	if !s.Empty() {
		t.Error("not empty after removing everything")
	}
}
