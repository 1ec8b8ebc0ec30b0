package node

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/ballast-io/ballast/pool/meta"
)

// healLoop rebuilds lost replicas of the volumes attached on this node:
// the attach node has the engine, so it is the one that can fill a new
// replica while I/O goes on. planHeal decides; heal gathers what it
// decides from and does what it says.
func (n *Node) healLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	mem := map[string]healMemory{} // by volume
	loc := newLocalityMemory()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := n.retireSuperseded(ctx, n.attachments()); err != nil && ctx.Err() == nil {
			n.log.Warn("cannot tell whether the attached volumes are still this node's", "err", err)
		}
		atts := n.attachments()
		attached := map[string]bool{}
		for _, a := range atts {
			attached[a.vol] = true
			m := mem[a.vol]
			if err := n.heal(ctx, a, &m, loc); err != nil && ctx.Err() == nil {
				n.log.Warn("cannot heal or move the volume's replicas yet", "volume", a.vol, "err", err)
			}
			mem[a.vol] = m
		}
		maps.DeleteFunc(mem, func(vol string, _ healMemory) bool { return !attached[vol] })
		loc.keep(atts)
	}
}

// Heal steps, after the drops.
const (
	healNothing  = "nothing"
	healCatchUp  = "catch-up" // Replica catches up on what it missed
	healRebuild  = "rebuild"  // a new replica is placed and rebuilt
	healLocality = "locality" // replica count met: planLocality's turn
)

// healMemory is what the heal loop remembers about a volume between
// rounds.
type healMemory struct {
	// Short is since when the volume has had fewer in-sync replicas than
	// its replication factor; zero while it has enough.
	Short time.Time
	// NodeDown is, for each in-sync replica on another node that is
	// down, since when it has been seen down.
	NodeDown map[string]time.Time
}

// healState is what planHeal decides from.
type healState struct {
	Vol    *meta.Volume // the volume's record
	Self   string       // the attach node
	InSync []string     // the engine's in-sync replicas
	// Missed are the replicas out of the in-sync set whose misses the
	// engine knows, so that they can catch up.
	Missed map[string]bool
	Alive  map[string]bool // the nodes that are up
	Now    time.Time
	Delay  time.Duration // the rebuild delay
	Mem    healMemory
}

// healDrop is a replica to drop from the in-sync set.
type healDrop struct {
	Replica string
	Cause   error
}

// healPlan is what planHeal decided: the drops, in order, then one step.
type healPlan struct {
	Drops   []healDrop
	Step    string
	Replica string // healCatchUp
	Warn    string // said once when the volume turns short of replicas
	// Mem is what to remember for the next round; a drop that fails must
	// keep its NodeDown entry (it is in Mem until the drop succeeded).
	Mem healMemory
}

// planHeal decides one heal round for a volume attached on s.Self. It only
// decides; it touches nothing. The rules, in order:
//
//   - an in-sync replica on another node that has been seen down for the
//     whole rebuild delay leaves the in-sync set even if no I/O has failed
//     on it (an idle volume would never notice); not sooner: after an etcd
//     outage every lease lapses for a moment, and healthy replicas must
//     stay;
//   - a replica out of the in-sync set whose node is up and whose misses
//     the engine knows catches up, at once: far cheaper than a rebuild;
//   - with at least as many in-sync replicas as the replication factor,
//     locality has its turn, once the record agrees with the engine;
//   - with fewer, a new replica is rebuilt once the volume has been short
//     for the rebuild delay.
func planHeal(s healState) healPlan {
	v := s.Vol
	p := healPlan{Mem: healMemory{Short: s.Mem.Short, NodeDown: map[string]time.Time{}}}
	inSync := slices.Clone(s.InSync)
	for _, r := range v.Replicas {
		if r.Node == s.Self || s.Alive[r.Node] || !slices.Contains(s.InSync, r.ID) {
			continue
		}
		since, seen := s.Mem.NodeDown[r.ID]
		if !seen {
			since = s.Now
		}
		p.Mem.NodeDown[r.ID] = since
		if s.Now.Sub(since) >= s.Delay && seen {
			p.Drops = append(p.Drops, healDrop{Replica: r.ID, Cause: fmt.Errorf("node %s is down since %s", r.Node, since.Format(time.RFC3339))})
			inSync = slices.DeleteFunc(inSync, func(id string) bool { return id == r.ID })
		}
	}
	for _, r := range v.Replicas {
		if !slices.Contains(inSync, r.ID) && (s.Alive[r.Node] || r.Node == s.Self) && s.Missed[r.ID] {
			p.Step, p.Replica = healCatchUp, r.ID
			return p
		}
	}
	if len(inSync) >= v.Repl {
		p.Mem.Short = time.Time{}
		p.Step = healLocality
		if len(inSync) != len(v.InSync) {
			p.Step = healNothing // the record is a step behind the engine; next round
		}
		return p
	}
	p.Step = healNothing
	switch {
	case s.Mem.Short.IsZero():
		p.Mem.Short = s.Now
		p.Warn = fmt.Sprintf("volume is short of in-sync replicas (%d of %d); rebuilding after the %s delay", len(inSync), v.Repl, s.Delay)
	case s.Now.Sub(s.Mem.Short) >= s.Delay:
		p.Mem.Short = time.Time{}
		p.Step = healRebuild
	}
	return p
}

// heal gathers what planHeal decides from for volume a, attached here,
// and does what it says. Nothing while a rebuild or catch-up runs on it.
func (n *Node) heal(ctx context.Context, a *attachment, mem *healMemory, loc *localityMemory) error {
	if a.engine.Rebuilding() != nil {
		return nil
	}
	v, _, err := n.meta.Volume(ctx, a.vol)
	if err != nil {
		return err
	}
	nodes, alive, err := n.liveness(ctx)
	if err != nil {
		return err
	}
	missed := map[string]bool{}
	for _, r := range v.Replicas {
		if _, ok := a.engine.Missed(r.ID); ok {
			missed[r.ID] = true
		}
	}
	p := planHeal(healState{Vol: v, Self: n.cfg.ID, InSync: a.engine.InSync(), Missed: missed, Alive: alive,
		Now: time.Now(), Delay: n.cfg.RebuildDelay, Mem: *mem})
	*mem = p.Mem
	for _, d := range p.Drops {
		if err := a.engine.Drop(d.Replica, d.Cause); err != nil {
			return err
		}
		delete(mem.NodeDown, d.Replica)
	}
	if p.Warn != "" {
		n.log.Warn(p.Warn, "volume", a.vol)
	}
	switch p.Step {
	case healCatchUp:
		i := slices.IndexFunc(v.Replicas, func(r meta.Replica) bool { return r.ID == p.Replica })
		return n.startCatchUp(ctx, a, v, v.Replicas[i])
	case healRebuild:
		return n.startRebuild(ctx, a, v)
	case healLocality:
		return n.locality(ctx, a, v, nodes, alive, loc)
	}
	return nil
}
