package meta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Prefix is the root of Ballast's keys in etcd.
const Prefix = "/ballast/v1/"

var (
	// ErrNotFound is returned for a missing record.
	ErrNotFound = errors.New("not found")
	// ErrConflict is returned when a record changed since it was read, or
	// exists when it was expected not to.
	ErrConflict = errors.New("changed concurrently")
)

// Store reads and writes records in etcd.
type Store struct {
	cli *clientv3.Client
}

// NewStore wraps an etcd client.
func NewStore(cli *clientv3.Client) *Store { return &Store{cli: cli} }

// Client returns the etcd client, for leases and watches.
func (s *Store) Client() *clientv3.Client { return s.cli }

// Rev is a record's etcd ModRevision; 0 means "must not exist yet".
type Rev = int64

func volumeKey(name string) string        { return Prefix + "volumes/" + name }
func attachmentKey(name string) string    { return Prefix + "attachments/" + name }
func snapshotKey(vol, snap string) string { return Prefix + "snapshots/" + vol + "/" + snap }
func snapshotPrefix(vol string) string    { return Prefix + "snapshots/" + vol + "/" }
func nodeKey(id string) string            { return Prefix + "nodes/" + id }
func aliveKey(id string) string           { return Prefix + "alive/" + id }

func get[T any](ctx context.Context, s *Store, key string) (*T, Rev, error) {
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return nil, 0, fmt.Errorf("etcd get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, fmt.Errorf("%s: %w", path.Base(key), ErrNotFound)
	}
	var v T
	if err := json.Unmarshal(resp.Kvs[0].Value, &v); err != nil {
		return nil, 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return &v, resp.Kvs[0].ModRevision, nil
}

func list[T any](ctx context.Context, s *Store, prefix string) ([]T, error) {
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("etcd list %s: %w", prefix, err)
	}
	out := make([]T, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// Op is one change in a transaction: a put or a delete of a key guarded by
// its revision.
type Op struct {
	key   string
	val   []byte // nil: delete
	rev   Rev
	opt   []clientv3.OpOption
	check bool // only guard: the key must still be at rev; change nothing
}

func put(key string, v any, rev Rev, opts ...clientv3.OpOption) Op {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode %s: %v", key, err)) // only plain structs are stored
	}
	return Op{key: key, val: b, rev: rev, opt: opts}
}

// Commit applies ops atomically: all of them, or none when any guarded key
// changed (ErrConflict).
func (s *Store) Commit(ctx context.Context, ops ...Op) error {
	var cmps []clientv3.Cmp
	var thens []clientv3.Op
	for _, op := range ops {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(op.key), "=", op.rev))
		switch {
		case op.check:
		case op.val == nil:
			thens = append(thens, clientv3.OpDelete(op.key))
		default:
			thens = append(thens, clientv3.OpPut(op.key, string(op.val), op.opt...))
		}
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(thens...).Commit()
	if err != nil {
		return fmt.Errorf("etcd txn: %w", err)
	}
	if !resp.Succeeded {
		return ErrConflict
	}
	return nil
}

// PutVolume writes v if its record is still at rev.
func PutVolume(v *Volume, rev Rev) Op { return put(volumeKey(v.Name), v, rev) }

// DeleteVolume deletes the record of name if it is still at rev.
func DeleteVolume(name string, rev Rev) Op { return Op{key: volumeKey(name), rev: rev} }

// PutAttachment writes a's record if it is still at rev.
func PutAttachment(a *Attachment, rev Rev) Op { return put(attachmentKey(a.Volume), a, rev) }

// AttachmentUnchanged guards a transaction on the attachment of vol still
// being at rev, changing nothing: an owner acts on its volume only while it
// still holds it.
func AttachmentUnchanged(vol string, rev Rev) Op {
	return Op{key: attachmentKey(vol), rev: rev, check: true}
}

