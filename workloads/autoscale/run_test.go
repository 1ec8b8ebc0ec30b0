package autoscale

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"
)

// fakeScaler is a service whose replicas the test can read and change,
// and whose next scales can fail.
type fakeScaler struct {
	mu       sync.Mutex
	replicas int
	fail     int // fail this many Scale calls
	scales   int
}

func (f *fakeScaler) Replicas(context.Context) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.replicas, nil
}

func (f *fakeScaler) Scale(_ context.Context, n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scales++
	if f.fail > 0 {
		f.fail--
		return errors.New("orchestrator down (test)")
	}
	f.replicas = n
	return nil
}

func (f *fakeScaler) set(n int) {
	f.mu.Lock()
	f.replicas = n
	f.mu.Unlock()
}

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func readEvents(t *testing.T, b *bytes.Buffer) []Event {
	t.Helper()
	var out []Event
	sc := bufio.NewScanner(bytes.NewReader(b.Bytes()))
	for sc.Scan() {
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("event line %q: %v", sc.Text(), err)
		}
		out = append(out, ev)
	}
	return out
}

// TestRunner drives the decision loop tick by tick on a fake clock through
// a burst: lag rises, the service scales out step by step (one step per
// cool-down), lag drains, it scales in slowly; a failed scale is retried on
// the next tick; a change made by someone else starts a cool-down. The
// events file has each of these.
func TestRunner(t *testing.T) {
	var events bytes.Buffer
	var lag int64
	now := t0
	r := newRunner(Options{Config: testConfig(), Service: "ingester", Events: &events, Logger: testLog(t), Now: func() time.Time { return now }})
	sc := &fakeScaler{replicas: 1}
	src := LagFunc(func() Sample { return Sample{Lag: lag, Partitions: 6, Time: now.Add(-time.Second)} })
	run := func(until time.Duration, l int64) {
		lag = l
		for ; now.Before(t0.Add(until)); now = now.Add(2 * time.Second) {
			r.tick(context.Background(), src, sc)
		}
	}
	run(80*time.Second, 10000)  // burst: out at 10 s, 40 s, 70 s
	run(300*time.Second, 0)     // drained: in at 140 s, 202 s, 264 s
	sc.fail = 1                 // the next scale fails once and is retried
	run(340*time.Second, 10000) // out at 310 s (failed), 312 s
	sc.set(4)                   // someone scales to 4 at 340 s: cool-down to 370 s
	run(380*time.Second, 0)

	want := []struct {
		kind     string
		at       time.Duration
		from, to int
	}{
		{EventStart, 0, 1, 1},
		{EventScale, 10 * time.Second, 1, 2},
		{EventScale, 40 * time.Second, 2, 3},
		{EventScale, 70 * time.Second, 3, 4},
		{EventScale, 140 * time.Second, 4, 3},
		{EventScale, 202 * time.Second, 3, 2}, // the timers restart after a change: below since 142 s
		{EventScale, 264 * time.Second, 2, 1},
		{EventFailed, 310 * time.Second, 1, 2},
		{EventScale, 312 * time.Second, 1, 2},
		{EventExternal, 340 * time.Second, 2, 4},
	}
	got := readEvents(t, &events)
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Kind != w.kind || !g.Time.Equal(t0.Add(w.at)) || g.From != w.from || g.To != w.to || g.Service != "ingester" || g.Partitions != 6 {
			t.Errorf("event %d: %+v, want %s %d -> %d at t+%s", i, g, w.kind, w.from, w.to, w.at)
		}
		if (g.Kind == EventFailed) != (g.Error != "") || g.Reason == "" {
			t.Errorf("event %d: reason %q, error %q", i, g.Reason, g.Error)
		}
	}
	if sc.replicas != 4 || sc.scales != 8 {
		t.Errorf("replicas %d after %d scale calls, want 4 after 8", sc.replicas, sc.scales)
	}
}

// TestRun runs the loop for real (ticker, context) until cancelled.
func TestRun(t *testing.T) {
	cfg := testConfig()
	cfg.ScaleOutAfter, cfg.Cooldown = 0, time.Hour
	sc := &fakeScaler{replicas: 1}
	src := LagFunc(func() Sample { return Sample{Lag: 1e6, Partitions: 1, Time: time.Now()} })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Config: cfg, Service: "s", Interval: 10 * time.Millisecond, Logger: testLog(t)}, src, sc)
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if n, _ := sc.Replicas(ctx); n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not scaled out")
		}
	}
	time.Sleep(50 * time.Millisecond) // the cool-down holds it at 2
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n, _ := sc.Replicas(ctx); n != 2 {
		t.Errorf("%d replicas, want 2 (cool-down of an hour)", n)
	}
	if err := Run(context.Background(), Options{Config: Config{Min: 2, Max: 1}}, src, sc); err == nil {
		t.Error("Run took an invalid config")
	}
}
