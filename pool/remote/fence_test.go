package remote

import (
	"errors"
	"testing"
)

func TestFence(t *testing.T) {
	type step struct {
		raise   uint64 // if > 0, Raise(raise) first
		admit   uint64
		fenced  bool   // Admit(admit) must fail with ErrFenced
		current uint64 // Epoch() after the step
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"zero admits everything", []step{{admit: 0, current: 0}, {admit: 7, current: 0}}},
		{"raise rejects older", []step{{raise: 5, admit: 4, fenced: true, current: 5}}},
		{"raise admits equal", []step{{raise: 5, admit: 5, current: 5}}},
		{"raise admits newer", []step{{raise: 5, admit: 6, current: 5}}},
		{"admit does not raise", []step{{admit: 9, current: 0}, {admit: 1, current: 0}}},
		{"raise is monotonic", []step{
			{raise: 5, admit: 5, current: 5},
			{raise: 3, admit: 4, fenced: true, current: 5},
			{raise: 5, admit: 5, current: 5},
		}},
		{"raise twice", []step{
			{raise: 2, admit: 1, fenced: true, current: 2},
			{raise: 8, admit: 7, fenced: true, current: 8},
			{admit: 8, current: 8},
		}},
		{"max epoch", []step{{raise: ^uint64(0), admit: ^uint64(0) - 1, fenced: true, current: ^uint64(0)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Fence
			for i, s := range tt.steps {
				if s.raise > 0 {
					if got := f.Raise(s.raise); got != s.current {
						t.Fatalf("step %d: Raise(%d) = %d, want %d", i, s.raise, got, s.current)
					}
				}
				err := f.Admit(s.admit)
				if s.fenced != (err != nil) || (err != nil && !errors.Is(err, ErrFenced)) {
					t.Fatalf("step %d: Admit(%d) = %v, fenced want %v", i, s.admit, err, s.fenced)
				}
				if f.Epoch() != s.current {
					t.Fatalf("step %d: epoch %d, want %d", i, f.Epoch(), s.current)
				}
			}
		})
	}
}
