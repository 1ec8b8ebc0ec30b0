package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/backup"
	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/crypt"
	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/peer"
	"github.com/ballast-io/ballast/pool/spec"
)

// backupView prefixes the temporary replica a backup reads its snapshot
// from: a clone of the local replica at the snapshot, deleted when the
// backup ends (and, after a crash, when the node starts).
const backupView = "backup-view-"

// backupVolume is what a backup keeps of its volume for a restore.
type backupVolume struct {
	Spec spec.Volume    `json:"spec"`
	Key  *crypt.Wrapped `json:"key,omitempty"`
}

// CreateBackup starts a backup of a volume's snapshot to a target on a node
// that holds an in-sync replica of the volume: this one, or else one it
// asks through the peer service. The backup reads that replica's snapshot
// layers, never the network. Without a snapshot
// named, it takes one (the filesystem frozen for it, as for any snapshot)
// and keeps it as the base of the volume's next backup, which then reads
// only the chunks the layers say changed since.
func (n *Node) CreateBackup(ctx context.Context, s api.BackupSpec) (*api.Backup, error) {
	return n.createBackup(ctx, s, true)
}

// createBackup starts backup s here or, with forward and no local
// in-sync replica, on a node that has one.
func (n *Node) createBackup(ctx context.Context, s api.BackupSpec, forward bool) (*api.Backup, error) {
	if err := spec.ValidateName("volume name", s.Volume); err != nil {
		return nil, err
	}
	if err := spec.ValidateName("backup target name", s.Target); err != nil {
		return nil, err
	}
	if s.RateLimit < 0 {
		return nil, fmt.Errorf("%w: rate limit %d bytes/s is negative", api.ErrInvalid, s.RateLimit)
	}
	v, _, err := n.getVolume(ctx, s.Volume)
	if err != nil {
		return nil, err
	}
	if v.State != meta.StateReady {
		return nil, fmt.Errorf("volume %q is %s: %w", s.Volume, v.State, api.ErrConflict)
	}
	t, trec, trev, err := n.openTarget(ctx, s.Target)
	if err != nil {
		return nil, err
	}
	alive, err := n.aliveNow(ctx)
	if err != nil {
		return nil, err
	}
	if trec.Collecting != "" && alive[trec.Collecting] {
		return nil, fmt.Errorf("backup target %q is collecting unused chunks after a delete on node %s; try again in a moment: %w", s.Target, trec.Collecting, api.ErrConflict)
	}
	if _, _, err := n.localInSync(v); err != nil {
		if !forward {
			return nil, err
		}
		return n.forwardBackup(ctx, v, s, alive, err)
	}
	id, err := backupID(s.Volume)
	if err != nil {
		return nil, err
	}
	rec := &meta.Backup{ID: id, Volume: s.Volume, VolumeID: v.ID, Target: s.Target, Snapshot: s.Snapshot, Node: n.cfg.ID,
		State: meta.BackupRunning, Created: time.Now().UTC(), Scheduled: s.Scheduled}
	if s.Snapshot == "" {
		rec.Snapshot, rec.OwnSnapshot = "backup-"+id[len(s.Volume)+1:], true
		sn, err := n.CreateSnapshot(ctx, s.Volume, rec.Snapshot)
		if err != nil {
			return nil, fmt.Errorf("backup of %s: %w", s.Volume, err)
		}
		rec.SnapshotCreated = sn.Created
	} else {
		sn, _, err := n.meta.Snapshot(ctx, s.Volume, s.Snapshot)
		if errors.Is(err, meta.ErrNotFound) || err == nil && sn.State != meta.StateReady {
			return nil, fmt.Errorf("snapshot %q of volume %q does not exist: %w", s.Snapshot, s.Volume, api.ErrNotFound)
		}
		if err != nil {
			return nil, err
		}
		rec.SnapshotCreated = sn.Created
	}
	fail := func(err error) (*api.Backup, error) {
		if rec.OwnSnapshot {
			n.dropOwnSnapshot(rec)
		}
		return nil, err
	}
	// The snapshot is taken: the replica read is one that was in sync
	// when it was.
	if v, _, err = n.getVolume(ctx, s.Volume); err != nil {
		return fail(err)
	}
	p, rid, err := n.localInSync(v)
	if err != nil {
		return fail(err)
	}
	parent, err := n.lastBackup(ctx, s.Volume, s.Target)
	if err != nil {
		return fail(err)
	}
	if parent != nil {
		rec.Parent = parent.ID
	}
	if err := n.meta.Commit(ctx, meta.PutBackup(rec, 0), meta.BackupTargetUnchanged(s.Target, trev)); err != nil {
		return fail(conflict("backup of "+s.Volume+" to "+s.Target, err))
	}
	n.jobs.Add(1)
	go func() {
		defer n.jobs.Done()
		n.runBackup(rec, t, p, rid, parent, v, s.RateLimit)
	}()
	return backupToAPI(rec, alive), nil
}

