package remote

import (
	"fmt"

	"github.com/ballast-io/ballast/pool/replica"
)

// ErrFenced is wrapped by the error of a request whose epoch is older than
// the replica's: a newer owner of the volume has fenced the replica. It is
// replica.ErrFenced, which a local replica's Owner returns, so that a
// refusal reads the same whether the replica is on this node or another.
var ErrFenced = replica.ErrFenced

// Fence is a replica's current epoch and the decision whether a request of
// a given epoch may touch it. It does no I/O and no locking; the server
// guards it.
type Fence struct {
	epoch uint64
}

// Epoch returns the current epoch.
func (f *Fence) Epoch() uint64 { return f.epoch }

// Admit returns nil when a request of epoch may be served, and an error
// wrapping ErrFenced when epoch is older than the current one.
func (f *Fence) Admit(epoch uint64) error {
	if epoch < f.epoch {
		return fmt.Errorf("epoch %d < replica epoch %d: %w", epoch, f.epoch, ErrFenced)
	}
	return nil
}

// Raise makes epoch the current epoch if it is newer, and returns the
// current epoch. The epoch never goes down.
func (f *Fence) Raise(epoch uint64) uint64 {
	f.epoch = max(f.epoch, epoch)
	return f.epoch
}
