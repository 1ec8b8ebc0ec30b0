package autoscale

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 9, 18, 10, 0, 0, 0, time.UTC)

// testConfig: out above 100 per replica for 10 s, in below 10 for 60 s,
// 30 s cool-down.
func testConfig() Config {
	return Config{Min: 1, Max: 4, ScaleOutLag: 100, ScaleOutAfter: 10 * time.Second, ScaleInLag: 10,
		ScaleInAfter: 60 * time.Second, ScaleOutStep: 1, ScaleInStep: 1, Cooldown: 30 * time.Second, StaleAfter: 15 * time.Second}
}

// step is one sample fed to the planner at t0+at, with the decision
// expected; apply makes the caller apply it.
type step struct {
	at     time.Duration
	lag    int64
	stale  bool // the sample is older than StaleAfter
	never  bool // no lag reported at all: the sample's Time is zero
	want   int
	reason string
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   func(*Config)
		start State
		steps []step
	}{
		{name: "no lag reported yet holds", start: State{Current: 2}, steps: []step{
			{at: 0, stale: true, want: 2, reason: ReasonStale},
		}},
		{name: "a zero-time sample (nothing reported) holds", start: State{Current: 2}, steps: []step{
			{at: 0, never: true, want: 2, reason: ReasonStale},
			{at: time.Hour, never: true, lag: 1e6, want: 2, reason: ReasonStale},
		}},
		{name: "below min comes up at once", start: State{Current: 0}, steps: []step{
			{at: 0, lag: 0, want: 1, reason: ReasonBounds},
		}},
		{name: "above max comes down at once, even in cool-down", start: State{Current: 7, LastChange: t0}, steps: []step{
			{at: time.Second, lag: 1e6, want: 4, reason: ReasonBounds},
		}},
		{name: "scale out only once sustained", start: State{Current: 1}, steps: []step{
			{at: 0, lag: 500, want: 1, reason: ReasonHold},
			{at: 5 * time.Second, lag: 500, want: 1, reason: ReasonHold},
			{at: 10 * time.Second, lag: 500, want: 2, reason: ReasonOut},
		}},
		{name: "a dip resets the scale-out timer", start: State{Current: 1}, steps: []step{
			{at: 0, lag: 500, want: 1, reason: ReasonHold},
			{at: 6 * time.Second, lag: 50, want: 1, reason: ReasonHold},
			{at: 12 * time.Second, lag: 500, want: 1, reason: ReasonHold},
			{at: 20 * time.Second, lag: 500, want: 1, reason: ReasonHold},
			{at: 22 * time.Second, lag: 500, want: 2, reason: ReasonOut},
		}},
		{name: "lag is per replica", start: State{Current: 3}, steps: []step{
			{at: 0, lag: 300, want: 3, reason: ReasonHold}, // 100 per replica: not above
			{at: 20 * time.Second, lag: 300, want: 3, reason: ReasonHold},
			{at: 21 * time.Second, lag: 301, want: 3, reason: ReasonHold}, // 101: above from now
			{at: 31 * time.Second, lag: 301, want: 4, reason: ReasonOut},
		}},
		{name: "cool-down after a change, then the next step", start: State{Current: 1}, steps: []step{
			{at: 0, lag: 1000, want: 1, reason: ReasonHold},
			{at: 10 * time.Second, lag: 1000, want: 2, reason: ReasonOut},
			{at: 20 * time.Second, lag: 1000, want: 2, reason: ReasonCooldown},
			{at: 39 * time.Second, lag: 1000, want: 2, reason: ReasonCooldown},
			{at: 40 * time.Second, lag: 1000, want: 3, reason: ReasonOut}, // above since 20 s
		}},
		{name: "at max it holds", start: State{Current: 4}, steps: []step{
			{at: 0, lag: 1e6, want: 4, reason: ReasonHold},
			{at: time.Minute, lag: 1e6, want: 4, reason: ReasonHold},
		}},
		{name: "scale in slowly", start: State{Current: 3}, steps: []step{
			{at: 0, lag: 0, want: 3, reason: ReasonHold},
			{at: 30 * time.Second, lag: 5, want: 3, reason: ReasonHold},
			{at: 59 * time.Second, lag: 0, want: 3, reason: ReasonHold},
			{at: 60 * time.Second, lag: 0, want: 2, reason: ReasonIn},
			{at: 90 * time.Second, lag: 0, want: 2, reason: ReasonHold}, // the timers restart after a change
		}},
		{name: "between the thresholds nothing happens", start: State{Current: 2}, steps: []step{
			{at: 0, lag: 100, want: 2, reason: ReasonHold},
			{at: time.Hour, lag: 100, want: 2, reason: ReasonHold},
		}},
		{name: "at min it holds", start: State{Current: 1}, steps: []step{
			{at: 0, lag: 0, want: 1, reason: ReasonHold},
			{at: time.Hour, lag: 0, want: 1, reason: ReasonHold},
		}},
		{name: "a stale sample resets the timers", start: State{Current: 1}, steps: []step{
			{at: 0, lag: 500, want: 1, reason: ReasonHold},
			{at: 8 * time.Second, lag: 500, stale: true, want: 1, reason: ReasonStale},
			{at: 12 * time.Second, lag: 500, want: 1, reason: ReasonHold},
			{at: 22 * time.Second, lag: 500, want: 2, reason: ReasonOut},
		}},
		{name: "bigger steps stop at the bounds", cfg: func(c *Config) { c.ScaleOutStep, c.ScaleInStep, c.Max = 3, 5, 5 },
			start: State{Current: 3}, steps: []step{
				{at: 0, lag: 1e6, want: 3, reason: ReasonHold},
				{at: 10 * time.Second, lag: 1e6, want: 5, reason: ReasonOut},
				{at: 40 * time.Second, lag: 0, want: 5, reason: ReasonHold},
				{at: 100 * time.Second, lag: 0, want: 1, reason: ReasonIn},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			st := tc.start
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				sample := Sample{Lag: s.lag, Partitions: 6, Time: now.Add(-time.Second)}
				if s.stale {
					sample.Time = now.Add(-cfg.StaleAfter - time.Second)
				}
				if s.never {
					sample.Time = time.Time{}
				}
				got, reason := cfg.Plan(&st, sample, now)
				if got != s.want || !strings.HasPrefix(reason, s.reason+":") {
					t.Fatalf("step %d (t+%s, lag %d, %d replicas): got %d %q, want %d %s", i, s.at, s.lag, st.Current, got, reason, s.want, s.reason)
				}
				st.Applied(got, now)
			}
		})
	}
}