// DeleteAttachment deletes the attachment of vol if it is still at rev.
func DeleteAttachment(vol string, rev Rev) Op { return Op{key: attachmentKey(vol), rev: rev} }

// PutSnapshot writes sn if its record is still at rev.
func PutSnapshot(sn *Snapshot, rev Rev) Op { return put(snapshotKey(sn.Volume, sn.Name), sn, rev) }

// DeleteSnapshot deletes a snapshot's record if it is still at rev.
func DeleteSnapshot(vol, snap string, rev Rev) Op { return Op{key: snapshotKey(vol, snap), rev: rev} }

// Volume reads a volume's record.
func (s *Store) Volume(ctx context.Context, name string) (*Volume, Rev, error) {
	return get[Volume](ctx, s, volumeKey(name))
}

// Volumes lists every volume of the cluster, by name.
func (s *Store) Volumes(ctx context.Context) ([]Volume, error) {
	return list[Volume](ctx, s, Prefix+"volumes/")
}

// Attachment reads where a volume is attached; ErrNotFound when it is not.
func (s *Store) Attachment(ctx context.Context, vol string) (*Attachment, Rev, error) {
	return get[Attachment](ctx, s, attachmentKey(vol))
}

// Attachments lists every attachment of the cluster.
func (s *Store) Attachments(ctx context.Context) ([]Attachment, error) {
	return list[Attachment](ctx, s, Prefix+"attachments/")
}

// Snapshot reads one snapshot's record.
func (s *Store) Snapshot(ctx context.Context, vol, snap string) (*Snapshot, Rev, error) {
	return get[Snapshot](ctx, s, snapshotKey(vol, snap))
}

// Snapshots lists the snapshots of vol, or of every volume when vol is "".
func (s *Store) Snapshots(ctx context.Context, vol string) ([]Snapshot, error) {
	if vol == "" {
		return list[Snapshot](ctx, s, Prefix+"snapshots/")
	}
	return list[Snapshot](ctx, s, snapshotPrefix(vol))
}

// SnapshotRevs returns the revisions of vol's snapshot records, by name, so
// a volume's delete can be guarded against a concurrent snapshot.
func (s *Store) SnapshotRevs(ctx context.Context, vol string) (map[string]Rev, error) {
	resp, err := s.cli.Get(ctx, snapshotPrefix(vol), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("etcd list snapshots of %s: %w", vol, err)
	}
	revs := make(map[string]Rev, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		revs[path.Base(string(kv.Key))] = kv.ModRevision
	}
	return revs, nil
}

// PutNode registers or updates a node record unconditionally (a node owns
// its own record).
func (s *Store) PutNode(ctx context.Context, n *Node) error {
	b, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("encode node %s: %w", n.ID, err)
	}
	if _, err := s.cli.Put(ctx, nodeKey(n.ID), string(b)); err != nil {
		return fmt.Errorf("etcd put node %s: %w", n.ID, err)
	}
	return nil
}

// Nodes lists every node that ever registered.
func (s *Store) Nodes(ctx context.Context) ([]Node, error) {
	return list[Node](ctx, s, Prefix+"nodes/")
}

// update changes the record at key with fn and writes it back if it is
// still at the revision read, reading it again on a conflict. fn answers
// whether to write: false leaves the record as it is. It answers the
// record as fn left it.
func update[T any](ctx context.Context, s *Store, key string, fn func(*T) bool) (*T, error) {
	for {
		v, rev, err := get[T](ctx, s, key)
		if err != nil {
			return nil, err
		}
		if !fn(v) {
			return v, nil
		}
		err = s.Commit(ctx, put(key, v, rev))
		if !errors.Is(err, ErrConflict) {
			return v, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// UpdateVolume changes volume name's record with fn (see update).
func (s *Store) UpdateVolume(ctx context.Context, name string, fn func(*Volume) bool) (*Volume, error) {
	return update(ctx, s, volumeKey(name), fn)
}
