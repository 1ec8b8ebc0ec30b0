package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/crypt"
	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/spec"
)

// CreateVolume creates a volume, or returns the existing one when a volume
// of the same name and the same spec exists. The record goes to etcd first,
// in state "creating"; a crash before it turns "ready" is rolled back when
// the node restarts.
func (n *Node) CreateVolume(ctx context.Context, s spec.Volume, opts api.CreateOptions) (*api.Volume, error) {
	return n.createVolume(ctx, s, opts.Passphrase, nil)
}

// filler gives a new volume its content before it is ready: a restore.
type filler struct {
	// key is the volume's wrapped data key, for an encrypted one: the
	// content is ciphertext under it; guards hold the secret's record as
	// key was wrapped under it (none for a passphrase given per call).
	key    *crypt.Wrapped
	guards []meta.Op
	// fill writes the content; the volume is rolled back if it fails.
	fill func(ctx context.Context, v *meta.Volume) error
}

// createVolume creates volume s, its key wrapped by pass if given (an
// encrypted volume with a passphrase per call), and, with f, fills it
// before it is ready.
func (n *Node) createVolume(ctx context.Context, s spec.Volume, pass []byte, f *filler) (*api.Volume, error) {
	if err := s.Normalize(); err != nil {
		return nil, err
	}
	if f == nil { // a restore's key comes with its backup
		if err := checkCreatePassphrase(s, pass); err != nil {
			return nil, err
		}
	}
	var srcVol, srcSnap string
	if s.FromSnapshot != "" {
		srcVol, srcSnap, _ = spec.ParseSnapshotRef(s.FromSnapshot)
		defer n.locks.Lock(srcVol)()
	}
	defer n.locks.Lock(s.Name)()

	if old, _, err := n.meta.Volume(ctx, s.Name); err == nil {
		if f != nil {
			return nil, fmt.Errorf("volume %q exists; a restore makes a new volume: %w", s.Name, api.ErrExists)
		}
		return n.sameSpec(ctx, old, s, pass)
	} else if !errors.Is(err, meta.ErrNotFound) {
		return nil, err
	}

	v := &meta.Volume{Volume: s, ID: newID(), State: meta.StateCreating, Created: time.Now().UTC(), Creator: n.cfg.ID}
	var src *meta.Volume
	if s.FromSnapshot != "" {
		var err error
		if src, err = n.cloneSource(ctx, &v.Volume, srcVol, srcSnap); err != nil {
			return nil, err
		}
		for i := range v.Repl {
			v.Replicas = append(v.Replicas, meta.Replica{ID: fmt.Sprintf("%s-r%d", v.ID, i), Node: src.Replicas[i].Node, Pool: src.Replicas[i].Pool})
		}
	} else {
		r, err := placementRules(s)
		if err != nil {
			return nil, err
		}
		cands, err := n.candidates(ctx)
		if err != nil {
			return nil, err
		}
		chosen, err := place(cands, s.Repl, s.Size, r)
		if err != nil {
			return nil, fmt.Errorf("create volume %s: %w", s.Name, err)
		}
		for i, c := range chosen {
			v.Replicas = append(v.Replicas, meta.Replica{ID: fmt.Sprintf("%s-r%d", v.ID, i), Node: c.Node, Pool: c.Pool})
		}
	}
	for _, r := range v.Replicas {
		v.InSync = append(v.InSync, r.ID)
	}
	var guards []meta.Op
	switch {
	case v.Encrypted:
		var err error
		if guards, err = n.encryptionOf(ctx, v, src, f, pass); err != nil {
			return nil, err
		}
	case len(pass) > 0:
		return nil, fmt.Errorf("%w: a passphrase was given, but a clone of %s is in clear as its source is", api.ErrInvalid, s.FromSnapshot)
	}
	// The record is made once v is complete (its key too).
	if err := n.meta.Commit(ctx, append(guards, meta.PutVolume(v, 0))...); err != nil {
		return nil, conflict("create volume "+s.Name, err)
	}
	if err := n.createReplicas(ctx, v, src, srcSnap); err != nil {
		if rerr := n.rollbackCreate(context.WithoutCancel(ctx), v); rerr != nil {
			n.log.Error("roll back failed create", "volume", v.Name, "err", rerr)
		}
		return nil, fmt.Errorf("create volume %s: %w", s.Name, err)
	}
	if f != nil {
		if err := f.fill(ctx, v); err != nil {
			if rerr := n.rollbackCreate(context.WithoutCancel(ctx), v); rerr != nil {
				n.log.Error("roll back failed create", "volume", v.Name, "err", rerr)
			}
			return nil, err
		}
	}
	// The record as it is now (a secret change may have rewrapped its
	// key meanwhile), made ready.
	v, err := n.meta.UpdateVolume(ctx, v.Name, func(cur *meta.Volume) bool {
		cur.State, cur.Creator = meta.StateReady, ""
		return true
	})
	if err != nil {
		return nil, conflict("create volume "+s.Name, err)
	}
	if f != nil {
		if err := n.meta.ClearRestoring(ctx, v.Name); err != nil {
			n.log.Warn("restore progress left in etcd", "volume", v.Name, "err", err)
		}
	}
	n.log.Info("volume created", "volume", v.Name, "size", v.Size, "repl", v.Repl, "fs", v.FS, "from", v.FromSnapshot)
	return n.describe(ctx, v)
}

