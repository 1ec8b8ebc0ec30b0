package sensors

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"
)

// redialAfter consecutive failed writes on one session make redialSink
// open a new one, at most once a second.
const redialAfter = 3

// resolveEvery is how often the store's host names are looked up again.
const resolveEvery = 500 * time.Millisecond

// redialSink is a sink that opens a new session when the store moves.
// gocql resolves the store's host names once, when the session opens: a
// store rescheduled by the orchestrator to a new address (a Swarm task,
// found by its DNS name) is found only by a new session, while the old
// one retries the old address. So the sink opens a new session when a
// host name resolves to an address it did not have (watch), and, for a
// store that moved without its name changing, when writes keep failing.
type redialSink struct {
	open func(ctx context.Context, hosts []string) (sink, error) // nil hosts: the configured ones
	log  *slog.Logger

	mu       sync.Mutex
	cur      sink
	gen      uint64 // counts sessions opened
	failures int    // consecutive failed writes on cur
	opened   time.Time
	swapped  chan struct{} // closed when cur is replaced, then made anew
}

func newRedialSink(first sink, open func(ctx context.Context, hosts []string) (sink, error), log *slog.Logger) *redialSink {
	return &redialSink{open: open, log: log, cur: first, opened: time.Now(), swapped: make(chan struct{})}
}

// newSession returns a channel closed when the next session replaces the
// current one: a write waiting to retry need not wait any longer.
func (s *redialSink) newSession() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.swapped
}

func (s *redialSink) get() (sink, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, s.gen
}

// result counts a write's outcome on session gen and opens a new session
// after redialAfter failures in a row.
func (s *redialSink) result(ctx context.Context, gen uint64, err error) {
	s.mu.Lock()
	if gen != s.gen || ctx.Err() != nil || IsPermanent(err) { // a bad statement is not a lost store
		s.mu.Unlock()
		return
	}
	if err == nil {
		s.failures = 0
		s.mu.Unlock()
		return
	}
	s.failures++
	failures := s.failures
	if failures < redialAfter || time.Since(s.opened) < time.Second {
		s.mu.Unlock()
		return
	}
	s.opened = time.Now()
	s.mu.Unlock()
	s.redial(ctx, gen, nil, "writes keep failing", "failures", failures, "err", err)
}

// redial opens a new session to hosts (nil: the configured ones) and
// closes the old one: writes still in flight on it fail and are retried
// on the new one. A failed open keeps the old session. Writes go on on
// the old session while the new one opens, and another redial may run
// meanwhile: a session to the store's new addresses always replaces the
// current one, while one to the configured names (which may still
// resolve to the dead address too) replaces only session gen, the one
// whose writes failed.
func (s *redialSink) redial(ctx context.Context, gen uint64, hosts []string, why string, args ...any) bool {
	octx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	next, err := s.open(octx, hosts)
	if err != nil {
		s.log.Warn("store: "+why+"; a new session did not open", append(args, "open_err", err)...)
		return false
	}
	s.mu.Lock()
	if hosts == nil && s.gen != gen {
		s.mu.Unlock()
		next.Close()
		s.log.Info("store: "+why+"; a newer session opened meanwhile, keeping it", args...)
		return false
	}
	s.log.Warn("store: "+why+"; opened a new session (the store may have moved)", args...)
	old := s.cur
	s.cur, s.gen, s.failures, s.opened = next, s.gen+1, 0, time.Now()
	close(s.swapped)
	s.swapped = make(chan struct{})
	s.mu.Unlock()
	old.Close()
	return true
}

// watch looks the store's host names up every interval until ctx
// ends and, as soon as one resolves to an address the current session
// was not opened with, opens a new session to the new addresses: they
// are the moved store, while an old one may be a dead node's, still in
// DNS, that a session would wait for. An empty answer (the old task
// gone, the new one not yet in DNS) is remembered as no address, so the
// new task's address counts as new. Addresses given as IPs are not
// watched.
func (s *redialSink) watch(ctx context.Context, hosts []string, every time.Duration, lookup func(ctx context.Context, host string) ([]string, error)) {
	names := hostNames(hosts)
	if len(names) == 0 {
		return
	}
	// resolve returns the addresses, or ok false when a look-up failed
	// for another reason than the name not being there (a DNS server
	// slow to answer is not a moved store).
	resolve := func() (addrs []string, ok bool) {
		for _, h := range names {
			lctx, cancel := context.WithTimeout(ctx, every)
			a, err := lookup(lctx, h.name)
			cancel()
			var dnsErr *net.DNSError
			if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
				continue
			}
			if err != nil {
				return nil, false
			}
			for _, ip := range a {
				if h.port != "" {
					ip = net.JoinHostPort(ip, h.port)
				}
				addrs = append(addrs, ip)
			}
		}
		slices.Sort(addrs)
		return slices.Compact(addrs), true
	}
	known, haveKnown := resolve()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now, ok := resolve()
		if !ok {
			continue
		}
		added := newAddrs(known, now)
		if !haveKnown || len(added) == 0 {
			known, haveKnown = now, true
			continue
		}
		if s.redial(ctx, 0, added, "store address changed", "new", added, "was", known) {
			known = now
		}
	}
}

// hostPort is a host name to watch and the port given with it, if any.
type hostPort struct{ name, port string }

// hostNames returns the host names among hosts (host or host:port),
// leaving out IP addresses.
func hostNames(hosts []string) []hostPort {
	var names []hostPort
	for _, h := range hosts {
		hp := hostPort{name: h}
		if host, port, err := net.SplitHostPort(h); err == nil {
			hp = hostPort{host, port}
		}
		if hp.name != "" && net.ParseIP(hp.name) == nil && !slices.Contains(names, hp) {
			names = append(names, hp)
		}
	}
	return names
}

// newAddrs returns the addresses in now that are not in known (both sorted).
func newAddrs(known, now []string) []string {
	var added []string
	for _, a := range now {
		if _, found := slices.BinarySearch(known, a); !found {
			added = append(added, a)
		}
	}
	return added
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
