package block

// Replica is what a replica of a volume is, wherever it lives (a local
// file, another node): a Device that can also rewrite a block found bad,
// grow, take and delete snapshots, keep the epoch that fences former
// owners, and be let go. The engine's members, the node's open replicas
// and the remote client all are one.
type Replica interface {
	Device
	// Repair rewrites the block at off with good, read from another
	// replica, after a checksum mismatch.
	Repair(off int64, good []byte) error
	// Resize grows the replica to size bytes.
	Resize(size int64) error
	Snapshot(name string) error
	DeleteSnapshot(name string) error
	// Fence raises the replica's epoch: I/O of older epochs is refused
	// from then on.
	Fence(epoch uint64) error
	Close() error
}
