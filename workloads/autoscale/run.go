package autoscale

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/ballast-io/ballast/workloads/sensors"
)

// LagSource gives the latest lag sample (sensors.LagWatcher, adapted).
type LagSource interface {
	Lag() Sample
}

// LagFunc adapts a function to LagSource.
type LagFunc func() Sample

// Lag calls f.
func (f LagFunc) Lag() Sample { return f() }

// WatcherSource adapts a sensors.LagWatcher to LagSource: each sample is
// its LagView's lag and partitions, timed by the newest report.
func WatcherSource(w *sensors.LagWatcher) LagSource {
	return LagFunc(func() Sample {
		v := w.Lag()
		return Sample{Lag: v.Lag, Partitions: v.Partitions, Time: v.Newest}
	})
}

// Event is one line of the events file: what the replicas were set to and
// why, for the demo's report (replicas over time).
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"` // see the Event* constants
	Service string    `json:"service"`
	From    int       `json:"from"` // replicas before
	To      int       `json:"to"`   // replicas after (asked for, if Kind is EventFailed)
	Lag     int64     `json:"lag"`  // the group's lag at the time
	// Partitions is how many partitions the lag sample covers.
	Partitions int    `json:"partitions"`
	Reason     string `json:"reason"`
	Error      string `json:"error,omitempty"`
}

// Event kinds.
const (
	EventStart    = "start"    // the autoscaler read the replicas for the first time
	EventScale    = "scale"    // it changed them
	EventFailed   = "failed"   // it tried and the orchestrator refused
	EventExternal = "external" // someone else changed them (counts as a change: cool-down)
)

// Options configure Run.
type Options struct {
	Config
	Service  string        // the service's name, for logs and events
	Interval time.Duration // between decisions, default 2 s
	Logger   *slog.Logger
	// Events, if set, receives every Event as a JSON line.
	Events io.Writer
	// Now is the clock, default time.Now (tests).
	Now func() time.Time
}

// Run decides every Interval until ctx ends (then it returns nil): it
// reads the replicas from sc and a lag sample from src, plans, and scales
// when the plan says so. Every decision is logged (a change at info, a
// hold at debug, and at info again whenever the reason for holding
// changes); the replicas it starts with and each change, failed or not,
// go to Events. A failing orchestrator or lag source does not stop it: it
// logs and tries again on the next tick.
func Run(ctx context.Context, opts Options, src LagSource, sc Scaler) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	r := newRunner(opts)
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		r.tick(ctx, src, sc)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

type runner struct {
	opts    Options
	log     *slog.Logger
	st      State
	started bool
	last    string // the reason kind last logged at info
	failed  bool   // an event could not be written (said once)
}

func newRunner(opts Options) *runner {
	if opts.Interval <= 0 {
		opts.Interval = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &runner{opts: opts, log: opts.Logger.With("service", opts.Service)}
}

func (r *runner) tick(ctx context.Context, src LagSource, sc Scaler) {
	cur, err := sc.Replicas(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("read replicas", "err", err)
		}
		return
	}
	now := r.opts.Now()
	s := src.Lag()
	switch {
	case !r.started:
		r.started = true
		r.st.Current = cur
		r.log.Info("autoscaling", "replicas", cur, "min", r.opts.Min, "max", r.opts.Max)
		r.event(Event{Time: now, Kind: EventStart, From: cur, To: cur, Lag: s.Lag, Partitions: s.Partitions, Reason: "started"})
	case cur != r.st.Current:
		r.log.Info("replicas changed by someone else", "from", r.st.Current, "to", cur)
		r.event(Event{Time: now, Kind: EventExternal, From: r.st.Current, To: cur, Lag: s.Lag, Partitions: s.Partitions, Reason: "changed outside the autoscaler"})
		r.st.Applied(cur, now)
	}
	desired, reason := r.opts.Plan(&r.st, s, now)
	kind, _, _ := strings.Cut(reason, ":")
	attrs := []any{"desired", desired, "current", cur, "lag", s.Lag, "partitions", s.Partitions, "reason", reason}
	if desired == cur {
		lv := slog.LevelDebug
		if kind != r.last {
			lv, r.last = slog.LevelInfo, kind
		}
		r.log.Log(ctx, lv, "hold", attrs...)
		return
	}
	r.last = ""
	ev := Event{Time: now, Kind: EventScale, From: cur, To: desired, Lag: s.Lag, Partitions: s.Partitions, Reason: reason}
	if err := sc.Scale(ctx, desired); err != nil {
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("scale failed", append(attrs, "err", err)...)
		ev.Kind, ev.Error = EventFailed, err.Error()
		r.event(ev)
		return
	}
	r.log.Info("scaled", attrs...)
	r.st.Applied(desired, now)
	r.event(ev)
}

func (r *runner) event(ev Event) {
	if r.opts.Events == nil {
		return
	}
	ev.Service = r.opts.Service
	b, _ := json.Marshal(ev) // plain struct: cannot fail
	if _, err := r.opts.Events.Write(append(b, '\n')); err != nil && !r.failed {
		r.failed = true
		r.log.Warn("write event (further failures not logged)", "err", err)
	}
}
