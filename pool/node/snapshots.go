package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/engine"
	"github.com/ballast-io/ballast/pool/hostfs"
	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/peer"
	"github.com/ballast-io/ballast/pool/replica"
	"github.com/ballast-io/ballast/pool/spec"
)

// CreateSnapshot takes a crash-consistent snapshot of a volume on all its
// in-sync replicas at once. When the volume is mounted here its filesystem
// is frozen for the moment it takes, so the snapshot is also
// filesystem-consistent.
func (n *Node) CreateSnapshot(ctx context.Context, vol, name string) (*api.Snapshot, error) {
	return n.createSnapshot(ctx, vol, name, true)
}

// createSnapshot takes snapshot name of vol here, or, with forward, on the
// node vol is attached on if that is another: only that node can freeze
// the filesystem and quiesce the engine, so that every replica's snapshot
// holds the same writes.
func (n *Node) createSnapshot(ctx context.Context, vol, name string, forward bool) (*api.Snapshot, error) {
	if err := spec.ValidateName("volume name", vol); err != nil {
		return nil, err
	}
	if err := spec.ValidateName("snapshot name", name); err != nil {
		return nil, err
	}
	a, _, err := n.meta.Attachment(ctx, vol)
	switch {
	case errors.Is(err, meta.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("snapshot %s@%s: %w", vol, name, err)
	case a.Node != n.cfg.ID:
		if !forward {
			return nil, fmt.Errorf("volume %q is attached on node %s, not on %s: %w", vol, a.Node, n.cfg.ID, api.ErrConflict)
		}
		var sn *api.Snapshot
		err := n.withPeer(ctx, a.Node, time.Minute, func(ctx context.Context, c *peer.Client) error {
			var err error
			sn, err = c.CreateSnapshot(ctx, vol, name)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("snapshot %s@%s on node %s, where it is attached: %w", vol, name, a.Node, err)
		}
		return sn, nil
	}
	defer n.locks.Lock(vol)()
	v, _, err := n.getVolume(ctx, vol)
	if err != nil {
		return nil, err
	}
	if v.State != meta.StateReady {
		return nil, fmt.Errorf("volume %q is %s: %w", vol, v.State, api.ErrConflict)
	}
	if old, _, err := n.meta.Snapshot(ctx, vol, name); err == nil {
		return nil, fmt.Errorf("snapshot %q of volume %q already exists (taken %s): %w", name, vol, old.Created.Format(time.RFC3339), api.ErrExists)
	}
	// The replicas first, the record last: a crash in between leaves
	// replica snapshots without a record, which recovery removes (etcd is
	// the truth), and costs no extra etcd round trip here.
	start := time.Now()
	took, err := n.snapshotReplicas(v, name)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s@%s: %w", vol, name, err)
	}
	recorded := time.Now()
	sn := &meta.Snapshot{Volume: vol, Name: name, State: meta.StateReady, Created: time.Now().UTC(), Size: v.Size}
	if err := n.meta.Commit(ctx, meta.PutSnapshot(sn, 0)); err != nil {
		if rerr := n.withReplicas(v, func(reps map[string]block.Replica) error { return deleteSnapshotAll(reps, name) }); rerr != nil {
			n.log.Error("roll back snapshot whose record failed", "volume", vol, "snapshot", name, "err", rerr)
		}
		return nil, conflict("snapshot "+vol+"@"+name, err)
	}
	n.log.Info("snapshot created", "volume", vol, "snapshot", name, "freeze", took.freeze, "replicas", took.replicas,
		"record", time.Since(recorded), "total", time.Since(start))
	return &api.Snapshot{Volume: vol, Name: name, State: string(sn.State), Created: sn.Created, Size: sn.Size}, nil
}

// phases says how long the parts of a snapshot took, for the log.
type phases struct{ freeze, replicas time.Duration }

// snapshotReplicas snapshots every in-sync replica of v, all or none.
func (n *Node) snapshotReplicas(v *meta.Volume, name string) (phases, error) {
	var took phases
	n.mu.Lock()
	att := n.attached[v.Name]
	n.mu.Unlock()
	if att == nil {
		start := time.Now()
		err := n.withReplicas(v, func(reps map[string]block.Replica) error { return snapshotAll(reps, name) })
		took.replicas = time.Since(start)
		return took, err
	}
	start := time.Now()
	if att.mountPath != "" { // a raw block volume's user flushes its own writes
		if err := hostfs.Freeze(att.mountPath); err != nil {
			return took, fmt.Errorf("freeze %s: %w", att.mountPath, err)
		}
		defer func() {
			if err := hostfs.Thaw(att.mountPath); err != nil {
				n.log.Error("thaw after snapshot", "volume", v.Name, "err", err)
			}
		}()
	}
	took.freeze = time.Since(start)
	start = time.Now()
	err := att.engine.Quiesce(func(in []engine.Member) error {
		reps := map[string]block.Replica{}
		for _, m := range in {
			reps[m.ID] = att.member(m.ID)
		}
		return snapshotAll(reps, name)
	})
	took.replicas = time.Since(start)
	return took, err
}

// snapshotAll snapshots every replica at once, all or none.
func snapshotAll(reps map[string]block.Replica, name string) error {
	var mu sync.Mutex
	var failed []error
	var done []block.Replica
	var wg sync.WaitGroup
	for id, r := range reps {
		wg.Go(func() {
			err := r.Snapshot(name)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, fmt.Errorf("replica %s: %w", id, err))
			} else {
				done = append(done, r)
			}
		})
	}
	wg.Wait()
	if len(failed) == 0 {
		return nil
	}
	for _, r := range done {
		r.DeleteSnapshot(name)
	}
	return errors.Join(failed...)
}

