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

// retireSuperseded retires each of atts that another node took over. It
// reads the cluster's attachment records once (one etcd read however many
// volumes are attached here); when they cannot be read (etcd unreachable:
// a partition), only attachments whose own I/O was refused as fenced are
// retired, and the error is returned.
func (n *Node) retireSuperseded(ctx context.Context, atts []*attachment) error {
	if len(atts) == 0 {
		return nil
	}
	recs, listErr := n.meta.Attachments(ctx)
	byVol := make(map[string]*meta.Attachment, len(recs))
	for i := range recs {
		byVol[recs[i].Volume] = &recs[i]
	}
	var errs []error
	for _, a := range atts {
		fenced := a.engine.Fenced()
		if listErr != nil && !fenced {
			continue
		}
		why := superseded(n.cfg.ID, a.epoch, byVol[a.vol], fenced)
		if why == "" {
			continue
		}
		unlock := n.locks.Lock(a.vol)
		err := n.retire(ctx, a, why)
		unlock()
		if err != nil {
			errs = append(errs, err)
		}
	}
	if listErr != nil {
		errs = append(errs, fmt.Errorf("read the attachment records: %w", listErr))
	}
	return errors.Join(errs...)
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
	err := n.front.Abandon(ctx, a.name, a.mountPath)
	n.forget(a)
	a.close() // its replicas refuse it anyway
	if err != nil {
		return fmt.Errorf("volume %s was superseded (%s); removing its stale mount: %w", a.vol, why, err)
	}
	n.log.Warn("volume superseded here: its stale mount and device were removed", "volume", a.vol, "epoch", a.epoch, "why", why, "mount", a.mountPath)
	return nil
}
