// Package peer is the node-to-node control service of a Ballast cluster:
// what one node asks of another that is not replica I/O. It creates,
// clones and deletes replicas in the other node's pools, lets a new node
// join the cluster, grows or snapshots a volume attached on the other node,
// and starts a backup on the node holding the replica it reads. Replica
// I/O and fencing stay on the replica protocol (pool/remote).
//
// The service is gRPC with JSON messages (pool/rpc), over mutual TLS with
// certificates of the cluster's CA, which every node derives from the
// cluster secret (pool/clusterca): only holders of the secret can call it
// or answer it. A node serves it on its --listen address beside the replica
// protocol (the first byte of a connection tells them apart). Every call
// carries the caller's protocol version, and a node speaking another
// version refuses it with ErrVersion, naming both.
package peer

import (
	"context"
	"errors"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/meta"
)

// Version is the version of the peer protocol. Raise it when a change to
// the service's calls or messages would make two nodes misunderstand each
// other.
const Version = 1

// Service is what a node does when another node asks.
type Service interface {
	// CreateReplica creates an empty replica id of size bytes in pool.
	CreateReplica(ctx context.Context, pool, id string, size int64) error
	// CloneReplica creates replica id in pool with the content of
	// snapshot snap of replica src, which is on the same node.
	CloneReplica(ctx context.Context, pool, id, src, snap string) error
	// DeleteReplica deletes replica id wherever on the node it is; a
	// replica that is not there is not an error.
	DeleteReplica(ctx context.Context, id string) error
	// Join lets node into the cluster, and tells it how to reach etcd.
	Join(ctx context.Context, node string, req meta.JoinRequest) (meta.JoinAnswer, error)
	// ResizeVolume grows volume, attached on this node, to size bytes.
	ResizeVolume(ctx context.Context, volume string, size int64) error
	// CreateBackup starts a backup on this node, which holds an in-sync
	// replica of the volume (a backup reads a local one).
	CreateBackup(ctx context.Context, b api.BackupSpec) (*api.Backup, error)
	// CreateSnapshot snapshots volume, attached on this node, with its
	// filesystem frozen and its engine quiesced.
	CreateSnapshot(ctx context.Context, volume, name string) (*api.Snapshot, error)
}

// ResizeTimeout bounds a volume resize: growing a large filesystem takes a
// while. Other calls should be bounded by their caller's context.
const ResizeTimeout = 2 * time.Minute

var (
	// ErrAuth is wrapped by the error of a call whose other end does not
	// hold a certificate of this cluster's CA: a wrong cluster secret, or
	// not a Ballast node.
	ErrAuth = errors.New("authentication failed")
	// ErrVersion is wrapped by the error of a call between nodes that
	// speak different versions of the peer protocol.
	ErrVersion = errors.New("peer protocol version mismatch")
)

// Request messages.
type (
	CreateReq struct {
		Pool, ID string
		Size     int64
	}
	CloneReq  struct{ Pool, ID, Source, Snapshot string }
	DeleteReq struct{ ID string }
	JoinReq   struct {
		Node    string
		Request meta.JoinRequest
	}
	ResizeReq struct {
		Volume string
		Size   int64
	}
	SnapshotReq struct{ Volume, Name string }
)
