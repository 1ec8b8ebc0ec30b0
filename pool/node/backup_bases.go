package node

import (
	"context"
	"errors"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/meta"
)

// A backup taken without --snapshot takes a snapshot of its own, which is
// the base of the next backup of the volume to the target: the next one
// reads only the chunks that changed since. Only the newest finished
// backup's snapshot is such a base, so the others go, unless a running
// backup still reads one as its parent's.

// staleBases returns the finished backups of vol to target whose own
// snapshot no backup needs any more: all but the newest finished one's,
// and none a running backup names as its parent.
func staleBases(recs []meta.Backup, vol, target string) []meta.Backup {
	var newest *meta.Backup
	parents := map[string]bool{}
	for i, b := range recs {
		if b.Volume != vol || b.Target != target {
			continue
		}
		switch b.State {
		case meta.BackupRunning:
			parents[b.Parent] = true
		case meta.BackupDone:
			if newest == nil || b.Created.After(newest.Created) {
				newest = &recs[i]
			}
		}
	}
	if newest == nil {
		return nil
	}
	var out []meta.Backup
	for _, b := range recs {
		if b.Volume == vol && b.Target == target && b.State == meta.BackupDone && b.OwnSnapshot && b.ID != newest.ID && !parents[b.ID] {
			out = append(out, b)
		}
	}
	return out
}

// releaseBases deletes the snapshots staleBases names for vol and target,
// and records that their backups no longer own one. Backups that ran at
// once, with the same parent, would otherwise leave the older one's
// snapshot behind for good.
func (n *Node) releaseBases(vol, target string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	recs, err := n.meta.Backups(ctx)
	if err != nil {
		n.log.Warn("backup snapshots no longer needed not released", "volume", vol, "err", err)
		return
	}
	for _, b := range staleBases(recs, vol, target) {
		if err := n.dropOwnSnapshot(&b); err != nil {
			continue // logged; tried again after the next backup
		}
		if err := n.updateBackup(ctx, b.ID, func(r *meta.Backup) { r.OwnSnapshot = false }); err != nil && !errors.Is(err, meta.ErrNotFound) {
			n.log.Warn("backup record still names a snapshot it released", "backup", b.ID, "err", err)
		}
	}
}

// dropOwnSnapshot deletes the snapshot backup b took for itself; one
// already gone is no error.
func (n *Node) dropOwnSnapshot(b *meta.Backup) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := n.DeleteSnapshot(ctx, b.Volume, b.Snapshot)
	if err != nil && !errors.Is(err, api.ErrNotFound) {
		n.log.Warn("delete the snapshot of a backup", "backup", b.ID, "volume", b.Volume, "snapshot", b.Snapshot, "err", err)
		return err
	}
	return nil
}
