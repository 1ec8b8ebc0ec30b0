package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ballast-io/ballast/pool/engine"
	"github.com/ballast-io/ballast/pool/meta"
)

// startRebuild places a new replica of v on a node holding none of its
// in-sync replicas, records it (out of sync), creates it and fills it.
func (n *Node) startRebuild(ctx context.Context, a *attachment, v *meta.Volume) error {
	rules, err := placementRules(v.Volume)
	if err != nil {
		return err
	}
	cands, err := n.candidates(ctx)
	if err != nil {
		return err
	}
	holders := map[string]bool{}
	for _, r := range v.Replicas {
		if slices.Contains(v.InSync, r.ID) {
			holders[r.Node] = true
		}
	}
	cands = slices.DeleteFunc(cands, func(c candidate) bool { return holders[c.Node] })
	if len(cands) == 0 {
		return fmt.Errorf("no live node without a replica of %s to rebuild onto", v.Name)
	}
	chosen, err := place(cands, 1, v.Size, rules)
	if err != nil {
		return fmt.Errorf("place a new replica: %w", err)
	}
	r := meta.Replica{ID: fmt.Sprintf("%s-r%d", v.ID, nextReplicaIndex(v)), Node: chosen[0].Node, Pool: chosen[0].Pool}
	return n.rebuildOnto(ctx, a, v, r, false)
}

// rebuildOnto records r, a new replica of v, (out of sync), creates it and
// fills it while I/O goes on. When it is in sync, the replicas out of the
// in-sync set leave the record and are deleted. With locality, r is on
// this node and will take a remote replica's place: it is filled as a
// "locality" rebuild and serves reads once in sync.
func (n *Node) rebuildOnto(ctx context.Context, a *attachment, v *meta.Volume, r meta.Replica, locality bool) error {
	if err := n.updateOwned(ctx, v.Name, a, func(v *meta.Volume) error {
		v.Replicas = append(v.Replicas, r)
		return nil
	}); err != nil {
		return err
	}
	fail := func(err error) error {
		n.updateOwned(ctx, v.Name, a, func(v *meta.Volume) error {
			v.Replicas = slices.DeleteFunc(v.Replicas, func(x meta.Replica) bool { return x.ID == r.ID })
			return nil
		})
		if rerr := n.removeReplica(ctx, r); rerr != nil {
			n.log.Warn("remove failed rebuild target", "replica", r.ID, "err", rerr)
		}
		return err
	}
	if err := n.makeReplica(ctx, r, v.Size, "", ""); err != nil {
		return fail(err)
	}
	m, err := n.openFenced(ctx, r, a.epoch)
	if err != nil {
		return fail(err)
	}
	n.log.Info("rebuilding a replica", "volume", v.Name, "replica", r.ID, "node", r.Node, "pool", r.Pool, "locality", locality, "limit_bytes_per_s", n.cfg.RebuildBPS)
	var lost []meta.Replica
	promote := func() error {
		return n.updateOwned(ctx, v.Name, a, func(v *meta.Volume) error {
			v.InSync = append(v.InSync, r.ID)
			lost = nil
			v.Replicas = slices.DeleteFunc(v.Replicas, func(x meta.Replica) bool {
				gone := !slices.Contains(v.InSync, x.ID)
				if gone {
					lost = append(lost, x)
				}
				return gone
			})
			a.add(r.ID, m)
			return nil
		})
	}
	if !a.start() {
		m.Close()
		return fail(a.ctx.Err())
	}
	rebuild, kind := a.engine.Rebuild, "rebuild"
	if locality {
		rebuild, kind = a.engine.Relocate, "locality"
	}
	rb, err := rebuild(a.ctx, engine.Member{ID: r.ID, Dev: m}, n.cfg.RebuildBPS, promote)
	if err != nil {
		a.bg.Done()
		m.Close()
		return fail(err)
	}
	a.setRebuild(rb)
	go func() {
		defer a.bg.Done()
		start := time.Now()
		if err := rb.Wait(); err != nil {
			n.log.Error("rebuild failed", "volume", v.Name, "replica", r.ID, "kind", kind, "err", err)
			m.Close()
			fail(err)
			return
		}
		n.log.Info("replica rebuilt and in sync", "volume", v.Name, "replica", r.ID, "kind", kind, "took", time.Since(start))
		for _, old := range lost {
			a.engine.Forget(old.ID)
			if err := n.removeReplica(ctx, old); err != nil {
				n.log.Warn("could not delete the lost replica (its node may be down; it is no longer part of the volume)", "replica", old.ID, "node", old.Node, "err", err)
			}
		}
	}()
	return nil
}

