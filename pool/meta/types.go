// Package meta keeps Ballast's cluster metadata in etcd: nodes, volumes,
// replica placement, in-sync sets, attachments and snapshots. Every record is
// JSON under one key; changes are compare-and-swap on the key's revision, so
// two daemons acting on the same volume never overwrite each other.
//
// Keyspace (prefix /ballast/v1):
//
//	nodes/<node>                 Node: address, labels, pool dirs
//	alive/<node>                 present while the node's lease lives
//	volumes/<volume>             Volume: spec, state, replicas, in-sync set, epoch
//	attachments/<volume>         Attachment: node, epoch, mount path
//	snapshots/<volume>/<snap>    Snapshot
package meta

import (
	"time"

	"github.com/ballast-io/ballast/pool/crypt"
	"github.com/ballast-io/ballast/pool/spec"
)

// State is the lifecycle state of a volume or snapshot. Records in a
// transitional state (creating, deleting) are finished or rolled back by the
// owning node when it restarts.
type State string

const (
	StateCreating State = "creating"
	StateReady    State = "ready"
	StateDeleting State = "deleting"
)

// Node is one daemon of the cluster.
type Node struct {
	ID      string            `json:"id"`
	Addr    string            `json:"addr,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Pools   []Pool            `json:"pools"`
	Version string            `json:"version,omitempty"`
	Started time.Time         `json:"started"`
	// DownSince is when another node saw this node's lease expire; zero
	// while it is up or when nobody saw it go.
	DownSince time.Time `json:"down_since,omitzero"`
}

// Pool is one disk (a pool dir) of a node.
type Pool struct {
	ID        string `json:"id"`
	Node      string `json:"node"`
	Dir       string `json:"dir"`
	Capacity  int64  `json:"capacity"`
	Allocated int64  `json:"allocated"`
}

// Replica is where one copy of a volume lives.
type Replica struct {
	ID   string `json:"id"`
	Node string `json:"node"`
	Pool string `json:"pool"`
}

// Volume is a volume's record.
type Volume struct {
	spec.Volume
	ID      string    `json:"id"`
	State   State     `json:"state"`
	Created time.Time `json:"created"`
	// Creator is the node making the volume while it is "creating" (a
	// restore fills it for a long while): only it, or any node once it
	// is down, rolls an unfinished create back.
	Creator  string    `json:"creator,omitempty"`
	Replicas []Replica `json:"replicas"`
	// InSync lists the IDs of replicas that hold every acknowledged write.
	// Only they may serve reads or a takeover.
	InSync []string `json:"in_sync"`
	// Epoch is bumped by every attach; replicas refuse I/O from older ones.
	Epoch uint64 `json:"epoch"`
	// Repairs counts blocks repaired after a checksum mismatch.
	Repairs int64 `json:"repairs"`
	// Key is the data key of an encrypted volume, wrapped by the
	// passphrase in secret SecretKey, or by one given per call when it
	// names none; nil for a volume in clear.
	Key *crypt.Wrapped `json:"key,omitempty"`
}

// Attachment says where a volume is attached.
type Attachment struct {
	Volume string `json:"volume"`
	Node   string `json:"node"`
	Epoch  uint64 `json:"epoch"`
	// MountPath is where its filesystem is mounted; empty when it is
	// attached as a raw block device (Block).
	MountPath string    `json:"mount_path"`
	Block     bool      `json:"block,omitempty"`
	Since     time.Time `json:"since"`
}

// Snapshot is a point-in-time copy of a volume.
type Snapshot struct {
	Volume  string    `json:"volume"`
	Name    string    `json:"name"`
	State   State     `json:"state"`
	Created time.Time `json:"created"`
	// Size is the volume's size when the snapshot was taken (0 in records
	// made before volumes could grow: then the volume's size).
	Size int64 `json:"size,omitempty"`
}
