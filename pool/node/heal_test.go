package node

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/spec"
)

func TestPlanHeal(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	const delay = time.Minute
	// A repl 2 volume attached on a, replicas on a and b, and a third
	// record entry on c when a test needs one.
	vol := func(inSync ...string) *meta.Volume {
		return &meta.Volume{Volume: spec.Volume{Name: "v", Repl: 2}, ID: "vid", InSync: inSync,
			Replicas: []meta.Replica{{ID: "ra", Node: "a"}, {ID: "rb", Node: "b"}, {ID: "rc", Node: "c"}}}
	}
	all := map[string]bool{"a": true, "b": true, "c": true}
	bDown := map[string]bool{"a": true, "c": true}
	for _, tc := range []struct {
		name   string
		s      healState
		drops  string // replica IDs dropped
		step   string
		rep    string
		short  time.Time
		down   string // NodeDown entries, "replica@minutes"
		warned bool
	}{
		{name: "healthy: locality's turn", step: healLocality,
			s: healState{Vol: vol("ra", "rb"), InSync: []string{"ra", "rb"}, Alive: all}},
		{name: "record behind the engine: wait a round", step: healNothing,
			s: healState{Vol: vol("ra", "rb", "rc"), InSync: []string{"ra", "rb"}, Alive: all}},
		{name: "node down, first seen: remembered, not dropped", step: healLocality, down: "rb@0",
			s: healState{Vol: vol("ra", "rb"), InSync: []string{"ra", "rb"}, Alive: bDown}},
		{name: "node down shorter than the delay: kept", step: healLocality, down: "rb@-30",
			s: healState{Vol: vol("ra", "rb"), InSync: []string{"ra", "rb"}, Alive: bDown,
				Mem: healMemory{NodeDown: map[string]time.Time{"rb": t0.Add(-30 * time.Second)}}}},
		{name: "node down for the delay: dropped, then short", drops: "rb", step: healNothing, short: t0, warned: true, down: "rb@-60",
			s: healState{Vol: vol("ra", "rb"), InSync: []string{"ra", "rb"}, Alive: bDown,
				Mem: healMemory{NodeDown: map[string]time.Time{"rb": t0.Add(-delay)}}}},
		{name: "node back up: forgotten", step: healLocality,
			s: healState{Vol: vol("ra", "rb"), InSync: []string{"ra", "rb"}, Alive: all,
				Mem: healMemory{NodeDown: map[string]time.Time{"rb": t0.Add(-time.Hour)}}}},
		{name: "this node's replica is never dropped for its node", step: healLocality,
			s: healState{Vol: vol("ra", "rb"), InSync: []string{"ra", "rb"}, Alive: map[string]bool{"b": true},
				Mem: healMemory{NodeDown: map[string]time.Time{"ra": t0.Add(-time.Hour)}}}},
		{name: "back with known misses: catch up", step: healCatchUp, rep: "rb", short: t0.Add(-time.Hour),
			s: healState{Vol: vol("ra"), InSync: []string{"ra"}, Alive: all, Missed: map[string]bool{"rb": true},
				Mem: healMemory{Short: t0.Add(-time.Hour)}}},
		{name: "back, misses unknown: short, rebuild after the delay", step: healRebuild,
			s: healState{Vol: vol("ra"), InSync: []string{"ra"}, Alive: all,
				Mem: healMemory{Short: t0.Add(-delay)}}},
		{name: "known misses but still down: no catch-up", step: healNothing, short: t0.Add(-time.Second),
			s: healState{Vol: vol("ra"), InSync: []string{"ra"}, Alive: bDown, Missed: map[string]bool{"rb": true},
				Mem: healMemory{Short: t0.Add(-time.Second)}}},
		{name: "short, first seen: warned", step: healNothing, short: t0, warned: true,
			s: healState{Vol: vol("ra"), InSync: []string{"ra"}, Alive: all}},
		{name: "enough again: short forgotten", step: healLocality,
			s: healState{Vol: vol("ra", "rc"), InSync: []string{"ra", "rc"}, Alive: all,
				Mem: healMemory{Short: t0.Add(-time.Hour)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.s.Self, tc.s.Now, tc.s.Delay = "a", t0, delay
			p := planHeal(tc.s)
			var drops []string
			for _, d := range p.Drops {
				drops = append(drops, d.Replica)
				if !strings.Contains(d.Cause.Error(), "is down since") {
					t.Errorf("drop cause %v", d.Cause)
				}
			}
			var down []string
			for id, since := range p.Mem.NodeDown {
				down = append(down, fmt.Sprintf("%s@%d", id, int(since.Sub(t0).Seconds())))
			}
			if got := strings.Join(drops, ","); got != tc.drops {
				t.Errorf("drops %q, want %q", got, tc.drops)
			}
			if p.Step != tc.step || p.Replica != tc.rep {
				t.Errorf("step %s %s, want %s %s", p.Step, p.Replica, tc.step, tc.rep)
			}
			if !p.Mem.Short.Equal(tc.short) {
				t.Errorf("short since %v, want %v", p.Mem.Short, tc.short)
			}
			if got := strings.Join(down, ","); got != tc.down {
				t.Errorf("node down %q, want %q", got, tc.down)
			}
			if (p.Warn != "") != tc.warned {
				t.Errorf("warning %q", p.Warn)
			}
		})
	}
}
