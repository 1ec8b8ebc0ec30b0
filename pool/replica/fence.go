package replica

import "fmt"

// Epoch returns the highest attachment epoch the replica has been fenced at.
func (r *Replica) Epoch() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.meta.Epoch
}

// Fence raises the replica's epoch to epoch, durably, before returning; a
// lower or equal epoch changes nothing. A takeover fences every replica
// first, so that a former owner's I/O, carrying an older epoch, is refused
// even after the replica's node restarts.
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
