package replica

import (
	"errors"
	"fmt"
	"math"
)

// ErrFenced is wrapped by the error of I/O whose epoch is older than the
// replica's: a newer owner of the volume has fenced the replica. The
// replica server reports it to remote clients (remote.ErrFenced is the
// same error), and an Owner returns it for I/O on this node.
var ErrFenced = errors.New("fenced by a newer epoch")

// anyEpoch is the epoch of the Replica's own methods: no fence refuses it.
// The replica server calls them after checking each request's epoch itself.
const anyEpoch = math.MaxUint64

// admit refuses op when the replica is closed, or when epoch, the epoch of
// the owner doing it, is older than the replica's. r.mu must be held,
// shared or exclusive: Fence raises the epoch holding it exclusively, so
// once Fence returns no operation of an older epoch is still running, and
// none starts.
func (r *Replica) admit(epoch uint64, op string) error {
	if err := r.checkOpen(); err != nil {
		return err
	}
	if epoch < r.meta.Epoch {
		return fmt.Errorf("replica %s: %s at epoch %d < replica epoch %d: %w", r.id, op, epoch, r.meta.Epoch, ErrFenced)
	}
	return nil
}

// Epoch returns the highest attachment epoch the replica has been fenced at.
func (r *Replica) Epoch() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.meta.Epoch
}

// Fence raises the replica's epoch to epoch, durably, before returning; a
// lower or equal epoch changes nothing. A takeover fences every replica
// first, so that a former owner's I/O, carrying an older epoch, is refused
// even after the replica's node restarts. Fence takes the lock every
// operation holds while it runs, so when it returns no operation of an
// Owner at an older epoch is running, and every later one is refused.
func (r *Replica) Fence(epoch uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkOpen(); err != nil {
		return err
	}
	if epoch <= r.meta.Epoch {
		return nil
	}
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	m := r.meta.clone()
	m.Epoch = epoch
	if err := writeMeta(s.dir, m); err != nil {
		return fmt.Errorf("replica %s: fence at epoch %d: %w", r.id, epoch, err)
	}
	r.meta = m
	return nil
}

// Owner is the replica as the owner of its volume attached at one epoch
// sees it: the engine of a volume attached on the replica's own node uses
// it, where an engine on another node goes through the replica server.
// Every operation is refused with an error wrapping ErrFenced once the
// replica is fenced at a newer epoch, as the replica server refuses a
// remote request of an older epoch. The check costs a comparison under
// the lock the operation takes anyway.
type Owner struct {
	r     *Replica
	epoch uint64
}

// Owner returns the replica as seen by an owner attached at epoch.
func (r *Replica) Owner(epoch uint64) Owner { return Owner{r: r, epoch: epoch} }

// Replica returns the replica itself, unchecked.
func (o Owner) Replica() *Replica { return o.r }

// Epoch returns the epoch of the owner, the one its operations carry.
func (o Owner) Epoch() uint64 { return o.epoch }

// ID returns the replica's ID.
func (o Owner) ID() string { return o.r.id }

// Size returns the volume size in bytes.
func (o Owner) Size() int64 { return o.r.Size() }

// ReadAt is Replica.ReadAt, refused once the replica is fenced at a newer
// epoch: a former owner must not read what a newer one writes, nor serve
// stale data that its filesystem would then write back.
func (o Owner) ReadAt(p []byte, off int64) (int, error) { return o.r.readAt(p, off, o.epoch) }

// WriteAt is Replica.WriteAt, refused once the replica is fenced at a
// newer epoch.
func (o Owner) WriteAt(p []byte, off int64) (int, error) { return o.r.writeAt(p, off, o.epoch) }

// Flush is Replica.Flush, refused once the replica is fenced at a newer
// epoch.
func (o Owner) Flush() error { return o.r.flush(o.epoch) }

// Discard is Replica.Discard, refused once the replica is fenced at a
// newer epoch.
func (o Owner) Discard(off, length int64) error { return o.r.discard(off, length, o.epoch) }

// Repair is Replica.Repair, refused once the replica is fenced at a newer
// epoch.
func (o Owner) Repair(off int64, good []byte) error { return o.r.repair(off, good, o.epoch) }

// Snapshot is Replica.Snapshot, refused once the replica is fenced at a
// newer epoch.
func (o Owner) Snapshot(name string) error { return o.r.snapshot(name, o.epoch) }

// DeleteSnapshot is Replica.DeleteSnapshot, refused once the replica is
// fenced at a newer epoch.
func (o Owner) DeleteSnapshot(name string) error { return o.r.deleteSnapshot(name, o.epoch) }

// Resize is Replica.Resize, refused once the replica is fenced at a newer
// epoch.
func (o Owner) Resize(size int64) error { return o.r.resize(size, o.epoch) }