func TestPerReplica(t *testing.T) {
	for _, tc := range []struct {
		lag      int64
		replicas int
		want     int64
	}{{0, 1, 0}, {-5, 2, 0}, {10, 0, 10}, {10, 1, 10}, {10, 3, 4}, {9, 3, 3}, {1, 4, 1}} {
		if got := perReplica(tc.lag, tc.replicas); got != tc.want {
			t.Errorf("perReplica(%d, %d) = %d, want %d", tc.lag, tc.replicas, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := DefaultConfig.Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	for name, f := range map[string]func(*Config){
		"min 0":             func(c *Config) { c.Min = 0 },
		"max below min":     func(c *Config) { c.Min, c.Max = 3, 2 },
		"thresholds equal":  func(c *Config) { c.ScaleInLag = c.ScaleOutLag },
		"negative in lag":   func(c *Config) { c.ScaleInLag = -1 },
		"zero step":         func(c *Config) { c.ScaleInStep = 0 },
		"negative cooldown": func(c *Config) { c.Cooldown = -time.Second },
		"zero stale-after":  func(c *Config) { c.StaleAfter = 0 },
	} {
		c := DefaultConfig
		f(&c)
		if c.Validate() == nil {
			t.Errorf("%s: valid", name)
		}
	}
}

// FuzzPlan drives the planner with arbitrary policies and lag series and
// checks its promises: the answer is always within [Min,Max], never moves
// by more than a step (unless out of bounds), and two changes are never
// closer than the cool-down (only a bounds correction ignores it, and only
// a starting count outside the bounds needs one).
func FuzzPlan(f *testing.F) {
	f.Add(1, 4, int64(100), int64(10), uint16(10), uint16(60), uint8(1), uint8(1), uint16(30), 1, []byte{0, 200, 200, 200, 0, 0, 1, 9})
	f.Add(2, 2, int64(1), int64(0), uint16(0), uint16(0), uint8(3), uint8(2), uint16(0), 9, []byte{255, 0, 255, 0})
	f.Add(1, 10, int64(50), int64(49), uint16(1), uint16(2), uint8(4), uint8(4), uint16(5), -3, []byte{100, 3, 250, 7, 7, 7, 7, 255})
	f.Fuzz(func(t *testing.T, mn, mx int, outLag, inLag int64, outAfter, inAfter uint16, outStep, inStep uint8, cooldown uint16, start int, series []byte) {
		cfg := Config{Min: mn, Max: mx, ScaleOutLag: outLag, ScaleInLag: inLag,
			ScaleOutAfter: time.Duration(outAfter) * time.Second, ScaleInAfter: time.Duration(inAfter) * time.Second,
			ScaleOutStep: int(outStep), ScaleInStep: int(inStep), Cooldown: time.Duration(cooldown) * time.Second,
			StaleAfter: 20 * time.Second}
		if cfg.Validate() != nil || cfg.Max > 1000 {
			return
		}
		st := State{Current: start}
		now := t0
		for i, b := range series {
			// Each byte: the high bit stales the sample; the rest, the lag
			// (scaled around the thresholds) and the seconds since the
			// last sample.
			now = now.Add(time.Duration(1+int(b)%7) * time.Second)
			lag := int64(b&0x7f) * (outLag/16 + 1) * int64(max(st.Current, 1))
			sample := Sample{Lag: lag, Partitions: 6, Time: now}
			if b&0x80 != 0 && b%3 == 0 {
				sample.Time = now.Add(-time.Minute)
			}
			before := st
			got, reason := cfg.Plan(&st, sample, now)
			if got < cfg.Min || got > cfg.Max {
				t.Fatalf("sample %d: %d replicas outside [%d,%d] (%s)", i, got, cfg.Min, cfg.Max, reason)
			}
			if st.Current != before.Current || st.LastChange != before.LastChange {
				t.Fatalf("sample %d: Plan changed Current or LastChange", i)
			}
			inBounds := before.Current >= cfg.Min && before.Current <= cfg.Max
			if got != before.Current && inBounds {
				if !before.LastChange.IsZero() && now.Sub(before.LastChange) < cfg.Cooldown {
					t.Fatalf("sample %d: changed %d -> %d %s after the last change, cool-down %s (%s)",
						i, before.Current, got, now.Sub(before.LastChange), cfg.Cooldown, reason)
				}
				if got > before.Current+cfg.ScaleOutStep || got < before.Current-cfg.ScaleInStep {
					t.Fatalf("sample %d: %d -> %d, more than a step (%s)", i, before.Current, got, reason)
				}
				if (got > before.Current) != strings.HasPrefix(reason, ReasonOut+":") || (got < before.Current) != strings.HasPrefix(reason, ReasonIn+":") {
					t.Fatalf("sample %d: %d -> %d with reason %q", i, before.Current, got, reason)
				}
			}
			if i > 0 && !inBounds {
				t.Fatalf("sample %d: %d replicas outside the bounds after the first decision", i, before.Current)
			}
			st.Applied(got, now)
		}
	})
}
