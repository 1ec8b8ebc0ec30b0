package sensors

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// redialAfter consecutive failed writes on one session make redialSink
// open a new one, at most once a second.
const redialAfter = 3

// redialSink is a sink that opens a new session when writes keep failing.
// gocql resolves the store's host names once, when the session opens: a
// store rescheduled by the orchestrator to a new address (a Swarm task,
// found by its DNS name) is found only by a new session, while the old
// one retries the old address.
type redialSink struct {
	open func(ctx context.Context) (sink, error)
	log  *slog.Logger

	mu       sync.Mutex
	cur      sink
	gen      uint64 // counts sessions opened
	failures int    // consecutive failed writes on cur
	opened   time.Time
}

func newRedialSink(first sink, open func(ctx context.Context) (sink, error), log *slog.Logger) *redialSink {
	return &redialSink{open: open, log: log, cur: first, opened: time.Now()}
}

func (s *redialSink) get() (sink, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, s.gen
}

// result counts a write's outcome on session gen and opens a new session
// after redialAfter failures in a row. The old session is closed: writes
// still in flight on it fail and are retried on the new one.
func (s *redialSink) result(ctx context.Context, gen uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.gen || ctx.Err() != nil {
		return
	}
	if err == nil {
		s.failures = 0
		return
	}
	if IsPermanent(err) {
		return // a bad statement, not a lost store
	}
	s.failures++
	if s.failures < redialAfter || time.Since(s.opened) < time.Second {
		return
	}
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	s.opened = time.Now()
	next, oerr := s.open(octx)
	if oerr != nil {
		s.log.Warn("store: writes keep failing and a new session did not open", "write_err", err, "err", oerr)
		return
	}
	s.log.Warn("store: writes keep failing; opened a new session (the store may have moved)", "failures", s.failures, "err", err)
	old := s.cur
	s.cur, s.gen, s.failures = next, s.gen+1, 0
	old.Close()
}

func (s *redialSink) WriteBatch(ctx context.Context, b Batch) error {
	cur, gen := s.get()
	err := cur.WriteBatch(ctx, b)
	s.result(ctx, gen, err)
	return err
}

func (s *redialSink) WriteAlert(ctx context.Context, r Reading) error {
	cur, gen := s.get()
	err := cur.WriteAlert(ctx, r)
	s.result(ctx, gen, err)
	return err
}

func (s *redialSink) LastAlert(ctx context.Context, sensor string) (Reading, error) {
	cur, _ := s.get()
	return cur.LastAlert(ctx, sensor)
}

func (s *redialSink) Close() {
	cur, _ := s.get()
	cur.Close()
}