// encryptionOf gives encrypted volume v its key: a new one (wrapped by
// pass, or by its secret), its source's for a clone, or its filler's (a
// restore), and returns the guards of the secret it uses.
func (n *Node) encryptionOf(ctx context.Context, v, src *meta.Volume, f *filler, pass []byte) ([]meta.Op, error) {
	switch {
	case f != nil && f.key != nil:
		v.Key = f.key
		return f.guards, nil
	case src == nil:
		return n.newVolumeKey(ctx, v, pass)
	case perCall(src):
		// Wrapped by the source's passphrase, which must open it if given.
		v.Key = src.Key
		if err := checkGiven(src, pass); err != nil {
			return nil, fmt.Errorf("clone %s of encrypted volume %s: %w", v.Name, src.Name, err)
		}
		return nil, nil
	}
	if len(pass) > 0 {
		return nil, fmt.Errorf("%w: a passphrase was given, but the key of %s, the clone's source, is wrapped by cluster secret %q", api.ErrInvalid, src.Name, src.SecretKey)
	}
	// The clone's key is its source's: no secret change may run between
	// reading it and the clone's record (openSecret refuses while one
	// does, and the guard fails if one starts).
	v.Key = src.Key
	secret, rev, err := n.openSecret(ctx, v.SecretKey)
	if err != nil {
		return nil, fmt.Errorf("clone %s of encrypted volume %s: %w", v.Name, src.Name, err)
	}
	clear(secret)
	return []meta.Op{meta.SecretUnchanged(v.SecretKey, rev)}, nil
}

// sameSpec answers a create of an existing name: success when the request
// asks for the same volume, a clear error naming the difference otherwise.
func (n *Node) sameSpec(ctx context.Context, old *meta.Volume, s spec.Volume, pass []byte) (*api.Volume, error) {
	if err := api.MatchSpec(old.Volume, s); err != nil {
		return nil, err
	}
	if err := checkGiven(old, pass); err != nil {
		return nil, fmt.Errorf("create volume %s: it exists: %w", s.Name, err)
	}
	if old.State != meta.StateReady {
		return nil, fmt.Errorf("volume %q is being %s; try again in a moment: %w", s.Name, strings.TrimSuffix(string(old.State), "ing")+"ed", api.ErrConflict)
	}
	return n.describe(ctx, old)
}