// forwardBackup starts backup s on a live node holding an in-sync replica
// of v, trying each in turn; local is why this node cannot.
func (n *Node) forwardBackup(ctx context.Context, v *meta.Volume, s api.BackupSpec, alive map[string]bool, local error) (*api.Backup, error) {
	errs := []error{local}
	for _, r := range v.Replicas {
		if !slices.Contains(v.InSync, r.ID) || !alive[r.Node] || r.Node == n.cfg.ID {
			continue
		}
		var b *api.Backup
		err := n.withPeer(ctx, r.Node, 2*time.Minute, func(ctx context.Context, c *peer.Client) error {
			var err error
			b, err = c.CreateBackup(ctx, s)
			return err
		})
		if err == nil {
			n.log.Info("backup started on the node holding a replica", "backup", b.ID, "volume", s.Volume, "node", r.Node)
			return b, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("backup of %s: no live node with an in-sync replica could start it: %w", s.Volume, errors.Join(errs...))
}

// backupID names a backup after its volume and time, unique with 4
// random bytes.
func backupID(vol string) (string, error) {
	b := make([]byte, 4)
	rand.Read(b)
	id := vol + "-" + time.Now().UTC().Format("20060102t150405") + "-" + hex.EncodeToString(b)
	if !backup.ValidID(id) {
		return "", fmt.Errorf("%w: volume name %q makes backup ID %q, which is not valid", api.ErrInvalid, vol, id)
	}
	return id, nil
}

// localInSync finds an in-sync replica of v on this node.
func (n *Node) localInSync(v *meta.Volume) (*pool, string, error) {
	var nodes []string
	for _, r := range v.Replicas {
		if !slices.Contains(v.InSync, r.ID) {
			continue
		}
		if r.Node == n.cfg.ID {
			if p := n.pools[r.Pool]; p != nil {
				return p, r.ID, nil
			}
		}
		nodes = append(nodes, r.Node)
	}
	return nil, "", fmt.Errorf("volume %s has no in-sync replica on node %s, and a backup reads a local one; run it on node %s: %w",
		v.Name, n.cfg.ID, strings.Join(nodes, " or "), api.ErrInvalid)
}

// lastBackup is the newest finished backup of vol to target, or nil.
func (n *Node) lastBackup(ctx context.Context, vol, target string) (*meta.Backup, error) {
	recs, err := n.meta.Backups(ctx)
	if err != nil {
		return nil, err
	}
	var last *meta.Backup
	for i, b := range recs {
		if b.Volume == vol && b.Target == target && b.State == meta.BackupDone && (last == nil || b.Created.After(last.Created)) {
			last = &recs[i]
		}
	}
	return last, nil
}

// runBackup runs backup rec to its end and records how it ended. A
// backup that succeeds releases the snapshots older backups took for
// themselves (its parent's, say): the new one is the base of the next
// backup.
func (n *Node) runBackup(rec *meta.Backup, t backup.Target, p *pool, rid string, parent *meta.Backup, v *meta.Volume, rate int64) {
	log := n.log.With("backup", rec.ID, "volume", rec.Volume, "target", rec.Target, "snapshot", rec.Snapshot)
	log.Info("backup started", "parent", rec.Parent, "replica", rid)
	start := time.Now()
	m, final, err := n.backupFrom(n.bg, rec, t, p, rid, parent, v, rate, log)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	uerr := n.updateBackup(ctx, rec.ID, func(b *meta.Backup) {
		b.Finished = time.Now().UTC()
		if err != nil {
			b.State, b.Error = meta.BackupFailed, err.Error()
			return
		}
		b.State, b.Uploaded, b.Done, b.Total, b.Size = meta.BackupDone, m.Uploaded, final.Done, final.Total, m.Size
	})
	if err != nil {
		log.Error("backup failed", "err", err, "took", time.Since(start))
		if rec.OwnSnapshot {
			n.dropOwnSnapshot(rec)
		}
		return
	}
	if uerr != nil {
		log.Error("backup done, but its record was not updated", "err", uerr)
		return
	}
	log.Info("backup done", "size", m.Size, "uploaded", m.Uploaded, "took", time.Since(start))
	n.releaseBases(rec.Volume, rec.Target)
}

// backupFrom backs rec's snapshot of the local replica rid up to t.
func (n *Node) backupFrom(ctx context.Context, rec *meta.Backup, t backup.Target, p *pool, rid string, parent *meta.Backup, v *meta.Volume, rate int64, log *slog.Logger) (_ *backup.Manifest, final backup.Progress, _ error) {
	viewID := backupView + rec.ID
	r, err := p.store.Clone(viewID, rid, rec.Snapshot)
	if err != nil {
		return nil, final, fmt.Errorf("open snapshot %s of replica %s: %w", rec.Snapshot, rid, err)
	}
	defer func() {
		r.Close()
		if err := p.store.Delete(viewID); err != nil {
			log.Warn("delete the backup's view of its snapshot", "replica", viewID, "err", err)
		}
	}()
	opt := backup.Options{ID: rec.ID, Volume: rec.Volume, Snapshot: rec.Snapshot, Created: rec.Created, RateLimit: rate}
	if parent != nil {
		opt.Parent, err = backup.Get(ctx, t, parent.ID)
		if err != nil {
			log.Warn("the parent backup's manifest cannot be read: reading the whole snapshot", "parent", parent.ID, "err", err)
			opt.Parent = nil
		} else if !n.sameSnapshot(ctx, parent, v) {
			log.Info("the parent backup's snapshot is gone or another now has its name: reading the whole snapshot (chunks the target holds are not sent again)", "parent", parent.ID)
		} else if set, err := p.store.Changed(rid, parent.Snapshot, rec.Snapshot, backup.ChunkSize); err != nil {
			log.Info("the parent backup's snapshot is gone: reading the whole snapshot (chunks the target holds are not sent again)", "parent", parent.ID, "err", err)
		} else {
			opt.Changed = func(i int) bool { return set.Has(int64(i)) }
		}
	}
	if opt.VolumeSpec, err = json.Marshal(backupVolume{Spec: v.Volume, Key: v.Key}); err != nil {
		return nil, final, err
	}
	var last time.Time
	opt.Progress = func(pr backup.Progress) {
		final = pr
		if time.Since(last) < time.Second {
			return
		}
		last = time.Now()
		if err := n.updateBackup(ctx, rec.ID, func(b *meta.Backup) { b.Done, b.Total, b.Uploaded = pr.Done, pr.Total, pr.Uploaded }); err != nil {
			log.Warn("record the backup's progress", "err", err)
		}
	}
	if err := n.updateBackup(ctx, rec.ID, func(b *meta.Backup) { b.Size = r.Size() }); err != nil {
		return nil, final, err
	}
	m, err := backup.Create(ctx, t, r, r.Size(), opt)
	return m, final, err
}

// sameSnapshot reports whether backup b's snapshot is still there, the
// same one (not a later snapshot of the same name, or of a volume made
// again under the same name): only then do the layers since it say what
// changed since b.
func (n *Node) sameSnapshot(ctx context.Context, b *meta.Backup, v *meta.Volume) bool {
	if b.VolumeID != v.ID || b.SnapshotCreated.IsZero() {
		return false
	}
	sn, _, err := n.meta.Snapshot(ctx, b.Volume, b.Snapshot)
	return err == nil && sn.State == meta.StateReady && sn.Created.Equal(b.SnapshotCreated)
}

// updateBackup changes backup id's record with fn.
func (n *Node) updateBackup(ctx context.Context, id string, fn func(*meta.Backup)) error {
	_, err := n.meta.UpdateBackup(ctx, id, func(b *meta.Backup) bool { fn(b); return true })
	return err
}

// runningOn reports whether backup b runs on a live node.
func runningOn(b *meta.Backup, alive map[string]bool) bool {
	return b.State == meta.BackupRunning && alive[b.Node]
}

func backupToAPI(b *meta.Backup, alive map[string]bool) *api.Backup {
	out := &api.Backup{ID: b.ID, Volume: b.Volume, Target: b.Target, Snapshot: b.Snapshot, Parent: b.Parent, Node: b.Node,
		State: string(b.State), Error: b.Error, Created: b.Created, Finished: b.Finished, Size: b.Size, Done: b.Done, Total: b.Total, Uploaded: b.Uploaded, Scheduled: b.Scheduled}
	if b.State == meta.BackupRunning && !alive[b.Node] {
		out.State, out.Error = api.BackupFailed, "node "+b.Node+" went down during the backup; take it again (what it uploaded is not sent again)"
	}
	return out
}

// ListBackups lists the backups of vol, or all, oldest first.
func (n *Node) ListBackups(ctx context.Context, vol string) ([]api.Backup, error) {
	if vol != "" {
		if err := spec.ValidateName("volume name", vol); err != nil {
			return nil, err
		}
	}
	recs, err := n.meta.Backups(ctx)
	if err != nil {
		return nil, err
	}
	alive, err := n.aliveNow(ctx)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(recs, func(a, b meta.Backup) int { return a.Created.Compare(b.Created) })
	out := []api.Backup{}
	for i := range recs {
		if vol == "" || recs[i].Volume == vol {
			out = append(out, *backupToAPI(&recs[i], alive))
		}
	}
	return out, nil
}

// DeleteBackup deletes a backup from its target, with the chunks no other
// backup there uses, and its record. While it collects chunks, the target
// is marked so that no backup to it starts (a backup counts on the chunks
// it finds there); it refuses while one runs.
func (n *Node) DeleteBackup(ctx context.Context, id string) error {
	if !backup.ValidID(id) {
		return fmt.Errorf("%w: %q is not a backup ID", api.ErrInvalid, id)
	}
	rec, _, err := n.meta.Backup(ctx, id)
	if errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("backup %q does not exist (ballast backup list): %w", id, api.ErrNotFound)
	} else if err != nil {
		return err
	}
	t, trec, trev, err := n.openTarget(ctx, rec.Target)
	if err != nil {
		return err
	}
	alive, err := n.aliveNow(ctx)
	if err != nil {
		return err
	}
	if trec.Collecting != "" && alive[trec.Collecting] {
		return fmt.Errorf("backup target %q is collecting after another delete; try again in a moment: %w", rec.Target, api.ErrConflict)
	}
	trec.Collecting = n.cfg.ID
	if err := n.meta.Commit(ctx, meta.PutBackupTarget(trec, trev)); err != nil {
		return conflict("delete backup "+id, err)
	}
	defer n.unmarkCollecting(context.WithoutCancel(ctx), rec.Target)
	recs, err := n.meta.Backups(ctx)
	if err != nil {
		return err
	}
	for _, b := range recs {
		if b.Target == rec.Target && runningOn(&b, alive) {
			return fmt.Errorf("backup %s to target %q is running on node %s; delete when it ends: %w", b.ID, b.Target, b.Node, api.ErrInUse)
		}
	}
	chunks, err := backup.Delete(ctx, t, id)
	if err != nil && !errors.Is(err, backup.ErrNotExist) {
		return fmt.Errorf("delete backup %s: %w", id, targetErr(err))
	}
	_, rev, err := n.meta.Backup(ctx, id)
	if err == nil {
		err = n.meta.Commit(ctx, meta.DeleteBackup(id, rev))
	}
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		return conflict("delete backup "+id, err)
	}
	if rec.OwnSnapshot {
		n.dropOwnSnapshot(rec)
	}
	n.log.Info("backup deleted", "backup", id, "target", rec.Target, "chunks_collected", chunks)
	return nil
}

