package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/ballast-io/ballast/pool/meta"
)

// superseded says why this node's attachment of a volume at epoch is no
// longer its to serve, or "" while it is: another node took the volume
// over (its record names that node or a newer epoch), the record is gone,
// or the engine's I/O was refused by a replica fenced at a newer epoch.
// rec is the volume's attachment record, nil when there is none. It only
// decides.
func superseded(self string, epoch uint64, rec *meta.Attachment, fencedIO bool) string {
	switch {
	case fencedIO:
		return "its replicas refused I/O as fenced by a newer owner"
	case rec == nil:
		return "its attachment record is gone"
	case rec.Node != self:
		return fmt.Sprintf("node %s took it over at epoch %d", rec.Node, rec.Epoch)
	case rec.Epoch != epoch:
		return fmt.Sprintf("it was attached again at epoch %d", rec.Epoch)
	}
	return ""
}

// checkSuperseded retires a if another node took its volume over; a
// volume whose record cannot be read now (etcd unreachable: a partition)
// is left until it can, unless its own I/O already says it was fenced.
func (n *Node) checkSuperseded(ctx context.Context, a *attachment) error {
	fenced := a.engine.Fenced()
	var rec *meta.Attachment
	if !fenced {
		r, _, err := n.meta.Attachment(ctx, a.vol)
		switch {
		case errors.Is(err, meta.ErrNotFound):
		case err != nil:
			return err
		default:
			rec = r
		}
	}
	why := superseded(n.cfg.ID, a.epoch, rec, fenced)
	if why == "" {
		return nil
	}
	unlock := n.locks.lock(a.vol)
	defer unlock()
	return n.retire(ctx, a, why)
}

// retire lets go of a, an attachment another node superseded: its mount
// is removed (lazily: containers may still hold it, on a filesystem whose
// I/O fails), its device is abandoned and its replicas closed, so that
// nothing stale stays on this node and the orchestrator's next calls here
// (an unmount, an unstage) find nothing left to undo. The attachment
// record, which is the new owner's, is not touched. The caller holds the
// volume's lock.
func (n *Node) retire(ctx context.Context, a *attachment, why string) error {
	n.mu.Lock()
	current := n.attached[a.vol] == a
	n.mu.Unlock()
	if !current {
		return nil // detached or replaced meanwhile
	}
	a.stop()
	err := n.front.Abandon(ctx, a.vol, a.mountPath)
	n.mu.Lock()
	delete(n.attached, a.vol)
	n.mu.Unlock()
	if n.cfg.IO != nil {
		n.cfg.IO.Forget(a.vol)
	}
	a.close() // its replicas refuse it anyway
	if err != nil {
		return fmt.Errorf("volume %s was superseded (%s); removing its stale mount: %w", a.vol, why, err)
	}
	n.log.Warn("volume superseded here: its stale mount and device were removed", "volume", a.vol, "epoch", a.epoch, "why", why, "mount", a.mountPath)
	return nil
}