// cloneSource checks a clone's source snapshot and fills the clone's size
// and replica count from it.
func (n *Node) cloneSource(ctx context.Context, s *spec.Volume, vol, snap string) (*meta.Volume, error) {
	src, _, err := n.getVolume(ctx, vol)
	if err != nil {
		return nil, err
	}
	sn, _, err := n.meta.Snapshot(ctx, vol, snap)
	if errors.Is(err, meta.ErrNotFound) || err == nil && sn.State != meta.StateReady {
		return nil, fmt.Errorf("snapshot %q of volume %q does not exist (see 'ballast snapshot list %s'): %w", snap, vol, vol, api.ErrNotFound)
	} else if err != nil {
		return nil, err
	}
	size := cmp.Or(sn.Size, src.Size) // records older than resize have no size
	if s.Size == 0 {
		s.Size = size
	}
	if s.FS == "" {
		s.FS = src.FS
	}
	if s.Repl == 0 {
		s.Repl = src.Repl
	}
	if s.FS != src.FS {
		return nil, fmt.Errorf("%w: a clone of %s has its filesystem %s; leave --fs out", api.ErrInvalid, s.FromSnapshot, src.FS)
	}
	if s.Encrypted && !src.Encrypted {
		return nil, fmt.Errorf("%w: a clone of %s is in clear as its source is; leave encrypted out", api.ErrInvalid, s.FromSnapshot)
	}
	if s.SecretKey != "" && s.SecretKey != src.SecretKey {
		return nil, fmt.Errorf("%w: a clone of %s has its key, under secret %q; leave the secret key out", api.ErrInvalid, s.FromSnapshot, src.SecretKey)
	}
	s.Encrypted, s.SecretKey = src.Encrypted, src.SecretKey // a clone of an encrypted volume is encrypted, with the same key
	if s.MinInSync > s.Repl {
		return nil, fmt.Errorf("%w: minimum in-sync count %d is above the clone's replication factor %d", api.ErrInvalid, s.MinInSync, s.Repl)
	}
	if s.Size != size {
		return nil, fmt.Errorf("%w: a clone of %s has its size %s; leave --size out (and grow it after with 'ballast volume resize')", api.ErrInvalid, s.FromSnapshot, spec.FormatSize(size))
	}
	if s.Repl > len(src.Replicas) {
		return nil, fmt.Errorf("%w: a clone shares its source's disks, so its --repl can be at most %d, the repl of %s", api.ErrInvalid, len(src.Replicas), vol)
	}
	return src, nil
}

// candidates lists the pools of every live node as placement candidates:
// this node's with live figures, others' as they last reported them.
func (n *Node) candidates(ctx context.Context) ([]candidate, error) {
	nodes, alive, err := n.liveness(ctx)
	if err != nil {
		return nil, err
	}
	var out []candidate
	for _, nd := range nodes {
		if !alive[nd.ID] {
			continue
		}
		if nd.ID == n.cfg.ID {
			out = append(out, n.localCandidates()...)
			continue
		}
		if nd.Addr == "" {
			continue // serves no replicas
		}
		for _, p := range nd.Pools {
			out = append(out, candidate{Pool: p.ID, Node: nd.ID, Labels: nd.Labels, Capacity: p.Capacity, Allocated: p.Allocated})
		}
	}
	return out, nil
}

// localCandidates lists this node's pools with live figures.
func (n *Node) localCandidates() []candidate {
	var out []candidate
	for _, id := range n.order {
		alloc, capacity, err := n.pools[id].store.Usage()
		if err != nil {
			n.log.Warn("pool dir unusable", "pool", id, "err", err)
			continue
		}
		out = append(out, candidate{Pool: id, Node: n.cfg.ID, Labels: n.cfg.Labels, Capacity: capacity, Allocated: alloc})
	}
	return out
}

// createReplicas makes v's replicas where they were placed, empty or
// cloned from src's snapshot.
func (n *Node) createReplicas(ctx context.Context, v *meta.Volume, src *meta.Volume, snap string) error {
	for i, r := range v.Replicas {
		srcID := ""
		if src != nil {
			srcID = src.Replicas[i].ID
		}
		if err := n.makeReplica(ctx, r, v.Size, srcID, snap); err != nil {
			return err
		}
	}
	return nil
}