// unmarkCollecting clears target's mark of this node's collection, also
// when the delete's caller gave up (a canceled context).
func (n *Node) unmarkCollecting(ctx context.Context, target string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := n.meta.UpdateBackupTarget(ctx, target, func(t *meta.BackupTarget) bool {
		if t.Collecting != n.cfg.ID {
			return false
		}
		t.Collecting = ""
		return true
	})
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		n.log.Error("backup target left marked as collecting", "target", target, "err", err)
	}
}

// RestoreBackup makes volume to from backup id: a new volume of the
// backup's size, filesystem and encryption (the same data key, so the
// ciphertext restores as it was), written through an engine over its new
// replicas before it turns ready. A failed restore leaves no volume.
func (n *Node) RestoreBackup(ctx context.Context, id, to string, opts api.RestoreOptions) (*api.Volume, error) {
	if opts.RateLimit < 0 {
		return nil, fmt.Errorf("%w: rate limit %d is negative", api.ErrInvalid, opts.RateLimit)
	}
	if !backup.ValidID(id) {
		return nil, fmt.Errorf("%w: %q is not a backup ID", api.ErrInvalid, id)
	}
	if err := spec.ValidateName("volume name", to); err != nil {
		return nil, err
	}
	t, m, err := n.findBackup(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("restore backup %s: %w", id, err)
	}
	var bv backupVolume
	if err := json.Unmarshal(m.VolumeSpec, &bv); err != nil {
		return nil, fmt.Errorf("restore backup %s: the volume in its manifest: %w: %w", id, api.ErrInvalid, err)
	}
	s := bv.Spec
	s.Name, s.Size, s.FromSnapshot = to, m.Size, ""
	f := &filler{}
	switch {
	case s.Encrypted && s.SecretKey == "":
		// Wrapped by a passphrase given per call: kept as it is, for the
		// same passphrase to open at attach.
		f.key = bv.Key
	case s.Encrypted:
		// The secret's value must open the key before anything is made;
		// the key is wrapped again under it (the backup may be older than
		// a change of the secret that did not rewrap it), guarded on it.
		pass, rev, err := n.openSecret(ctx, s.SecretKey)
		if err != nil {
			return nil, fmt.Errorf("restore backup %s: %w", id, err)
		}
		defer clear(pass)
		key, err := bv.Key.Unwrap(pass)
		if errors.Is(err, crypt.ErrWrongPassphrase) {
			return nil, fmt.Errorf("restore backup %s: the value of secret %q does not open its key (was the secret changed since? ballast secret change %s back to that value, restore, change it again): %w",
				id, s.SecretKey, s.SecretKey, api.ErrInvalid)
		} else if err != nil {
			return nil, fmt.Errorf("restore backup %s: %w", id, err)
		}
		f.key, err = crypt.Wrap(key, pass)
		clear(key)
		if err != nil {
			return nil, err
		}
		f.guards = []meta.Op{meta.SecretUnchanged(s.SecretKey, rev)}
	}
	log := n.log.With("backup", id, "volume", to)
	f.fill = func(ctx context.Context, v *meta.Volume) error {
		return n.fillVolume(ctx, v, func(dev block.Device) error {
			var logged, recorded time.Time
			return backup.Restore(ctx, t, m, dev, backup.RestoreOptions{RateLimit: opts.RateLimit, Progress: func(p backup.Progress) {
				if time.Since(logged) >= 5*time.Second || p.Done == p.Total {
					logged = time.Now()
					log.Info("restoring", "done", p.Done, "total", p.Total)
				}
				if time.Since(recorded) >= time.Second || p.Done == p.Total {
					recorded = time.Now()
					n.recordRestore(ctx, &meta.Restoring{Volume: to, Backup: id, Done: p.Done, Total: p.Total})
				}
			}})
		})
	}
	out, err := n.createVolume(ctx, s, nil, f)
	if err != nil {
		return nil, fmt.Errorf("restore backup %s: %w", id, targetErr(err))
	}
	log.Info("backup restored", "size", m.Size)
	return out, nil
}

