package meta

import (
	"context"
	"time"
)

// BackupTarget is a place backups go (an S3 bucket or a directory), with
// its credentials sealed under the cluster secret as secrets are.
type BackupTarget struct {
	Name     string    `json:"name"`
	URL      string    `json:"url"`
	Endpoint string    `json:"endpoint,omitempty"`
	Region   string    `json:"region,omitempty"`
	Insecure bool      `json:"insecure,omitempty"`
	Created  time.Time `json:"created"`
	Nonce    []byte    `json:"nonce,omitempty"`
	Sealed   []byte    `json:"sealed,omitempty"` // the credentials, JSON
	// Collecting names the node deleting a backup of this target and its
	// unused chunks. A backup starts only while it is empty (its record's
	// transaction guards on the target's), and a delete collects only
	// while no backup runs: a chunk a running backup counts on is never
	// collected under it.
	Collecting string `json:"collecting,omitempty"`
}

// BackupState is where a backup is.
type BackupState string

const (
	BackupRunning BackupState = "running"
	BackupDone    BackupState = "done"
	BackupFailed  BackupState = "failed"
)

// Backup is the cluster's record of one backup: the manifest in the
// target is the backup itself; this says where it is and how it went.
type Backup struct {
	ID       string `json:"id"`
	Volume   string `json:"volume"`
	Target   string `json:"target"`
	Snapshot string `json:"snapshot"`
	// VolumeID and SnapshotCreated tell this volume and snapshot from a
	// later one of the same name: only they make a base for the next
	// backup's changed chunks.
	VolumeID        string      `json:"volume_id,omitempty"`
	SnapshotCreated time.Time   `json:"snapshot_created,omitzero"`
	Parent          string      `json:"parent,omitempty"`
	Node            string      `json:"node"` // running it, or that ran it
	State           BackupState `json:"state"`
	Error           string      `json:"error,omitempty"`
	Created         time.Time   `json:"created"`
	Finished        time.Time   `json:"finished,omitzero"`
	Size            int64       `json:"size"`     // the volume's, at the snapshot
	Done            int64       `json:"done"`     // bytes read so far
	Total           int64       `json:"total"`    // bytes to read
	Uploaded        int64       `json:"uploaded"` // compressed bytes sent
	// OwnSnapshot: the backup took its snapshot itself, and deletes it
	// once a newer backup of the volume no longer needs it as a base.
	OwnSnapshot bool `json:"own_snapshot,omitempty"`
	// Scheduled: made by the volume's backup schedule, which keeps the
	// newest of those it made.
	Scheduled bool `json:"scheduled,omitempty"`
}

func backupTargetKey(name string) string { return Prefix + "backup-targets/" + name }
func backupKey(id string) string         { return Prefix + "backups/" + id }

// PutBackupTarget writes t if its record is still at rev (0: absent).
func PutBackupTarget(t *BackupTarget, rev Rev) Op { return put(backupTargetKey(t.Name), t, rev) }

// BackupTargetUnchanged guards a transaction on target name still being
// at rev, changing nothing.
func BackupTargetUnchanged(name string, rev Rev) Op {
	return Op{key: backupTargetKey(name), rev: rev, check: true}
}

// DeleteBackupTarget deletes target name if its record is still at rev.
func DeleteBackupTarget(name string, rev Rev) Op { return Op{key: backupTargetKey(name), rev: rev} }

// BackupTarget reads target name.
func (s *Store) BackupTarget(ctx context.Context, name string) (*BackupTarget, Rev, error) {
	return get[BackupTarget](ctx, s, backupTargetKey(name))
}

// BackupTargets lists the targets, by name.
func (s *Store) BackupTargets(ctx context.Context) ([]BackupTarget, error) {
	return list[BackupTarget](ctx, s, Prefix+"backup-targets/")
}

// PutBackup writes b if its record is still at rev (0: absent).
func PutBackup(b *Backup, rev Rev) Op { return put(backupKey(b.ID), b, rev) }

// DeleteBackup deletes backup id's record if it is still at rev.
func DeleteBackup(id string, rev Rev) Op { return Op{key: backupKey(id), rev: rev} }

// Backup reads backup id's record.
func (s *Store) Backup(ctx context.Context, id string) (*Backup, Rev, error) {
	return get[Backup](ctx, s, backupKey(id))
}

// Backups lists the backup records, by ID.
func (s *Store) Backups(ctx context.Context) ([]Backup, error) {
	return list[Backup](ctx, s, Prefix+"backups/")
}

// UpdateBackup changes backup id's record with fn (see update).
func (s *Store) UpdateBackup(ctx context.Context, id string, fn func(*Backup) bool) (*Backup, error) {
	return update(ctx, s, backupKey(id), fn)
}

// UpdateBackupTarget changes target name's record with fn (see update).
func (s *Store) UpdateBackupTarget(ctx context.Context, name string, fn func(*BackupTarget) bool) (*BackupTarget, error) {
	return update(ctx, s, backupTargetKey(name), fn)
}
