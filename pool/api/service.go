// Package api is the one volume service of a Ballast node: the interface the
// daemon implements and that the CLI, the Docker plugin and the CSI driver
// all call, its request and answer types, and its errors. The service is
// served over gRPC on the daemon's unix socket (server.go) and reached
// through Client (client.go), which implements the same interface.
package api

import (
	"context"
	"errors"
	"time"

	"github.com/ballast-io/ballast/pool/spec"
)

// Service is everything a user can do with volumes, snapshots and pools.
type Service interface {
	// CreateVolume creates a volume; opts carries what is not part of its
	// spec and is never stored (the passphrase of an encrypted one).
	CreateVolume(ctx context.Context, v spec.Volume, opts CreateOptions) (*Volume, error)
	DeleteVolume(ctx context.Context, name string) error
	// ResizeVolume grows a volume to size bytes (rounded up to 4 KiB) and,
	// where it is attached and mounted, its filesystem, online.
	ResizeVolume(ctx context.Context, name string, size int64) (*Volume, error)
	InspectVolume(ctx context.Context, name string) (*Volume, error)
	ListVolumes(ctx context.Context) ([]Volume, error)
	// AttachVolume attaches a volume on this node, formats it on first use,
	// mounts it and returns the attachment with its mount path; with
	// opts.Block it attaches it as a raw block device instead, with nothing
	// formatted or mounted, and the attachment names the device.
	AttachVolume(ctx context.Context, name string, opts AttachOptions) (*Attachment, error)
	DetachVolume(ctx context.Context, name string) error

	CreateSnapshot(ctx context.Context, volume, name string) (*Snapshot, error)
	DeleteSnapshot(ctx context.Context, volume, name string) error
	// ListSnapshots lists a volume's snapshots, or all when volume is "".
	ListSnapshots(ctx context.Context, volume string) ([]Snapshot, error)

	// SetSecret stores a secret of the cluster, the passphrase of
	// encrypted volumes that name it, sealed under the cluster secret. A
	// secret that volumes use cannot be changed (ErrInUse).
	SetSecret(ctx context.Context, name string, value []byte) (*Secret, error)
	// ChangeSecret gives a secret a new value: the keys of the volumes
	// that use it are rewrapped under it, with nothing re-encrypted, in
	// the same transaction.
	ChangeSecret(ctx context.Context, name string, value []byte) (*Secret, error)
	// ChangePassphrase gives a volume encrypted with a passphrase given
	// per call a new one: old must open its key, which is rewrapped
	// under value, with nothing re-encrypted. Its clones keep theirs.
	ChangePassphrase(ctx context.Context, volume string, old, value []byte) error
	// ListSecrets lists the secrets, never their values.
	ListSecrets(ctx context.Context) ([]Secret, error)
	// DeleteSecret deletes a secret no volume uses.
	DeleteSecret(ctx context.Context, name string) error

	ListPools(ctx context.Context) ([]Pool, error)
	// ClusterStatus lists the nodes of the cluster with their state.
	ClusterStatus(ctx context.Context) ([]Node, error)
}

// Errors every implementation wraps, so callers can tell them apart with
// errors.Is, also across the gRPC socket. Validation errors wrap
// spec.ErrInvalid.
var (
	ErrNotFound   = errors.New("not found")
	ErrExists     = errors.New("already exists")
	ErrInUse      = errors.New("in use")
	ErrNoCapacity = errors.New("not enough capacity")
	ErrConflict   = errors.New("changed concurrently, try again")
	// ErrGrowAtAttach: a volume grew, but its mounted filesystem could
	// not grow online; it grows at the volume's next attach.
	ErrGrowAtAttach = errors.New("the filesystem grows at its next attach")
	ErrInvalid      = spec.ErrInvalid
)

// MaxPassphrase bounds a passphrase, given per call or kept in a secret.
const MaxPassphrase = 4096

// CreateOptions go with a volume's spec at create, and are not stored.
type CreateOptions struct {
	// Passphrase wraps the data key of an encrypted volume that names no
	// cluster secret; the same passphrase must then be given at every
	// attach. Only the wrapped key is stored.
	Passphrase []byte `json:"passphrase,omitempty"`
}

// AttachOptions tune an attach.
type AttachOptions struct {
	// Force takes the volume over from another node that still holds it.
	Force bool `json:"force,omitempty"`
	// Block attaches the volume as a raw block device: no filesystem is
	// made or mounted, and the attachment names the device.
	Block bool `json:"block,omitempty"`
	// Passphrase opens the key of an encrypted volume made with a
	// passphrase given per call (CreateOptions.Passphrase). It is not
	// stored: the unwrapped key stays in this node's memory while the
	// volume is attached here (in the keeper's, across daemon restarts).
	Passphrase []byte `json:"passphrase,omitempty"`
}

