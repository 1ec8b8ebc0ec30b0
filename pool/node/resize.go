package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/hostfs"
	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/peer"
	"github.com/ballast-io/ballast/pool/spec"
)

// ResizeVolume grows a volume to size bytes (rounded up to 4 KiB). The new
// size is recorded first; then, where the volume is attached here, every
// in-sync replica grows (in O(1): a new, larger head layer), the kernel's
// device takes the new size and the mounted filesystem grows online. A
// detached volume's replicas grow when it is next attached, and its
// filesystem with them. A volume attached on another node is resized by
// that node, asked over the replica protocol. Volumes never shrink; asking
// for the size a volume has grows whatever has not grown yet (an
// interrupted resize) and changes nothing else.
func (n *Node) ResizeVolume(ctx context.Context, name string, size int64) (*api.Volume, error) {
	return n.resize(ctx, name, size, true)
}

func (n *Node) resize(ctx context.Context, name string, size int64, forward bool) (*api.Volume, error) {
	if err := spec.ValidateName("volume name", name); err != nil {
		return nil, err
	}
	if size <= 0 || size > spec.MaxSize {
		return nil, fmt.Errorf("%w: size %d bytes: a volume has from %s to %s", api.ErrInvalid, size, spec.FormatSize(spec.MinSize), spec.FormatSize(spec.MaxSize))
	}
	size = (size + block.Size - 1) &^ (block.Size - 1)
	defer n.locks.Lock(name)()
	v, rev, err := n.getVolume(ctx, name)
	if err != nil {
		return nil, err
	}
	if v.State != meta.StateReady {
		return nil, fmt.Errorf("volume %q is %s, not ready: %w", name, v.State, api.ErrConflict)
	}
	if size < v.Size {
		return nil, fmt.Errorf("%w: volume %q has %s; volumes only grow (asked for %s)", api.ErrInvalid, name, spec.FormatSize(v.Size), spec.FormatSize(size))
	}
	att, attRev, err := n.meta.Attachment(ctx, name)
	if errors.Is(err, meta.ErrNotFound) {
		att, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	if att != nil && att.Node != n.cfg.ID {
		if !forward {
			return nil, fmt.Errorf("volume %q is attached on node %s now, not on node %s: %w", name, att.Node, n.cfg.ID, api.ErrConflict)
		}
		return n.resizeThere(ctx, v, att.Node, size)
	}
	var a *attachment
	if att != nil {
		n.mu.Lock()
		a = n.attached[name]
		n.mu.Unlock()
		if a == nil || a.epoch != att.Epoch {
			return nil, fmt.Errorf("volume %q is recorded as attached here at epoch %d but is not open here (is the daemon starting?); try again: %w", name, att.Epoch, api.ErrConflict)
		}
		if rb := a.engine.Rebuilding(); rb != nil {
			return nil, fmt.Errorf("volume %q: replica %s is being rebuilt; resize it when that is done: %w", name, rb.Progress().Replica, api.ErrConflict)
		}
	}
	if size > v.Size {
		if err := n.checkRoom(ctx, v, size); err != nil {
			return nil, err
		}
		old := v.Size
		v.Size = size
		// Guarded by the attachment: an attach racing from another node
		// either opens the replicas after this (and grows them to the new
		// size) or makes this fail.
		if err := n.meta.Commit(ctx, meta.PutVolume(v, rev), meta.AttachmentUnchanged(name, attRev)); err != nil {
			return nil, conflict("resize volume "+name, err)
		}
		n.log.Info("volume size recorded", "volume", name, "from", old, "to", size, "attached_here", a != nil)
	}
	if a != nil {
		if err := a.engine.Grow(size); err != nil {
			return nil, fmt.Errorf("resize volume %s: recorded at %s, but its replicas did not all grow (run the resize again, or detach and attach: replicas grow to the recorded size when opened): %w",
				name, spec.FormatSize(size), err)
		}
		if err := n.front.Grow(ctx, a.name); errors.Is(err, hostfs.ErrGrowAtAttach) {
			return nil, fmt.Errorf("resize volume %s: the volume grew to %s, but: %v: %w", name, spec.FormatSize(size), err, api.ErrGrowAtAttach)
		} else if err != nil {
			return nil, fmt.Errorf("resize volume %s: the volume grew to %s, but: %w", name, spec.FormatSize(size), err)
		}
		n.log.Info("volume grown", "volume", name, "size", size, "device", a.device, "mount", a.mountPath)
	}
	return n.describe(ctx, v)
}

// resizeThere asks node, which holds volume v attached, to grow it to size
// bytes, after checking here what can be checked anywhere.
func (n *Node) resizeThere(ctx context.Context, v *meta.Volume, node string, size int64) (*api.Volume, error) {
	alive, err := n.meta.Alive(ctx)
	if err != nil {
		return nil, err
	}
	if !alive[node] {
		return nil, fmt.Errorf("volume %q is attached on node %s, which is down; attach it on a live node (that takes it over) and resize it there: %w", v.Name, node, api.ErrInUse)
	}
	if err := n.checkRoom(ctx, v, size); err != nil {
		return nil, err
	}
	err = n.withPeer(ctx, node, peer.ResizeTimeout, func(ctx context.Context, c *peer.Client) error { return c.ResizeVolume(ctx, v.Name, size) })
	if err != nil {
		return nil, fmt.Errorf("resize volume %s on node %s, where it is attached: %w", v.Name, node, err)
	}
	n.log.Info("volume grown by the node it is attached on", "volume", v.Name, "node", node, "size", size)
	return n.InspectVolume(ctx, v.Name)
}

// checkRoom refuses a size that a pool holding one of v's replicas can
// never hold (thin provisioning: it need not be free now).
func (n *Node) checkRoom(ctx context.Context, v *meta.Volume, size int64) error {
	cands, err := n.candidates(ctx)
	if err != nil {
		return err
	}
	for _, r := range v.Replicas {
		for _, c := range cands {
			if c.Pool == r.Pool && c.Node == r.Node && c.Capacity < size {
				return fmt.Errorf("volume %q cannot grow to %s: replica %s is on pool %s of node %s, which holds %s in all: %w",
					v.Name, spec.FormatSize(size), r.ID, r.Pool, r.Node, spec.FormatSize(c.Capacity), api.ErrNoCapacity)
			}
		}
	}
	return nil
}