// localPool returns the pool of a replica placed on this node.
func (n *Node) localPool(r meta.Replica) (*pool, error) {
	if r.Node != n.cfg.ID {
		return nil, fmt.Errorf("replica %s lives on node %s; remote replicas come with the cluster", r.ID, r.Node)
	}
	p, ok := n.pools[r.Pool]
	if !ok {
		return nil, fmt.Errorf("replica %s is on pool %s, which node %s does not have (was a --pool-dir removed?)", r.ID, r.Pool, n.cfg.ID)
	}
	return p, nil
}

// rollbackCreate removes what a failed create made: its local replicas and
// its record.
func (n *Node) rollbackCreate(ctx context.Context, v *meta.Volume) error {
	if err := n.deleteReplicas(ctx, v); err != nil {
		return err
	}
	if err := n.meta.ClearRestoring(ctx, v.Name); err != nil {
		return err
	}
	_, rev, err := n.meta.Volume(ctx, v.Name)
	if errors.Is(err, meta.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	return n.meta.Commit(ctx, meta.DeleteVolume(v.Name, rev))
}

// deleteReplicas deletes v's replicas wherever they are.
func (n *Node) deleteReplicas(ctx context.Context, v *meta.Volume) error {
	var errs []error
	for _, r := range v.Replicas {
		errs = append(errs, n.removeReplica(ctx, r))
	}
	return errors.Join(errs...)
}

// DeleteVolume deletes a detached volume with its snapshots. It refuses a
// volume that is attached or that clones depend on.
func (n *Node) DeleteVolume(ctx context.Context, name string) error {
	if err := spec.ValidateName("volume name", name); err != nil {
		return err
	}
	defer n.locks.Lock(name)()
	v, rev, err := n.getVolume(ctx, name)
	if err != nil {
		return err
	}
	att, attRev, err := n.meta.Attachment(ctx, name)
	if err == nil {
		return fmt.Errorf("volume %q is attached on node %s %s; detach it first: %w", name, att.Node, howAttached(att), api.ErrInUse)
	} else if !errors.Is(err, meta.ErrNotFound) {
		return err
	}
	children, err := n.children(ctx, name)
	if err != nil {
		return err
	}
	if len(children) > 0 {
		return fmt.Errorf("volume %q has clones that depend on its snapshots (%s); delete them first: %w", name, strings.Join(children, ", "), api.ErrInUse)
	}
	if v.State != meta.StateDeleting {
		v.State = meta.StateDeleting
		// Guarded by the attachment's absence, so an attach racing from
		// another node either wins before or sees "deleting".
		if err := n.meta.Commit(ctx, meta.PutVolume(v, rev), meta.DeleteAttachment(name, attRev)); err != nil {
			return conflict("delete volume "+name, err)
		}
	}
	return n.finishDelete(ctx, v)
}

// finishDelete removes a volume in state "deleting": its replicas, then its
// snapshot records and its own record.
func (n *Node) finishDelete(ctx context.Context, v *meta.Volume) error {
	if err := n.deleteReplicas(ctx, v); err != nil {
		return fmt.Errorf("delete volume %s: %w", v.Name, err)
	}
	_, rev, err := n.meta.Volume(ctx, v.Name)
	if err != nil {
		return err
	}
	revs, err := n.meta.SnapshotRevs(ctx, v.Name)
	if err != nil {
		return err
	}
	ops := []meta.Op{meta.DeleteVolume(v.Name, rev)}
	for snap, r := range revs {
		ops = append(ops, meta.DeleteSnapshot(v.Name, snap, r))
	}
	if err := n.meta.Commit(ctx, ops...); err != nil {
		return conflict("delete volume "+v.Name, err)
	}
	n.log.Info("volume deleted", "volume", v.Name)
	return nil
}

// children lists the volumes cloned from snapshots of vol.
func (n *Node) children(ctx context.Context, vol string) ([]string, error) {
	vols, err := n.meta.Volumes(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range vols {
		if src, _, ok := strings.Cut(v.FromSnapshot, "@"); ok && src == vol {
			out = append(out, v.Name)
		}
	}
	return out, nil
}

// InspectVolume describes one volume.
func (n *Node) InspectVolume(ctx context.Context, name string) (*api.Volume, error) {
	if err := spec.ValidateName("volume name", name); err != nil {
		return nil, err
	}
	v, _, err := n.getVolume(ctx, name)
	if err != nil {
		return nil, err
	}
	return n.describe(ctx, v)
}

// ListVolumes describes every volume of the cluster.
func (n *Node) ListVolumes(ctx context.Context) ([]api.Volume, error) {
	vols, err := n.meta.Volumes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.Volume, 0, len(vols))
	for i := range vols {
		d, err := n.describe(ctx, &vols[i])
		if err != nil {
			return nil, err
		}
		out = append(out, *d)
	}
	return out, nil
}

// describe turns a record into what users see, with live figures from this
// node where it has them.
func (n *Node) describe(ctx context.Context, v *meta.Volume) (*api.Volume, error) {
	out := &api.Volume{Volume: v.Volume, ID: v.ID, State: string(v.State), Created: v.Created,
		Epoch: v.Epoch, Repairs: v.Repairs}
	if v.State == meta.StateCreating {
		if r, err := n.meta.Restoring(ctx, v.Name); err == nil && r != nil {
			out.Restore = &api.RestoreProgress{Backup: r.Backup, Done: r.Done, Total: r.Total}
		}
	}
	out.Locality = spec.NormalLocality(out.Locality) // records made before locality have none
	n.mu.Lock()
	att := n.attached[v.Name]
	n.mu.Unlock()
	if att != nil {
		out.Repairs += att.engine.Repairs()
		rb := att.engine.Rebuilding()
		if rb == nil {
			rb = att.lastRebuild()
		}
		if rb != nil {
			p := rb.Progress()
			out.Rebuild = &api.Rebuild{Replica: p.Replica, Kind: p.Kind, State: api.RebuildRunning, Done: p.Done, Total: p.Total, Elapsed: p.Elapsed.Round(time.Millisecond).String()}
			switch {
			case p.Over && p.Err != nil:
				out.Rebuild.State, out.Rebuild.Error = api.RebuildFailed, p.Err.Error()
			case p.Over:
				out.Rebuild.State = api.RebuildDone
			}
		}
	}
	for _, r := range v.Replicas {
		ar := api.Replica{ID: r.ID, Node: r.Node, Pool: r.Pool, InSync: slices.Contains(v.InSync, r.ID)}
		ar.Allocated = n.allocated(att, r)
		out.Allocated = max(out.Allocated, ar.Allocated)
		out.Replicas = append(out.Replicas, ar)
	}
	if a, _, err := n.meta.Attachment(ctx, v.Name); err == nil {
		if a.Node != n.cfg.ID || att != nil && att.epoch != a.Epoch {
			att = nil // another node's, or a newer one than this node's
		}
		out.Attachment = att.toAPI(a)
		for i := range out.Replicas {
			out.Replicas[i].Local = out.Replicas[i].Node == a.Node
		}
	} else if !errors.Is(err, meta.ErrNotFound) {
		return nil, err
	}
	revs, err := n.meta.SnapshotRevs(ctx, v.Name)
	if err != nil {
		return nil, err
	}
	out.Snapshots = len(revs)
	if out.Children, err = n.children(ctx, v.Name); err != nil {
		return nil, err
	}
	return out, nil
}

// allocated is the bytes a local replica holds, -1 when unknown here.
func (n *Node) allocated(att *attachment, r meta.Replica) int64 {
	if att != nil {
		if rep, ok := att.member(r.ID).(*localMember); ok {
			return rep.Replica().Allocated()
		}
	}
	p, err := n.localPool(r)
	if err != nil {
		return -1
	}
	a, err := p.store.Allocated(r.ID)
	if err != nil {
		return -1
	}
	return a
}
