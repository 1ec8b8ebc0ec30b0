package sensors

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// permanentError marks an error no retry can fix (a statement the store
// refuses, bad credentials).
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks err as one Retry gives up on at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked by Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Backoff is an exponential retry delay: Min after the first failure,
// doubling up to Max.
type Backoff struct {
	Min, Max time.Duration
}

// DefaultBackoff is what the pipeline waits between retries of a write to
// a broker or store that is down. At most 1 s, like Kafka clients'
// reconnect.backoff.max.ms, so that a service back on another node is
// found within a second.
var DefaultBackoff = Backoff{Min: 100 * time.Millisecond, Max: time.Second}

// Delay is the wait before retry number attempt (0 for the first retry).
func (b Backoff) Delay(attempt int) time.Duration {
	d := b.Min
	if d <= 0 {
		d = time.Millisecond
	}
	for range attempt {
		d *= 2
		if b.Max > 0 && d >= b.Max {
			return b.Max
		}
	}
	if b.Max > 0 && d > b.Max {
		return b.Max
	}
	return d
}

// Retry calls op until it succeeds or ctx ends, waiting b.Delay between
// attempts and logging each failure (at warn from the third on, so a
// single hiccup stays quiet). It returns ctx's error if ctx ended first,
// and op's error at once if it is permanent (see Permanent).
func Retry(ctx context.Context, b Backoff, log *slog.Logger, what string, op func(context.Context) error) error {
	return retryWake(ctx, b, nil, log, what, op)
}

// retryWake is Retry that also stops waiting when the channel wake
// returns (taken before each attempt, so a change during it counts) is
// closed: the ingester's store session was replaced.
func retryWake(ctx context.Context, b Backoff, wake func() <-chan struct{}, log *slog.Logger, what string, op func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		var woken <-chan struct{}
		if wake != nil {
			woken = wake()
		}
		err := op(ctx)
		if err == nil {
			if attempt > 0 {
				log.Info("retry succeeded", "op", what, "attempts", attempt+1)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if IsPermanent(err) {
			return err
		}
		d := b.Delay(attempt)
		lv := slog.LevelDebug
		if attempt >= 2 {
			lv = slog.LevelWarn
		}
		log.Log(ctx, lv, "retrying", "op", what, "attempt", attempt+1, "in", d, "err", err)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-woken:
			t.Stop()
		case <-t.C:
		}
	}
}