// startCatchUp brings r, a replica of v that left the in-sync set while v
// was attached here and whose node is back, in sync again by copying only
// what it missed.
func (n *Node) startCatchUp(ctx context.Context, a *attachment, v *meta.Volume, r meta.Replica) error {
	m, err := n.openFenced(ctx, r, a.epoch)
	if err != nil {
		return fmt.Errorf("catch up replica %s: %w", r.ID, err)
	}
	missed, _ := a.engine.Missed(r.ID)
	n.log.Info("replica is back: catching up on what it missed", "volume", v.Name, "replica", r.ID, "node", r.Node, "missed_bytes", missed)
	promote := func() error {
		return n.updateOwned(ctx, v.Name, a, func(v *meta.Volume) error {
			if !slices.ContainsFunc(v.Replicas, func(x meta.Replica) bool { return x.ID == r.ID }) {
				return fmt.Errorf("replica %s is no longer part of volume %s", r.ID, v.Name)
			}
			if !slices.Contains(v.InSync, r.ID) {
				v.InSync = append(v.InSync, r.ID)
			}
			a.add(r.ID, m)
			return nil
		})
	}
	if !a.start() {
		m.Close()
		return a.ctx.Err()
	}
	rb, err := a.engine.CatchUp(a.ctx, engine.Member{ID: r.ID, Dev: m}, n.cfg.RebuildBPS, promote)
	if err != nil {
		a.bg.Done()
		m.Close()
		return err
	}
	a.setRebuild(rb)
	go func() {
		defer a.bg.Done()
		if err := rb.Wait(); err != nil {
			n.log.Error("catch-up failed; it will be tried again", "volume", v.Name, "replica", r.ID, "err", err)
			if a.member(r.ID) != m {
				m.Close()
			}
			return
		}
		p := rb.Progress()
		n.log.Info("replica caught up and in sync", "volume", v.Name, "replica", r.ID, "copied_bytes", p.Total, "took", p.Elapsed)
	}()
	return nil
}

func nextReplicaIndex(v *meta.Volume) int {
	next := 0
	for _, r := range v.Replicas {
		var i int
		if _, err := fmt.Sscanf(r.ID[len(v.ID):], "-r%d", &i); err == nil && i >= next {
			next = i + 1
		}
	}
	return next
}

// updateOwned changes v's record with change while this node still holds
// the attachment at the engine's epoch: a fenced former owner changes
// nothing.
func (n *Node) updateOwned(ctx context.Context, vol string, a *attachment, change func(*meta.Volume) error) error {
	for {
		att, attRev, err := n.meta.Attachment(ctx, vol)
		if err != nil {
			return err
		}
		if att.Node != n.cfg.ID || att.Epoch != a.epoch {
			return fmt.Errorf("volume %s is now held by node %s at epoch %d: fenced", vol, att.Node, att.Epoch)
		}
		v, rev, err := n.meta.Volume(ctx, vol)
		if err != nil {
			return err
		}
		if err := change(v); err != nil {
			return err
		}
		err = n.meta.Commit(ctx, meta.PutVolume(v, rev), meta.AttachmentUnchanged(vol, attRev))
		if !errors.Is(err, meta.ErrConflict) {
			return err
		}
	}
}
