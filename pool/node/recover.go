package node

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/meta"
)

// recover brings this node back to a consistent state after a crash:
// stale mounts and devices of the previous daemon go, half-done creates are
// rolled back, half-done deletes finished, and volumes attached here are
// attached again at the same mount path. A volume whose FUSE connection
// and loop device the keeper held across the restart is taken over as it
// is: its filesystem stays mounted, and the I/O that waited is served.
func (n *Node) recover(ctx context.Context) error {
	if err := n.front.Recover(n.cfg.MountDir); err != nil {
		return fmt.Errorf("clean up stale mounts: %w", err)
	}
	vols, err := n.meta.Volumes(ctx)
	if err != nil {
		return err
	}
	alive, err := n.aliveNow(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for i := range vols {
		v := &vols[i]
		if !n.hasReplicaOf(v) {
			continue
		}
		switch v.State {
		case meta.StateCreating:
			if v.Creator != "" && v.Creator != n.cfg.ID && alive[v.Creator] {
				continue // another node is making it (a restore, say)
			}
			n.log.Warn("rolling back a create interrupted by a crash", "volume", v.Name)
			errs = append(errs, n.rollbackCreate(ctx, v))
			continue
		case meta.StateDeleting:
			n.log.Warn("finishing a delete interrupted by a crash", "volume", v.Name)
			errs = append(errs, n.finishDelete(ctx, v))
			continue
		}
		errs = append(errs, n.recoverSnapshots(ctx, v))
	}
	if err := n.removeOrphans(ctx); err != nil {
		n.log.Warn("could not delete every replica its volume no longer lists", "err", err)
	}
	atts, err := n.meta.Attachments(ctx)
	if err != nil {
		return err
	}
	for _, a := range atts {
		if a.Node != n.cfg.ID {
			continue
		}
		n.log.Info("re-attaching after restart", "volume", a.Volume, "mount", a.MountPath, "block", a.Block)
		errs = append(errs, n.reattach(ctx, a, vols))
	}
	if err := n.front.FinishRecover(n.cfg.MountDir); err != nil {
		errs = append(errs, fmt.Errorf("give up volumes kept for a takeover: %w", err))
	}
	return errors.Join(errs...)
}

// reattach attaches a, this node's attachment before the restart, again.
// A volume whose passphrase was given per call needs the key the keeper
// kept for it; without it (no keeper, or it let the key go), its
// attachment is dropped, for the orchestrator to attach it again with
// the passphrase.
func (n *Node) reattach(ctx context.Context, a meta.Attachment, vols []meta.Volume) error {
	defer n.locks.Lock(a.Volume)()
	var kept []byte
	if i := slices.IndexFunc(vols, func(v meta.Volume) bool { return v.Name == a.Volume }); i >= 0 && perCall(&vols[i]) {
		key, err := n.keptKey(a.Volume, vols[i].ID)
		if err != nil {
			n.log.Warn("detaching a volume whose passphrase was given per call: its key was not kept across the restart; attach it again with the passphrase", "volume", a.Volume, "err", err)
			return n.dropAttachment(ctx, a.Volume)
		}
		defer clear(key)
		kept = key
	}
	if _, err := n.attach(ctx, a.Volume, api.AttachOptions{Block: a.Block}, kept); err != nil {
		if kept != nil {
			n.forgetKey(a.Volume)
		}
		return fmt.Errorf("re-attach %s: %w", a.Volume, err)
	}
	return nil
}

// dropAttachment deletes vol's attachment record, if it is still this
// node's.
func (n *Node) dropAttachment(ctx context.Context, vol string) error {
	a, rev, err := n.meta.Attachment(ctx, vol)
	if errors.Is(err, meta.ErrNotFound) || err == nil && a.Node != n.cfg.ID {
		return nil
	}
	if err == nil {
		err = n.meta.Commit(ctx, meta.DeleteAttachment(vol, rev))
	}
	if err != nil {
		return fmt.Errorf("detach %s: %w", vol, err)
	}
	return nil
}

// recoverSnapshots finishes snapshot deletes interrupted by a crash and
// removes from v's local replicas every snapshot etcd has no ready record
// of (one interrupted while being taken): etcd is the truth.
func (n *Node) recoverSnapshots(ctx context.Context, v *meta.Volume) error {
	snaps, err := n.meta.Snapshots(ctx, v.Name)
	if err != nil {
		return err
	}
	var errs []error
	ready := map[string]bool{}
	for _, s := range snaps {
		if s.State == meta.StateReady {
			ready[s.Name] = true
			continue
		}
		n.log.Warn("finishing a snapshot operation interrupted by a crash", "volume", v.Name, "snapshot", s.Name, "state", s.State)
		errs = append(errs, n.dropSnapshot(ctx, v, s.Name))
	}
	// Only this node's own replicas: the others recover theirs, and a
	// peer that is down must not keep this node from starting.
	for _, r := range v.Replicas {
		if r.Node != n.cfg.ID || !slices.Contains(v.InSync, r.ID) {
			continue
		}
		m, err := n.openMember(ctx, r, v.Epoch)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ref := m.(*localMember)
		for _, s := range ref.Replica().Snapshots() {
			if ready[s.Name] {
				continue
			}
			n.log.Warn("removing a snapshot interrupted by a crash", "volume", v.Name, "replica", r.ID, "snapshot", s.Name)
			if err := ref.DeleteSnapshot(s.Name); err != nil {
				errs = append(errs, fmt.Errorf("replica %s: %w", r.ID, err))
				break
			}
		}
		errs = append(errs, ref.Close())
	}
	return errors.Join(errs...)
}

func (n *Node) hasReplicaOf(v *meta.Volume) bool {
	for _, r := range v.Replicas {
		if r.Node == n.cfg.ID {
			return true
		}
	}
	return false
}