// deleteSnapshotAll deletes a snapshot from every replica that has it.
func deleteSnapshotAll(reps map[string]block.Replica, name string) error {
	for id, r := range reps {
		if err := r.DeleteSnapshot(name); err != nil && !errors.Is(err, replica.ErrNotFound) {
			return fmt.Errorf("replica %s: %w", id, err)
		}
	}
	return nil
}

// withReplicas runs fn on v's in-sync replicas: the open ones when v is
// attached here, otherwise opened (at v's epoch) for the call.
func (n *Node) withReplicas(v *meta.Volume, fn func(map[string]block.Replica) error) error {
	n.mu.Lock()
	att := n.attached[v.Name]
	n.mu.Unlock()
	if att != nil {
		return fn(att.members())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reps := map[string]block.Replica{}
	defer func() {
		for _, r := range reps {
			r.Close()
		}
	}()
	for _, r := range v.Replicas {
		if !slices.Contains(v.InSync, r.ID) {
			continue
		}
		m, err := n.openMember(ctx, r, v.Epoch)
		if err != nil {
			return err
		}
		reps[r.ID] = m
	}
	return fn(reps)
}

// DeleteSnapshot deletes a snapshot no clone depends on.
func (n *Node) DeleteSnapshot(ctx context.Context, vol, name string) error {
	if err := spec.ValidateName("volume name", vol); err != nil {
		return err
	}
	if err := spec.ValidateName("snapshot name", name); err != nil {
		return err
	}
	defer n.locks.Lock(vol)()
	v, _, err := n.getVolume(ctx, vol)
	if err != nil {
		return err
	}
	sn, rev, err := n.meta.Snapshot(ctx, vol, name)
	if errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("snapshot %q of volume %q does not exist (see 'ballast snapshot list %s'): %w", name, vol, vol, api.ErrNotFound)
	} else if err != nil {
		return err
	}
	clones, err := n.clonesOf(ctx, vol, name)
	if err != nil {
		return err
	}
	if len(clones) > 0 {
		return fmt.Errorf("snapshot %s@%s has clones (%s); delete them first: %w", vol, name, strings.Join(clones, ", "), api.ErrInUse)
	}
	if sn.State != meta.StateDeleting {
		sn.State = meta.StateDeleting
		if err := n.meta.Commit(ctx, meta.PutSnapshot(sn, rev)); err != nil {
			return conflict("delete snapshot "+vol+"@"+name, err)
		}
	}
	return n.dropSnapshot(ctx, v, name)
}

// dropSnapshot removes a snapshot from v's replicas (where it exists) and
// then its record.
func (n *Node) dropSnapshot(ctx context.Context, v *meta.Volume, name string) error {
	err := n.withReplicas(v, func(reps map[string]block.Replica) error { return deleteSnapshotAll(reps, name) })
	if err != nil {
		return fmt.Errorf("delete snapshot %s@%s: %w", v.Name, name, err)
	}
	_, rev, err := n.meta.Snapshot(ctx, v.Name, name)
	if errors.Is(err, meta.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if err := n.meta.Commit(ctx, meta.DeleteSnapshot(v.Name, name, rev)); err != nil {
		return conflict("delete snapshot "+v.Name+"@"+name, err)
	}
	n.log.Info("snapshot deleted", "volume", v.Name, "snapshot", name)
	return nil
}

// clonesOf lists the volumes created from vol@snap.
func (n *Node) clonesOf(ctx context.Context, vol, snap string) ([]string, error) {
	vols, err := n.meta.Volumes(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range vols {
		if v.FromSnapshot == vol+"@"+snap {
			out = append(out, v.Name)
		}
	}
	return out, nil
}

// ListSnapshots lists the snapshots of vol, or of every volume.
func (n *Node) ListSnapshots(ctx context.Context, vol string) ([]api.Snapshot, error) {
	if vol != "" {
		if _, _, err := n.getVolume(ctx, vol); err != nil {
			return nil, err
		}
	}
	snaps, err := n.meta.Snapshots(ctx, vol)
	if err != nil {
		return nil, err
	}
	vols, err := n.meta.Volumes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.Snapshot, 0, len(snaps))
	for _, s := range snaps {
		as := api.Snapshot{Volume: s.Volume, Name: s.Name, State: string(s.State), Created: s.Created, Size: s.Size}
		for _, v := range vols {
			if v.FromSnapshot == s.Volume+"@"+s.Name {
				as.Clones = append(as.Clones, v.Name)
			}
			if v.Name == s.Volume && as.Size == 0 {
				as.Size = v.Size // a record from before volumes could grow
			}
		}
		out = append(out, as)
	}
	return out, nil
}
