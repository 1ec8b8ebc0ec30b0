package sensors

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSink fails its writes while down is set.
type fakeSink struct {
	down   atomic.Bool
	writes atomic.Int64
	closed atomic.Bool
}

func (f *fakeSink) WriteBatch(context.Context, Batch) error {
	if f.down.Load() {
		return errors.New("gocql: no hosts available in the pool")
	}
	f.writes.Add(1)
	return nil
}
func (f *fakeSink) WriteAlert(context.Context, Reading) error { return f.WriteBatch(nil, Batch{}) }
func (f *fakeSink) LastAlert(context.Context, string) (Reading, error) {
	return Reading{}, nil
}
func (f *fakeSink) Close() { f.closed.Store(true) }

// TestRedialSink: writes failing on the first session (its store moved)
// make the sink open a second one after redialAfter failures, not before,
// and close the first; a failing open keeps the old session.
func TestRedialSink(t *testing.T) {
	ctx := context.Background()
	first, second := &fakeSink{}, &fakeSink{}
	opens := 0
	var openErr error
	open := func(context.Context) (sink, error) {
		opens++
		if openErr != nil {
			return nil, openErr
		}
		return second, nil
	}
	s := newRedialSink(first, open, testLogger(t))
	s.opened = time.Now().Add(-time.Minute)
	if err := s.WriteBatch(ctx, Batch{}); err != nil || first.writes.Load() != 1 {
		t.Fatalf("healthy write: %v, %d writes", err, first.writes.Load())
	}
	first.down.Store(true)
	openErr = errors.New("no such host")
	for i := 0; i < redialAfter; i++ {
		if err := s.WriteBatch(ctx, Batch{}); err == nil {
			t.Fatal("a write on a down session succeeded")
		}
	}
	if opens != 1 || first.closed.Load() {
		t.Fatalf("after %d failures with the store not found: %d opens, first closed %v; want 1 open, first kept", redialAfter, opens, first.closed.Load())
	}
	openErr = nil
	s.opened = time.Now().Add(-time.Minute)
	if err := s.WriteBatch(ctx, Batch{}); err == nil {
		t.Fatal("a write on a down session succeeded")
	}
	if opens != 2 || !first.closed.Load() {
		t.Fatalf("%d opens, first closed %v; want a second session and the first closed", opens, first.closed.Load())
	}
	if err := s.WriteBatch(ctx, Batch{}); err != nil || second.writes.Load() != 1 {
		t.Fatalf("write on the new session: %v, %d writes", err, second.writes.Load())
	}
	// A permanent error is not a lost store.
	second.down.Store(true)
	for i := 0; i < 2*redialAfter; i++ {
		s.result(ctx, s.gen, Permanent(errors.New("bad statement")))
	}
	if opens != 2 {
		t.Fatalf("permanent errors opened a session (%d opens)", opens)
	}
}
