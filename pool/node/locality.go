package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/spec"
)

// Data locality: a volume attached on a node that holds no replica of it
// (its container was rescheduled there) gets one built there in the
// background, like a rebuild; once it is in sync a remote replica is
// retired, so the replica count stays and reads are local. planLocality
// decides; locality, in the heal loop, does what it says.

// Locality actions.
const (
	localityNone   = "none"   // nothing to do (Why says why, when it matters)
	localityWait   = "wait"   // a local replica will be built once the delay has passed
	localityBuild  = "build"  // build a replica on Pool of the attach node
	localityRetire = "retire" // retire Replica, a remote one
)

// localityState is what planLocality decides from.
type localityState struct {
	Vol    *meta.Volume
	Self   string // the attach node
	Serves bool   // the attach node serves replicas to others (--listen)
	// Labels are every node's labels by node ID, Alive the nodes that are
	// up.
	Labels map[string]map[string]string
	Alive  map[string]bool
	Busy   bool      // a rebuild or catch-up runs on the volume
	Since  time.Time // since when the volume has lacked a local replica here
	Now    time.Time
	Delay  time.Duration

	// What localityShortcut does without, which costs I/O to gather:
	// Pools are the attach node's pools (live figures: a statfs each),
	// Free the free bytes of the pools of live nodes by pool ID.
	// Snapshots is how many snapshots the volume has (an etcd read): a
	// rebuilt replica holds none of them, so a volume with snapshots does
	// not move.
	Pools     []candidate
	Free      map[string]int64
	Snapshots int
}

// localityAction is what planLocality decided.
type localityAction struct {
	Kind    string
	Pool    string // localityBuild
	Replica string // localityRetire
	Why     string
}

// planLocality decides the next locality step for a volume attached on
// s.Self. It only decides; it touches nothing. The rules:
//
//   - nothing for a volume with locality=none, while a rebuild or catch-up
//     runs, while fewer replicas than its replication factor are in sync
//     (healing comes first), or while it has snapshots (a rebuilt replica
//     holds only the current data, so moving would lose them);
//   - with an in-sync replica on the attach node and more in-sync replicas
//     than the replication factor: retire the remote one whose removal
//     leaves the set best spread (zones, then racks, then nodes), a
//     replica on a down node first among equals, then the one on the pool
//     with the least free space (the replication factor is at least the
//     minimum in-sync count, so that stays met);
//   - with no in-sync replica on the attach node: build one on its pool
//     with the most free space that can hold the whole volume, once the
//     delay has passed; nothing when the node serves no replicas, its
//     labels break the volume's pin or avoid, or no pool can hold it.
func planLocality(s localityState) localityAction {
	if act, done := localityShortcut(s); done {
		return act
	}
	v := s.Vol
	if s.Snapshots > 0 {
		return localityAction{Kind: localityNone, Why: fmt.Sprintf("the volume has %d snapshot(s), which a rebuilt replica would not hold", s.Snapshots)}
	}
	if inSync, local := inSyncReplicas(v, s.Self); local {
		return localityAction{Kind: localityRetire, Replica: retireChoice(s, inSync), Why: "a replica on the attach node is in sync"}
	}
	// The node's labels, which all its pools carry, passed the volume's
	// pin and avoid in localityShortcut.
	p, err := place(s.Pools, 1, v.Size, spec.Placement{})
	if err != nil {
		return localityAction{Kind: localityNone, Why: fmt.Sprintf("no pool dir of this node can hold the volume: %v", err)}
	}
	if s.Now.Sub(s.Since) < s.Delay {
		return localityAction{Kind: localityWait, Pool: p[0].Pool, Why: fmt.Sprintf("building a local replica after the %s locality delay", s.Delay)}
	}
	return localityAction{Kind: localityBuild, Pool: p[0].Pool, Why: "no replica on the attach node"}
}

// localityShortcut takes planLocality's decisions that need neither
// s.Pools, s.Free nor s.Snapshots, which are every decision of the steady
// state (locality=none, or a local replica in sync and nothing to
// retire). When it is not done, planLocality needs them.
func localityShortcut(s localityState) (act localityAction, done bool) {
	v := s.Vol
	if spec.NormalLocality(v.Locality) == spec.LocalityNone {
		return localityAction{Kind: localityNone, Why: "locality=none"}, true
	}
	if s.Busy {
		return localityAction{Kind: localityNone, Why: "a rebuild or catch-up is under way"}, true
	}
	inSync, local := inSyncReplicas(v, s.Self)
	if len(inSync) < v.Repl {
		return localityAction{Kind: localityNone, Why: fmt.Sprintf("%d of %d replicas in sync: healing comes first", len(inSync), v.Repl)}, true
	}
	if local {
		return localityAction{Kind: localityNone}, len(inSync) <= v.Repl
	}
	if !s.Serves {
		return localityAction{Kind: localityNone, Why: "this node serves no replicas (started without --listen)"}, true
	}
	r, err := placementRules(v.Volume)
	if err != nil {
		return localityAction{Kind: localityNone, Why: err.Error()}, true
	}
	if !r.Allows(s.Labels[s.Self]) {
		return localityAction{Kind: localityNone, Why: fmt.Sprintf("this node's labels do not match the volume's placement (pin %q, avoid %q)", v.Pin, v.Avoid)}, true
	}
	return localityAction{}, false
}

