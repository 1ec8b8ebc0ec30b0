package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/crypt"
	"github.com/ballast-io/ballast/pool/engine"
	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/remote"
	"github.com/ballast-io/ballast/pool/spec"
)

// AttachVolume attaches a volume on this node: it claims the volume in etcd
// with a new epoch, opens its in-sync replicas, starts its engine, exposes
// it and mounts it (formatting it on first use). Attaching a volume that is
// already attached here returns the existing attachment.
func (n *Node) AttachVolume(ctx context.Context, name string, opts api.AttachOptions) (*api.Attachment, error) {
	if err := spec.ValidateName("volume name", name); err != nil {
		return nil, err
	}
	defer n.locks.Lock(name)()
	n.mu.Lock()
	have := n.attached[name]
	n.mu.Unlock()
	if have != nil {
		a, _, err := n.meta.Attachment(ctx, name)
		if err == nil && a.Node == n.cfg.ID && a.Epoch == have.epoch {
			if a.Block != opts.Block {
				return nil, fmt.Errorf("volume %q is attached on this node %s already; detach it first: %w", name, howAttached(a), api.ErrInUse)
			}
			v, _, err := n.getVolume(ctx, name)
			if err == nil {
				err = checkAttached(v, opts.Passphrase)
			}
			if err != nil {
				return nil, fmt.Errorf("attach volume %s: %w", name, err)
			}
			return have.toAPI(a), nil
		}
		if err == nil || errors.Is(err, meta.ErrNotFound) {
			// Superseded meanwhile (taken over, maybe back to here):
			// the stale attachment goes before a new one is made.
			if err != nil {
				a = nil
			}
			if why := superseded(n.cfg.ID, have.epoch, a, have.engine.Fenced()); why != "" {
				if err := n.retire(ctx, have, why); err != nil {
					return nil, fmt.Errorf("attach volume %s: %w", name, err)
				}
			}
		}
	}
	return n.attach(ctx, name, opts, nil)
}

// howAttached says how a volume is attached, for errors.
func howAttached(a *meta.Attachment) string {
	if a.Block {
		return "as a raw block device"
	}
	return "with its filesystem mounted at " + a.MountPath
}

