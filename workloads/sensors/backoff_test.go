package sensors

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if d := b.Delay(i); d != w*time.Millisecond {
			t.Errorf("Delay(%d) = %v, want %v", i, d, w*time.Millisecond)
		}
	}
	if d := b.Delay(1000); d != time.Second {
		t.Errorf("Delay(1000) = %v", d)
	}
}

func TestRetryUntilSuccess(t *testing.T) {
	calls := 0
	err := Retry(context.Background(), Backoff{Min: time.Microsecond, Max: time.Millisecond}, slog.New(slog.DiscardHandler), "op",
		func(context.Context) error {
			calls++
			if calls < 5 {
				return errors.New("down")
			}
			return nil
		})
	if err != nil || calls != 5 {
		t.Fatalf("err %v after %d calls, want nil after 5", err, calls)
	}
}

func TestRetryStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	calls := 0
	err := Retry(ctx, Backoff{Min: 5 * time.Millisecond, Max: 5 * time.Millisecond}, slog.New(slog.DiscardHandler), "op",
		func(context.Context) error { calls++; return errors.New("down") })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's", err)
	}
	if calls < 2 {
		t.Fatalf("%d calls: no retry happened", calls)
	}
}

// TestRetryWake: a retry waiting out a long backoff goes at once when the
// wake channel closes, and a change during the attempt counts too.
func TestRetryWake(t *testing.T) {
	var mu sync.Mutex
	ch := make(chan struct{})
	wake := func() <-chan struct{} { mu.Lock(); defer mu.Unlock(); return ch }
	swap := func() { mu.Lock(); close(ch); ch = make(chan struct{}); mu.Unlock() }
	b := Backoff{Min: time.Minute, Max: time.Minute}
	calls := 0
	start := time.Now()
	err := retryWake(context.Background(), b, wake, testLogger(t), "op", func(context.Context) error {
		calls++
		switch calls {
		case 1:
			go func() { time.Sleep(20 * time.Millisecond); swap() }() // while waiting
			return errors.New("down")
		case 2:
			swap() // during the attempt
			return errors.New("still down")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("retryWake: %v after %d calls, want success on the third", err, calls)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %v: the waits did not end when woken", d)
	}
}