// inSyncReplicas returns v's in-sync replicas, and whether one is on node.
func inSyncReplicas(v *meta.Volume, node string) (inSync []meta.Replica, local bool) {
	for _, r := range v.Replicas {
		if slices.Contains(v.InSync, r.ID) {
			inSync = append(inSync, r)
			local = local || r.Node == node
		}
	}
	return inSync, local
}

// retireChoice picks the remote replica of inSync whose removal leaves the
// best spread set.
func retireChoice(s localityState, inSync []meta.Replica) string {
	key := func(r meta.Replica) []int64 {
		zones, racks, nodes := map[string]bool{}, map[string]bool{}, map[string]bool{}
		for _, o := range inSync {
			if o.ID == r.ID {
				continue
			}
			zone, rack := domains(s.Labels[o.Node])
			zones[zone], racks[rack], nodes[o.Node] = true, true, true
		}
		free, ok := s.Free[r.Pool]
		if !ok {
			free = -1 // unknown (its node is down): retire it first among equals
		}
		return []int64{int64(len(zones)), int64(len(racks)), int64(len(nodes)), flag(!s.Alive[r.Node]), -free}
	}
	var best *meta.Replica
	for i, r := range inSync {
		if r.Node == s.Self {
			continue
		}
		if best == nil || slices.Compare(key(r), key(*best)) > 0 {
			best = &inSync[i]
		}
	}
	if best == nil {
		return ""
	}
	return best.ID
}

// localityMemory is what the heal loop remembers about locality between
// rounds, by volume and epoch (a new attachment starts afresh).
type localityMemory struct {
	since map[string]time.Time // when the volume was first seen needing a local replica
	said  map[string]string    // the last reason logged
}

func newLocalityMemory() *localityMemory {
	return &localityMemory{since: map[string]time.Time{}, said: map[string]string{}}
}

// localityKey is what localityMemory knows attachment a by.
func localityKey(a *attachment) string { return fmt.Sprintf("%s@%d", a.vol, a.epoch) }

// keep forgets every volume but those attached now.
func (m *localityMemory) keep(atts []*attachment) {
	now := map[string]bool{}
	for _, a := range atts {
		now[localityKey(a)] = true
	}
	maps.DeleteFunc(m.since, func(k string, _ time.Time) bool { return !now[k] })
	maps.DeleteFunc(m.said, func(k, _ string) bool { return !now[k] })
}

// locality takes the next locality step for a, attached here, whose
// in-sync replicas are at least its replication factor. What costs I/O
// (the pools' usage, the volume's snapshots) is gathered only when
// localityShortcut cannot decide without it.
func (n *Node) locality(ctx context.Context, a *attachment, v *meta.Volume, nodes []meta.Node, alive map[string]bool, mem *localityMemory) error {
	key := localityKey(a)
	now := time.Now()
	s := localityState{Vol: v, Self: n.cfg.ID, Serves: n.cfg.Addr != "",
		Labels: map[string]map[string]string{n.cfg.ID: n.cfg.Labels}, Alive: alive,
		Busy: a.engine.Rebuilding() != nil, Since: cmp.Or(mem.since[key], now), Now: now, Delay: n.cfg.LocalityDelay}
	for _, nd := range nodes {
		if nd.ID != n.cfg.ID {
			s.Labels[nd.ID] = nd.Labels
		}
	}
	act, done := localityShortcut(s)
	if !done {
		snaps, err := n.meta.SnapshotRevs(ctx, v.Name)
		if err != nil {
			return err
		}
		s.Snapshots = len(snaps)
		s.Free = map[string]int64{}
		for _, nd := range nodes {
			if alive[nd.ID] {
				for _, p := range nd.Pools {
					s.Free[p.ID] = p.Capacity - p.Allocated
				}
			}
		}
		if _, local := inSyncReplicas(v, n.cfg.ID); !local && s.Snapshots == 0 {
			s.Pools = n.localCandidates()
		}
		act = planLocality(s)
	}
	if act.Kind == localityWait {
		if _, ok := mem.since[key]; !ok {
			mem.since[key] = now
		}
	} else {
		delete(mem.since, key)
	}
	if act.Why != mem.said[key] && act.Kind != localityBuild && act.Kind != localityRetire {
		mem.said[key] = act.Why
		if act.Why != "" && act.Why != "locality=none" {
			n.log.Info("data locality", "volume", a.vol, "state", act.Kind, "why", act.Why)
		}
	}
	switch act.Kind {
	case localityBuild:
		delete(mem.said, key)
		r := meta.Replica{ID: fmt.Sprintf("%s-r%d", v.ID, nextReplicaIndex(v)), Node: n.cfg.ID, Pool: act.Pool}
		n.log.Info("data locality: building a replica on the attach node", "volume", a.vol, "replica", r.ID, "pool", r.Pool)
		return n.rebuildOnto(ctx, a, v, r, true)
	case localityRetire:
		delete(mem.said, key)
		return n.retireReplica(ctx, a, v.Name, act.Replica)
	}
	return nil
}

