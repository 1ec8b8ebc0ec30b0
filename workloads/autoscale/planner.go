// Package autoscale scales the sensor workload's ingester service with its
// consumer-group lag (`ballast workload autoscale`), the part of the
// reference demo its talk did with VAMP.
//
// Decisions are kept apart from I/O, as etcd's raft package keeps its state
// machine apart from the network: Plan is a pure function of the planner's
// State, a lag Sample and the time, table- and fuzz-tested; a LagSource
// (sensors.LagWatcher, reading the ingesters' reports on topic
// partitionlag) gives the samples; a Scaler (SwarmScaler: Docker Swarm's
// service update) reads and sets the replicas; Run ties them together on a
// ticker and logs every decision.
package autoscale

import (
	"errors"
	"fmt"
	"time"
)

// Config is the scaling policy. Lag thresholds are records per replica.
type Config struct {
	Min, Max int // replicas, 1 <= Min <= Max

	// ScaleOutLag: lag per replica above which the service scales out,
	// once it has stayed above for ScaleOutAfter.
	ScaleOutLag   int64
	ScaleOutAfter time.Duration
	// ScaleInLag: lag per replica below which the service scales in, once
	// it has stayed below for ScaleInAfter (longer than ScaleOutAfter:
	// scale out fast, in slowly). ScaleInLag < ScaleOutLag; between the two
	// nothing happens.
	ScaleInLag   int64
	ScaleInAfter time.Duration
	// Steps: replicas added or removed at once.
	ScaleOutStep, ScaleInStep int
	// Cooldown: after a change, no other for this long (new replicas
	// join the consumer group, partitions move, lag reports catch up).
	Cooldown time.Duration
	// StaleAfter: a lag sample older than this is no sample (the
	// ingesters publish every 5 s by default).
	StaleAfter time.Duration
}

// DefaultConfig is the policy of `ballast workload autoscale` before its
// flags.
var DefaultConfig = Config{
	Min: 1, Max: 4,
	ScaleOutLag: 5000, ScaleOutAfter: 10 * time.Second,
	ScaleInLag: 500, ScaleInAfter: 60 * time.Second,
	ScaleOutStep: 1, ScaleInStep: 1,
	Cooldown:   30 * time.Second,
	StaleAfter: 30 * time.Second,
}

// Validate reports what is wrong with c, if anything.
func (c Config) Validate() error {
	var errs []error
	if c.Min < 1 {
		// The ingesters publish the lag: with none running there is
		// no lag to scale out on.
		errs = append(errs, fmt.Errorf("min %d: at least 1 replica (the ingesters themselves report the lag)", c.Min))
	}
	if c.Max < c.Min {
		errs = append(errs, fmt.Errorf("max %d below min %d", c.Max, c.Min))
	}
	if c.ScaleInLag < 0 || c.ScaleOutLag <= c.ScaleInLag {
		errs = append(errs, fmt.Errorf("lag thresholds: want 0 <= scale-in (%d) < scale-out (%d)", c.ScaleInLag, c.ScaleOutLag))
	}
	if c.ScaleOutStep < 1 || c.ScaleInStep < 1 {
		errs = append(errs, fmt.Errorf("steps %d (out), %d (in): at least 1", c.ScaleOutStep, c.ScaleInStep))
	}
	if c.ScaleOutAfter < 0 || c.ScaleInAfter < 0 || c.Cooldown < 0 || c.StaleAfter <= 0 {
		errs = append(errs, errors.New("durations: none negative, stale-after above 0"))
	}
	return errors.Join(errs...)
}

// Sample is the consumer group's lag as last reported.
type Sample struct {
	Lag        int64     // records written but not yet committed, all partitions
	Partitions int       // partitions reported
	Time       time.Time // newest report; zero: nothing reported yet
}

// State is what the planner remembers between samples. The zero State is
// a planner that has seen nothing and changed nothing.
type State struct {
	// Current is the replicas the service has, as last read (the caller
	// sets it before each Plan).
	Current int
	// LastChange is when the replicas last changed by our hand (set by
	// Applied); zero: never.
	LastChange time.Time
	// AboveSince and BelowSince are when the lag per replica went, and
	// has stayed since, above the scale-out or below the scale-in
	// threshold; zero when it is not.
	AboveSince, BelowSince time.Time
}

// Applied records that the service now has n replicas, set at now. A
// change starts the cool-down and restarts the hysteresis timers.
func (s *State) Applied(n int, now time.Time) {
	if n != s.Current {
		s.LastChange = now
		s.AboveSince, s.BelowSince = time.Time{}, time.Time{}
	}
	s.Current = n
}

