package sensors

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
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
	open := func(context.Context, []string) (sink, error) {
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

// TestRedialWatch: a session is opened again as soon as the store's name
// resolves to a new address (also after an empty answer), not when an
// address only goes away, and again on the next look-up if the open
// failed.
func TestRedialWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	answer := []string{"10.0.0.2"}
	failing := false
	fail := func(f bool) {
		mu.Lock()
		failing = f
		mu.Unlock()
	}
	set := func(a ...string) {
		mu.Lock()
		answer = a
		mu.Unlock()
	}
	lookup := func(_ context.Context, host string) ([]string, error) {
		if host != "cql" {
			t.Errorf("looked up %q, want cql only", host)
		}
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return nil, &net.DNSError{Err: "i/o timeout", Name: host, IsTimeout: true}
		}
		if answer == nil {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		return slices.Clone(answer), nil
	}
	var opens atomic.Int64
	var openErr atomic.Bool
	var lastHosts atomic.Value
	open := func(_ context.Context, hosts []string) (sink, error) {
		opens.Add(1)
		lastHosts.Store(hosts)
		if openErr.Load() {
			return nil, errors.New("connection refused")
		}
		return &fakeSink{}, nil
	}
	first := &fakeSink{}
	s := newRedialSink(first, open, testLogger(t))
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.watch(ctx, []string{"cql:9042", "10.9.9.9:9042"}, 5*time.Millisecond, lookup)
	}()
	defer func() { cancel(); <-done }()

	waitOpens := func(want int64, what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for opens.Load() < want && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond) // ten more look-ups: no extra opens
		if got := opens.Load(); got != want {
			t.Fatalf("%s: %d sessions opened, want %d", what, got, want)
		}
	}
	waitOpens(0, "same address")
	set("10.0.0.2", "10.0.0.3")
	waitOpens(1, "a second address")
	if h := lastHosts.Load().([]string); !slices.Equal(h, []string{"10.0.0.3:9042"}) {
		t.Fatalf("new session to %v, want the new address only", h)
	}
	if !first.closed.Load() {
		t.Fatal("the first session was not closed")
	}
	set("10.0.0.3")
	waitOpens(1, "an address gone")
	fail(true)
	waitOpens(1, "look-ups failing")
	fail(false)
	waitOpens(1, "the same address after failed look-ups")
	set()
	waitOpens(1, "no answer")
	openErr.Store(true)
	set("10.0.0.4")
	deadline := time.Now().Add(5 * time.Second)
	for opens.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if opens.Load() < 3 {
		t.Fatalf("a failed open was not tried again (%d opens)", opens.Load())
	}
	openErr.Store(false)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if _, gen := s.get(); gen == 2 {
			break
		}
	}
	waitOpens(opens.Load(), "after the open succeeded")
	if cur, gen := s.get(); cur == sink(first) || gen != 2 {
		t.Fatalf("session generation %d, want 2 (one per successful open)", gen)
	}
}

func TestHostNames(t *testing.T) {
	got := hostNames([]string{"cql:9042", "cql", "cql:9042", "10.0.0.1:9042", "::1", "[fe80::1]:9042", "db.example"})
	if want := []hostPort{{"cql", "9042"}, {"cql", ""}, {"db.example", ""}}; !slices.Equal(got, want) {
		t.Fatalf("hostNames = %v, want %v", got, want)
	}
}

// TestRedialKeepsNewer: a redial whose session opens after another redial
// replaced the session does not replace the newer one.
func TestRedialKeepsNewer(t *testing.T) {
	ctx := context.Background()
	first, byName, byAddr := &fakeSink{}, &fakeSink{}, &fakeSink{}
	slow := make(chan struct{})
	open := func(_ context.Context, hosts []string) (sink, error) {
		if hosts == nil {
			<-slow // the names resolve to the dead address too: a slow open
			return byName, nil
		}
		return byAddr, nil
	}
	s := newRedialSink(first, open, testLogger(t))
	done := make(chan bool)
	go func() { done <- s.redial(ctx, 0, nil, "writes keep failing") }()
	time.Sleep(10 * time.Millisecond)
	if !s.redial(ctx, 0, []string{"10.0.0.3:9042"}, "store address changed") {
		t.Fatal("redial to the new address failed")
	}
	close(slow)
	<-done
	if cur, _ := s.get(); cur != sink(byAddr) || !byName.closed.Load() || !first.closed.Load() {
		t.Fatalf("current session %p (want the new address's %p); by-name closed %v, first closed %v",
			cur, byAddr, byName.closed.Load(), first.closed.Load())
	}
}