// recordRestore records how far a restore is, for users to follow
// (api.Volume.Restore); best effort.
func (n *Node) recordRestore(ctx context.Context, r *meta.Restoring) {
	if err := n.meta.SetRestoring(ctx, r); err != nil && ctx.Err() == nil {
		n.log.Warn("restore progress not recorded", "volume", r.Volume, "err", err)
	}
}

// findBackup finds backup id: in the target its record names or, with no
// record (another cluster made it), in any target that holds it.
func (n *Node) findBackup(ctx context.Context, id string) (backup.Target, *backup.Manifest, error) {
	rec, _, err := n.meta.Backup(ctx, id)
	switch {
	case err == nil:
		if rec.State != meta.BackupDone {
			return nil, nil, fmt.Errorf("backup %s is %s, not done: %w", id, rec.State, api.ErrConflict)
		}
		t, _, _, err := n.openTarget(ctx, rec.Target)
		if err != nil {
			return nil, nil, err
		}
		m, err := backup.Get(ctx, t, id)
		if err != nil {
			return nil, nil, targetErr(err)
		}
		return t, m, nil
	case !errors.Is(err, meta.ErrNotFound):
		return nil, nil, err
	}
	targets, err := n.meta.BackupTargets(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, tr := range targets {
		t, _, _, err := n.openTarget(ctx, tr.Name)
		if err != nil {
			continue
		}
		if m, err := backup.Get(ctx, t, id); err == nil {
			return t, m, nil
		} else if !errors.Is(err, backup.ErrNotExist) {
			return nil, nil, fmt.Errorf("target %s: %w", tr.Name, targetErr(err))
		}
	}
	return nil, nil, fmt.Errorf("backup %q is in no target of this cluster (ballast backup list, ballast backup list --target NAME): %w", id, api.ErrNotFound)
}

// ListTargetBackups lists the backups in target name from their
// manifests, whichever cluster made them.
func (n *Node) ListTargetBackups(ctx context.Context, name string) ([]api.Backup, error) {
	t, _, _, err := n.openTarget(ctx, name)
	if err != nil {
		return nil, err
	}
	ms, err := backup.List(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("backup target %s: %w", name, targetErr(err))
	}
	out := []api.Backup{}
	for _, m := range ms {
		out = append(out, api.Backup{ID: m.ID, Volume: m.Volume, Target: name, Snapshot: m.Snapshot, Parent: m.Parent, State: api.BackupDone,
			Created: m.Created, Size: m.Size, Uploaded: m.Uploaded})
	}
	return out, nil
}

// fillVolume runs fn on an engine over new volume v's replicas, at a new
// epoch and with no attachment: nothing else may use a volume still being
// created.
func (n *Node) fillVolume(ctx context.Context, v *meta.Volume, fn func(block.Device) error) error {
	cur, err := n.meta.UpdateVolume(ctx, v.Name, func(cur *meta.Volume) bool { cur.Epoch++; return true })
	if err != nil {
		return conflict("fill volume "+v.Name, err)
	}
	*v = *cur
	alive, err := n.aliveNow(ctx)
	if err != nil {
		return err
	}
	a, err := n.openVolume(ctx, v, "", alive)
	if err != nil {
		return err
	}
	err = fn(a.engine)
	if err == nil {
		err = a.engine.Flush()
	}
	return errors.Join(err, a.close())
}

// recoverBackups cleans up after backups this node ran when it stopped:
// their records say they failed (their own snapshots go), the targets it
// was collecting are unmarked, and the snapshot views left in its pools
// are deleted.
func (n *Node) recoverBackups(ctx context.Context) error {
	recs, err := n.meta.Backups(ctx)
	if err != nil {
		return err
	}
	for i := range recs {
		b := &recs[i]
		if b.Node != n.cfg.ID || b.State != meta.BackupRunning {
			continue
		}
		n.log.Warn("a backup was running when the daemon stopped: marked failed", "backup", b.ID, "volume", b.Volume)
		if err := n.updateBackup(ctx, b.ID, func(b *meta.Backup) {
			b.State, b.Error, b.Finished = meta.BackupFailed, "the daemon running it stopped; take it again (what it uploaded is not sent again)", time.Now().UTC()
		}); err != nil {
			return err
		}
		if b.OwnSnapshot {
			go n.dropOwnSnapshot(b) // a replica's node may be down: not in the way of the start
		}
	}
	targets, err := n.meta.BackupTargets(ctx)
	if err != nil {
		return err
	}
	for _, t := range targets {
		if t.Collecting == n.cfg.ID {
			n.unmarkCollecting(ctx, t.Name)
		}
	}
	return n.removeBackupViews()
}

// removeBackupViews deletes the snapshot views that backups running when
// the node stopped left in its pools.
func (n *Node) removeBackupViews() error {
	var errs []error
	for _, id := range n.order {
		p := n.pools[id]
		ids, err := p.store.List()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range ids {
			if strings.HasPrefix(r, backupView) {
				n.log.Info("deleting the view of a backup interrupted by the daemon's stop", "replica", r)
				errs = append(errs, p.store.Delete(r))
			}
		}
	}
	return errors.Join(errs...)
}