// Reasons a decision gives, first word of its reason string.
const (
	ReasonBounds   = "bounds"    // outside [min,max]: brought back at once
	ReasonStale    = "stale"     // no fresh lag sample: hold
	ReasonCooldown = "cooldown"  // a change was made too recently: hold
	ReasonOut      = "scale-out" // lag per replica above the threshold long enough
	ReasonIn       = "scale-in"  // lag per replica below the threshold long enough
	ReasonHold     = "hold"      // between the thresholds, or not long enough
)

// Plan decides how many replicas the service should have, given the lag
// sample s at now, and updates the hysteresis timers in st (but not
// Current or LastChange: the caller calls st.Applied once the change is
// made). The answer is always within [Min,Max]. Outside the cool-down
// after a change, it scales out by ScaleOutStep when the lag per replica
// has been above ScaleOutLag for ScaleOutAfter, in by ScaleInStep when it
// has been below ScaleInLag for ScaleInAfter; otherwise it holds. A
// replica count outside [Min,Max] is brought back at once, cool-down or
// not. c must be valid (Validate).
func (c Config) Plan(st *State, s Sample, now time.Time) (desired int, reason string) {
	cur := st.Current
	if cur < c.Min || cur > c.Max {
		st.AboveSince, st.BelowSince = time.Time{}, time.Time{}
		d := min(max(cur, c.Min), c.Max)
		return d, fmt.Sprintf("%s: %d replicas, outside [%d,%d]", ReasonBounds, cur, c.Min, c.Max)
	}
	if s.Time.IsZero() || now.Sub(s.Time) > c.StaleAfter {
		st.AboveSince, st.BelowSince = time.Time{}, time.Time{}
		if s.Time.IsZero() {
			return cur, ReasonStale + ": no lag reported yet"
		}
		return cur, fmt.Sprintf("%s: last lag report %s old", ReasonStale, now.Sub(s.Time).Round(time.Millisecond))
	}
	per := perReplica(s.Lag, cur)
	switch {
	case per > c.ScaleOutLag:
		st.BelowSince = time.Time{}
		if st.AboveSince.IsZero() || st.AboveSince.After(now) {
			st.AboveSince = now
		}
	case per < c.ScaleInLag:
		st.AboveSince = time.Time{}
		if st.BelowSince.IsZero() || st.BelowSince.After(now) {
			st.BelowSince = now
		}
	default:
		st.AboveSince, st.BelowSince = time.Time{}, time.Time{}
	}
	if !st.LastChange.IsZero() && now.Sub(st.LastChange) < c.Cooldown {
		return cur, fmt.Sprintf("%s: last change %s ago, %s cool-down (lag %d, %d per replica)",
			ReasonCooldown, now.Sub(st.LastChange).Round(time.Millisecond), c.Cooldown, s.Lag, per)
	}
	switch {
	case !st.AboveSince.IsZero():
		above := now.Sub(st.AboveSince)
		if cur == c.Max {
			return cur, fmt.Sprintf("%s: lag %d per replica above %d, but at max %d", ReasonHold, per, c.ScaleOutLag, c.Max)
		}
		if above >= c.ScaleOutAfter {
			return min(cur+c.ScaleOutStep, c.Max), fmt.Sprintf("%s: lag %d per replica above %d for %s",
				ReasonOut, per, c.ScaleOutLag, above.Round(time.Millisecond))
		}
		return cur, fmt.Sprintf("%s: lag %d per replica above %d for %s of %s", ReasonHold, per, c.ScaleOutLag,
			above.Round(time.Millisecond), c.ScaleOutAfter)
	case !st.BelowSince.IsZero():
		below := now.Sub(st.BelowSince)
		if cur == c.Min {
			return cur, fmt.Sprintf("%s: lag %d per replica below %d, at min %d", ReasonHold, per, c.ScaleInLag, c.Min)
		}
		if below >= c.ScaleInAfter {
			return max(cur-c.ScaleInStep, c.Min), fmt.Sprintf("%s: lag %d per replica below %d for %s",
				ReasonIn, per, c.ScaleInLag, below.Round(time.Millisecond))
		}
		return cur, fmt.Sprintf("%s: lag %d per replica below %d for %s of %s", ReasonHold, per, c.ScaleInLag,
			below.Round(time.Millisecond), c.ScaleInAfter)
	}
	return cur, fmt.Sprintf("%s: lag %d per replica within [%d,%d]", ReasonHold, per, c.ScaleInLag, c.ScaleOutLag)
}

// perReplica is lag/replicas rounded up (one replica when there are none).
func perReplica(lag int64, replicas int) int64 {
	if lag <= 0 {
		return 0
	}
	n := int64(max(replicas, 1))
	return lag/n + min(lag%n, 1)
}