// Volume describes a volume as a user sees it.
type Volume struct {
	spec.Volume
	ID         string      `json:"id"`
	State      string      `json:"state"`
	Created    time.Time   `json:"created"`
	Replicas   []Replica   `json:"replicas"`
	Epoch      uint64      `json:"epoch"`
	Attachment *Attachment `json:"attachment,omitempty"`
	Snapshots  int         `json:"snapshots"`
	Allocated  int64       `json:"allocated"` // bytes written, on the largest replica
	Repairs    int64       `json:"repairs"`   // blocks repaired from a peer after a checksum mismatch
	Children   []string    `json:"children,omitempty"`
	// Rebuild is the replica being rebuilt on the node the volume is
	// attached on, or the last one rebuilt there.
	Rebuild *Rebuild `json:"rebuild,omitempty"`
	// Restore is the restore filling a volume made from a backup, while
	// it runs.
	Restore *RestoreProgress `json:"restore,omitempty"`
}

// Replica is one copy of a volume.
type Replica struct {
	ID        string `json:"id"`
	Node      string `json:"node"`
	Pool      string `json:"pool"`
	InSync    bool   `json:"in_sync"`
	Allocated int64  `json:"allocated"`
	// Local: the volume is attached, on this replica's node, so reads of
	// it need no network.
	Local bool `json:"local,omitempty"`
}

// Attachment says where a volume is attached and mounted.
type Attachment struct {
	Volume string `json:"volume"`
	Node   string `json:"node"`
	Epoch  uint64 `json:"epoch"`
	// MountPath is where the filesystem is mounted; empty for a raw block
	// attachment (Block).
	MountPath string `json:"mount_path,omitempty"`
	Block     bool   `json:"block,omitempty"`
	// Device is the volume's block device on the node it is attached on
	// (e.g. /dev/loop3); only that node's daemon knows it.
	Device string    `json:"device,omitempty"`
	Since  time.Time `json:"since"`
	// Took is how long the attach took, step by step; only that node's
	// daemon knows it.
	Took *AttachTimes `json:"took,omitempty"`
}

// AttachTimes are the steps of an attach, as long as each took.
type AttachTimes struct {
	Claim time.Duration `json:"claim"` // the etcd transaction that claims the volume
	Open  time.Duration `json:"open"`  // its replicas opened and fenced
	Mount time.Duration `json:"mount"` // exported, its filesystem checked (journal replay) and mounted
}

// Snapshot is a point-in-time, read-only copy of a volume.
type Snapshot struct {
	Volume  string    `json:"volume"`
	Name    string    `json:"name"`
	State   string    `json:"state"`
	Created time.Time `json:"created"`
	// Size is the volume's size when the snapshot was taken: the size of
	// its clones.
	Size int64 `json:"size"`
	// Clones lists volumes created from this snapshot.
	Clones []string `json:"clones,omitempty"`
}

// Secret is a secret of the cluster as users see it: never its value.
type Secret struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// UsedBy lists the encrypted volumes whose key it wraps.
	UsedBy []string `json:"used_by,omitempty"`
}

// Pool is one disk of a node.
type Pool struct {
	ID        string `json:"id"`
	Node      string `json:"node"`
	Dir       string `json:"dir"`
	Capacity  int64  `json:"capacity"`
	Allocated int64  `json:"allocated"`
	Replicas  int    `json:"replicas"`
	Online    bool   `json:"online"`
}

// NodeState is whether a node's lease lives.
type NodeState string

const (
	NodeUp   NodeState = "up"   // its lease lives
	NodeDown NodeState = "down" // its lease expired, or it left
)

// RebuildState is where a rebuild is.
type RebuildState string

const (
	RebuildRunning RebuildState = "running"
	RebuildDone    RebuildState = "done"
	RebuildFailed  RebuildState = "failed" // Rebuild.Error says why
)

// Node is one daemon of the cluster.
type Node struct {
	ID     string            `json:"id"`
	Addr   string            `json:"addr,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	State  NodeState         `json:"state"`
	// Since is when it came up, or when it was seen going down (zero if
	// nobody saw it).
	Since     time.Time `json:"since,omitzero"`
	Version   string    `json:"version,omitempty"`
	Pools     int       `json:"pools"`
	Capacity  int64     `json:"capacity"`
	Allocated int64     `json:"allocated"`
	// Etcd is the node's part in the cluster's embedded etcd: "leader",
	// "member" or "learner"; empty for a node that is only a client.
	Etcd string `json:"etcd,omitempty"`
}

// Rebuild is the progress of a replica being rebuilt, or the outcome of
// the last rebuild since the volume was attached.
type Rebuild struct {
	Replica string `json:"replica"`
	// Kind is "rebuild" (a full copy onto a new replica) or "catch-up"
	// (a returning replica gets only what it missed).
	Kind    string       `json:"kind"`
	State   RebuildState `json:"state"`
	Error   string       `json:"error,omitempty"` // why it failed
	Done    int64        `json:"done"`            // bytes copied or skipped
	Total   int64        `json:"total"`           // bytes to go through
	Elapsed string       `json:"elapsed"`
}