// retireReplica takes replica id, a remote one, out of volume vol attached
// here, now that a local replica is in sync: first out of the record
// (guarded like every in-sync change: only while this node holds the
// volume at a's epoch, and only while a local replica is in sync and the
// replication factor and minimum stay met), then out of the engine, then
// its data is deleted.
func (n *Node) retireReplica(ctx context.Context, a *attachment, vol, id string) error {
	if !a.start() {
		return a.ctx.Err()
	}
	defer a.bg.Done()
	var gone meta.Replica
	commit := func() error {
		// No I/O runs meanwhile: give etcd a bounded time, as a drop does.
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return n.updateOwned(ctx, vol, a, func(v *meta.Volume) error {
			i := slices.IndexFunc(v.Replicas, func(r meta.Replica) bool { return r.ID == id })
			if i < 0 || !slices.Contains(v.InSync, id) {
				return fmt.Errorf("replica %s is no longer an in-sync replica of %s", id, vol)
			}
			if v.Replicas[i].Node == n.cfg.ID {
				return fmt.Errorf("replica %s is on the attach node", id)
			}
			local := slices.ContainsFunc(v.Replicas, func(r meta.Replica) bool {
				return r.Node == n.cfg.ID && slices.Contains(v.InSync, r.ID)
			})
			if !local {
				return fmt.Errorf("no replica of %s on the attach node is in sync", vol)
			}
			if left := len(v.InSync) - 1; left < max(v.Repl, v.MinInSync, 1) {
				return fmt.Errorf("%s would keep %d in-sync replicas, below its replication factor %d or minimum %d", vol, left, v.Repl, v.MinInSync)
			}
			gone = v.Replicas[i]
			v.Replicas = slices.Delete(v.Replicas, i, i+1)
			v.InSync = slices.DeleteFunc(v.InSync, func(s string) bool { return s == id })
			return nil
		})
	}
	if err := a.engine.Retire(id, commit); err != nil {
		return fmt.Errorf("data locality: %w", err)
	}
	a.remove(id)
	n.log.Info("data locality: remote replica retired", "volume", vol, "replica", id, "node", gone.Node, "pool", gone.Pool)
	if err := n.removeReplica(ctx, gone); err != nil {
		n.log.Warn("could not delete the retired replica (it is no longer part of the volume; its node deletes it when it restarts)", "volume", vol, "replica", id, "node", gone.Node, "err", err)
	}
	return nil
}

// remove closes open replica id and forgets it.
func (a *attachment) remove(id string) {
	a.mu.Lock()
	m := a.replicas[id]
	delete(a.replicas, id)
	a.mu.Unlock()
	if m != nil {
		m.Close()
	}
}

// removeOrphans deletes the replicas in this node's pools that their
// volume's record no longer lists: a retired (or lost) replica whose
// delete did not happen, because this node was down or the attach node
// died between the record change and the delete. A replica is always
// recorded before it is created and deleted after it leaves the record,
// so one the pools held before the records were read, and that a record
// does not list, is no longer part of its volume. Replicas of volumes
// without a record are left alone.
func (n *Node) removeOrphans(ctx context.Context) error {
	held := map[string]*pool{}
	for _, id := range n.order {
		ids, err := n.pools[id].store.List()
		if err != nil {
			return fmt.Errorf("list replicas of pool %s: %w", n.pools[id].dir, err)
		}
		for _, r := range ids {
			held[r] = n.pools[id]
		}
	}
	vols, err := n.meta.Volumes(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, v := range vols {
		for id, p := range held {
			if !strings.HasPrefix(id, v.ID+"-r") || slices.ContainsFunc(v.Replicas, func(r meta.Replica) bool { return r.ID == id }) {
				continue
			}
			n.log.Warn("deleting a replica its volume no longer lists (retired or lost while this node was away)", "volume", v.Name, "replica", id, "pool", p.dir)
			if err := n.removeReplica(ctx, meta.Replica{ID: id, Node: n.cfg.ID, Pool: p.id}); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