// attach attaches volume name here; kept is its key as this node kept it
// across a restart (a volume given its passphrase per call), or nil.
func (n *Node) attach(ctx context.Context, name string, opts api.AttachOptions, kept []byte) (*api.Attachment, error) {
	v, rev, err := n.getVolume(ctx, name)
	if err != nil {
		return nil, err
	}
	if v.State != meta.StateReady {
		return nil, fmt.Errorf("volume %q is %s, not ready: %w", name, v.State, api.ErrConflict)
	}
	old, attRev, err := n.meta.Attachment(ctx, name)
	if errors.Is(err, meta.ErrNotFound) {
		old, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	alive, err := n.aliveNow(ctx)
	if err != nil {
		return nil, err
	}
	ownerAlive := old != nil && old.Node != n.cfg.ID && alive[old.Node]
	how, err := decideClaim(name, old, n.cfg.ID, ownerAlive, opts.Force)
	if err != nil {
		return nil, err
	}
	if how == claimDeadNode || how == claimForced {
		n.log.Warn("taking volume over", "volume", name, "from", old.Node, "why", how.String(), "old_epoch", old.Epoch)
	}
	// An encrypted volume's key is unwrapped before anything changes: a
	// wrong or missing passphrase leaves the volume as it was.
	if err := passphraseFits(v, opts.Passphrase); err != nil {
		return nil, fmt.Errorf("attach volume %s: %w", name, err)
	}
	var key []byte
	if v.Encrypted {
		if key, err = n.volumeKey(ctx, v, opts.Passphrase, kept); err != nil {
			return nil, fmt.Errorf("attach volume %s: %w", name, err)
		}
		defer clear(key)
	}
	att := &meta.Attachment{Volume: name, Node: n.cfg.ID, Epoch: v.Epoch + 1, Block: opts.Block, Since: time.Now().UTC()}
	if !opts.Block {
		att.MountPath = filepath.Join(n.cfg.MountDir, name)
	}
	v.Epoch = att.Epoch
	// Claim first: from here on the volume is ours, and a crash leaves a
	// record that the restarted node finishes.
	t0 := time.Now()
	if err := n.meta.Commit(ctx, meta.PutVolume(v, rev), meta.PutAttachment(att, attRev)); err != nil {
		return nil, conflict("attach volume "+name, err)
	}
	t1 := time.Now()
	a, err := n.openVolume(ctx, v, att.MountPath, alive)
	t2 := time.Now()
	if err == nil {
		var dev block.Device
		if dev, err = n.volumeDevice(a, key); err == nil {
			if opts.Block {
				a.device, err = n.front.AttachBlock(ctx, a.name, dev)
			} else {
				a.device, err = n.front.Attach(ctx, a.name, dev, v.FS, a.mountPath)
			}
		}
		if err != nil {
			a.close()
		}
	}
	if err != nil {
		if _, r, gerr := n.meta.Attachment(ctx, name); gerr == nil {
			if derr := n.meta.Commit(ctx, meta.DeleteAttachment(name, r)); derr != nil {
				n.log.Error("release claim after failed attach", "volume", name, "err", derr)
			}
		}
		return nil, fmt.Errorf("attach volume %s: %w", name, err)
	}
	a.took = api.AttachTimes{Claim: t1.Sub(t0), Open: t2.Sub(t1), Mount: time.Since(t2)}
	if perCall(v) {
		// Without it, a restarted daemon could not serve the volume.
		if err := n.keepKey(name, v.ID, key); err != nil {
			n.log.Error("the volume's key is not kept: a daemon restart detaches it", "volume", name, "err", err)
		} else {
			a.keptKey = n.cfg.Keys != nil
		}
	}
	n.mu.Lock()
	n.attached[name] = a
	n.mu.Unlock()
	n.log.Info("volume attached", "volume", name, "epoch", att.Epoch, "mount_path", att.MountPath, "device", a.device, "how", how.String(),
		"claim", a.took.Claim, "open", a.took.Open, "mount", a.took.Mount)
	return a.toAPI(att), nil
}

// volumeDevice is the device the frontend exports for attachment a: its
// engine, encrypted with key when the volume is (the replicas, and all
// beyond, then see only ciphertext), counted for the metrics.
func (n *Node) volumeDevice(a *attachment, key []byte) (block.Device, error) {
	var dev block.Device = a.engine
	if key != nil {
		c, err := crypt.New(dev, key)
		if err != nil {
			return nil, err
		}
		dev = c
	}
	if n.cfg.IO != nil {
		dev = n.cfg.IO.Wrap(a.vol, dev)
	}
	return dev, nil
}

// downDialTimeout bounds opening a replica on a node that is down. A
// live node answers the dial, handshake and fence in milliseconds, even
// on a loaded machine; a dead one does not answer at all, and every
// takeover waits this long for it.
const downDialTimeout = 500 * time.Millisecond

// upOpenTimeout bounds opening a replica on a node that is up: long
// enough for a loaded machine, short of the replica protocol's 10 s, for
// a node that hung since its last lease renewal.
const upOpenTimeout = 5 * time.Second

// openVolume opens v's in-sync replicas at v's epoch, all at once, fences
// each of them at it (so that a former owner's I/O is refused from here
// on), and starts the engine over them, a local replica first. A replica
// on a node that alive says is down (killed or hung with the old owner,
// say) gets downDialTimeout to answer instead of upOpenTimeout: a dead
// host's address is silent, a hung daemon's kernel accepts the connection
// and then nothing answers, and every takeover would wait for it. It is
// still dialled: after an etcd election every liveness key lapses for a
// moment, and a healthy replica must not leave the in-sync set for that.
func (n *Node) openVolume(ctx context.Context, v *meta.Volume, mountPath string, alive map[string]bool) (*attachment, error) {
	name, err := spec.ParseName(v.Name)
	if err != nil {
		return nil, fmt.Errorf("volume record: %w", err)
	}
	a := &attachment{vol: v.Name, name: name, epoch: v.Epoch, replicas: map[string]block.Replica{}, mountPath: mountPath}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	type opened struct {
		r   meta.Replica
		m   block.Replica
		err error
	}
	var todo []opened
	for _, r := range localFirst(v.Replicas, n.cfg.ID) {
		if slices.Contains(v.InSync, r.ID) {
			todo = append(todo, opened{r: r})
		}
	}
	var wg sync.WaitGroup
	for i := range todo {
		wg.Add(1)
		go func(o *opened) {
			defer wg.Done()
			down := o.r.Node != n.cfg.ID && !alive[o.r.Node]
			timeout := upOpenTimeout
			if down {
				timeout = downDialTimeout
			}
			octx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			o.m, o.err = n.openFenced(octx, o.r, v.Epoch)
			if o.err == nil {
				if o.err = growTo(o.m, v.Size); o.err != nil {
					o.m.Close()
				}
			}
			if o.err != nil && down {
				o.err = fmt.Errorf("node %s is down (no liveness key) and did not answer in %s: %w", o.r.Node, downDialTimeout, o.err)
			}
		}(&todo[i])
	}
	wg.Wait()
	var members []engine.Member
	lost := map[string]error{}
	for _, o := range todo {
		if o.err != nil {
			lost[o.r.ID] = o.err
			continue
		}
		a.add(o.r.ID, o.m)
		members = append(members, engine.Member{ID: o.r.ID, Dev: o.m})
	}
	// An in-sync replica that cannot be reached (its node died with the
	// old owner, say) leaves the in-sync set before any I/O; the volume
	// opens with the rest, or not at all below its minimum.
	drop := n.dropper(v.Name, v.Epoch)
	for id, cause := range lost {
		if len(members) == 0 {
			break
		}
		if err := drop(id, cause); err != nil {
			a.close()
			return nil, fmt.Errorf("replica %s unreachable (%v): %w", id, cause, err)
		}
		n.log.Warn("in-sync replica unreachable: dropped from the in-sync set", "volume", v.Name, "replica", id, "cause", cause)
	}
	if len(members) == 0 {
		return nil, fmt.Errorf("no in-sync replica of %s can be opened: %w", v.Name, errors.Join(slices.Collect(maps.Values(lost))...))
	}
	e, err := engine.New(v.Name, members, drop, n.log)
	if err != nil {
		a.close()
		return nil, err
	}
	a.engine = e
	return a, nil
}

// growTo grows an in-sync replica to the volume's recorded size: a resize
// records the new size before it grows the replicas, so a replica may be
// smaller after a crash (or after a resize while detached). Growing is
// O(1) and idempotent.
func growTo(m block.Replica, size int64) error {
	switch have := m.Size(); {
	case have == size:
		return nil
	case have > size:
		return fmt.Errorf("replica has %d bytes, more than the volume's %d", have, size)
	}
	if err := m.Resize(size); err != nil {
		return fmt.Errorf("grow replica to the volume's %d bytes: %w", size, err)
	}
	return nil
}

// localFirst orders replicas so those on node self come first: the engine
// reads from its first member.
func localFirst(rs []meta.Replica, self string) []meta.Replica {
	out := slices.Clone(rs)
	slices.SortStableFunc(out, func(a, b meta.Replica) int {
		switch {
		case a.Node == self && b.Node != self:
			return -1
		case a.Node != self && b.Node == self:
			return 1
		}
		return 0
	})
	return out
}

// close stops the background work on the volume, waits for it, and closes
// the replicas.
func (a *attachment) close() error {
	a.stop()
	var errs []error
	for _, r := range a.members() {
		errs = append(errs, r.Close())
	}
	return errors.Join(errs...)
}

// dropper returns the engine's DropFunc for vol attached here at epoch:
// remove a failed replica from the in-sync set in etcd, refusing to go
// below the volume's minimum, and only while this node still holds the
// volume at that epoch. A fenced former owner gets errors from the new
// owner's replicas; it must not throw them out of the in-sync set.
func (n *Node) dropper(vol string, epoch uint64) engine.DropFunc {
	return func(id string, cause error) error {
		if errors.Is(cause, remote.ErrFenced) {
			// The replica carries a newer epoch: a takeover happened.
			return fmt.Errorf("volume %s: replica %s was fenced by a newer owner: %w", vol, id, engine.ErrFenced)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for {
			att, attRev, err := n.meta.Attachment(ctx, vol)
			if err != nil {
				return fmt.Errorf("volume %s: read attachment: %w", vol, err)
			}
			if att.Node != n.cfg.ID || att.Epoch != epoch {
				return fmt.Errorf("volume %s was taken over by node %s at epoch %d (this node held epoch %d): %w", vol, att.Node, att.Epoch, epoch, engine.ErrFenced)
			}
			v, rev, err := n.meta.Volume(ctx, vol)
			if err != nil {
				return err
			}
			if v.InSync, err = dropFromInSync(*v, id); err != nil {
				return err
			}
			err = n.meta.Commit(ctx, meta.PutVolume(v, rev), meta.AttachmentUnchanged(vol, attRev))
			if !errors.Is(err, meta.ErrConflict) {
				return err
			}
		}
	}
}

// DetachVolume unmounts a volume attached here and releases it. Detaching a
// volume that is attached nowhere succeeds; one attached on another node is
// an error naming that node.
func (n *Node) DetachVolume(ctx context.Context, name string) error {
	if err := spec.ValidateName("volume name", name); err != nil {
		return err
	}
	defer n.locks.Lock(name)()
	if _, _, err := n.getVolume(ctx, name); err != nil {
		return err
	}
	rec, rev, err := n.meta.Attachment(ctx, name)
	n.mu.Lock()
	a := n.attached[name]
	n.mu.Unlock()
	switch {
	case errors.Is(err, meta.ErrNotFound):
		if a != nil {
			return n.retire(ctx, a, superseded(n.cfg.ID, a.epoch, nil, a.engine.Fenced()))
		}
		return nil
	case err != nil:
		return err
	}
	if rec.Node != n.cfg.ID || (a != nil && a.epoch != rec.Epoch) {
		if a != nil {
			// Taken over by another node: what is left here is stale.
			if err := n.retire(ctx, a, superseded(n.cfg.ID, a.epoch, rec, a.engine.Fenced())); err != nil {
				n.log.Warn("detach of a volume taken over by another node", "volume", name, "err", err)
			}
		}
		if rec.Node != n.cfg.ID {
			return fmt.Errorf("volume %q is attached on node %s, not on this node (%s); detach it there: %w", name, rec.Node, n.cfg.ID, api.ErrInUse)
		}
		a = nil
	}
	if a != nil {
		if err := n.release(ctx, a); err != nil {
			return err
		}
	}
	if err := n.meta.Commit(ctx, meta.DeleteAttachment(name, rev)); err != nil {
		return conflict("detach volume "+name, err)
	}
	n.log.Info("volume detached", "volume", name)
	return nil
}

// release unmounts and closes a local attachment and saves its repair count;
// the attachment record stays as it is.
func (n *Node) release(ctx context.Context, a *attachment) error {
	return n.letGo(ctx, a, n.front.Detach)
}

// letGo is release with the frontend's way of letting go of the volume's
// device and mount (Detach, Shutdown).
func (n *Node) letGo(ctx context.Context, a *attachment, unexport func(ctx context.Context, name spec.Name, mountPath string) error) error {
	a.stop() // no scrub or rebuild outlives the attachment
	if err := unexport(ctx, a.name, a.mountPath); err != nil {
		return fmt.Errorf("detach volume %s: %w", a.vol, err)
	}
	flushErr := a.engine.Flush()
	n.forget(a)
	if err := errors.Join(flushErr, a.close()); err != nil {
		return fmt.Errorf("close volume %s: %w", a.vol, err)
	}
	if r := a.engine.Repairs(); r > 0 {
		for {
			v, rev, err := n.meta.Volume(ctx, a.vol)
			if err != nil {
				return err
			}
			v.Repairs += r
			if err := n.meta.Commit(ctx, meta.PutVolume(v, rev)); !errors.Is(err, meta.ErrConflict) {
				return err
			}
		}
	}
	return nil
}

// forget drops a, no longer attached here, and what is kept for it.
func (n *Node) forget(a *attachment) {
	n.mu.Lock()
	delete(n.attached, a.vol)
	n.mu.Unlock()
	if n.cfg.IO != nil {
		n.cfg.IO.Forget(a.vol)
	}
	if a.keptKey {
		n.forgetKey(a.vol)
	}
}

// toAPI describes a's record to users; at, when the volume is attached on
// this node, adds what only this node knows (its device).
func (at *attachment) toAPI(a *meta.Attachment) *api.Attachment {
	out := &api.Attachment{Volume: a.Volume, Node: a.Node, Epoch: a.Epoch, MountPath: a.MountPath, Block: a.Block, Since: a.Since}
	if at != nil {
		out.Device = at.device
		if at.took != (api.AttachTimes{}) {
			took := at.took
			out.Took = &took
		}
	}
	return out
}
