package api

import (
	"context"
	"time"

	"github.com/ballast-io/ballast/pool/rpc"
)

// RestoreOptions tune a restore.
type RestoreOptions struct {
	// RateLimit caps the download in bytes per second; 0: none.
	RateLimit int64 `json:"rate_limit,omitempty"`
}

// RestoreProgress is how far the restore filling a volume is.
type RestoreProgress struct {
	Backup string `json:"backup"`
	Done   int64  `json:"done"`  // bytes of the volume restored
	Total  int64  `json:"total"` // its size
}

// BackupService is backups of volumes to object storage: the targets they
// go to, and the backups themselves. A daemon serves it beside Service
// on the same socket (as ballast.v1.Backups); Client implements both.
type BackupService interface {
	// AddBackupTarget defines a target once, checking that it answers
	// and that its credentials open it. The credentials are sealed under
	// the cluster secret.
	AddBackupTarget(ctx context.Context, t BackupTargetSpec) (*BackupTarget, error)
	ListBackupTargets(ctx context.Context) ([]BackupTarget, error)
	// DeleteBackupTarget forgets a target; the backups in it stay there.
	DeleteBackupTarget(ctx context.Context, name string) error

	// CreateBackup starts a backup of a volume's snapshot (a new one when
	// none is named) and answers at once; ListBackups shows its progress.
	CreateBackup(ctx context.Context, b BackupSpec) (*Backup, error)
	// ListBackups lists the backups of a volume, or all when volume is "".
	ListBackups(ctx context.Context, volume string) ([]Backup, error)
	// ListTargetBackups lists the backups a target holds, from their
	// manifests: also those another cluster made, which RestoreBackup
	// restores as well (disaster recovery).
	ListTargetBackups(ctx context.Context, target string) ([]Backup, error)
	// RestoreBackup makes volume to from backup id, and answers when it
	// is ready. The volume is the backup's size, filesystem and
	// encryption (its key comes with the backup; its secret must exist).
	// Meanwhile the volume is "creating", and its Restore says how far
	// the restore is.
	RestoreBackup(ctx context.Context, id, to string, opts RestoreOptions) (*Volume, error)
	// DeleteBackup deletes a backup, and the chunks only it used.
	DeleteBackup(ctx context.Context, id string) error

	// SetSchedule makes (or replaces) a volume's schedule of snapshots
	// or of backups: one node of the cluster runs it at a time, and it
	// keeps the newest Retain of what it made.
	SetSchedule(ctx context.Context, s ScheduleSpec) (*Schedule, error)
	// ListSchedules lists the schedules of a volume, or all when "".
	ListSchedules(ctx context.Context, volume string) ([]Schedule, error)
	// DeleteSchedule deletes a volume's schedule of kind; what it made
	// stays.
	DeleteSchedule(ctx context.Context, volume, kind string) error
}

// Schedule kinds.
const (
	ScheduleSnapshot = "snapshot"
	ScheduleBackup   = "backup"
)

// ScheduleSpec asks for a schedule.
type ScheduleSpec struct {
	Volume string `json:"volume"`
	Kind   string `json:"kind"` // ScheduleSnapshot or ScheduleBackup
	// Cron is when it runs: five cron fields ("0 */6 * * *", UTC), or
	// @hourly, @daily, @every 30m and the like.
	Cron   string `json:"cron"`
	Retain int    `json:"retain"` // how many of what it made to keep, 1-1000
	// Target and RateLimit are the backups' (kind backup only).
	Target    string `json:"target,omitempty"`
	RateLimit int64  `json:"rate_limit,omitempty"`
}

// Schedule is a schedule and how it runs.
type Schedule struct {
	ScheduleSpec
	Created   time.Time `json:"created"`
	LastRun   time.Time `json:"last_run,omitzero"`
	LastNode  string    `json:"last_node,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	Next      time.Time `json:"next"`
}

// BackupTargetSpec defines a target.
type BackupTargetSpec struct {
	Name string `json:"name"`
	// URL is s3://bucket[/prefix] or file:///dir.
	URL      string `json:"url"`
	Endpoint string `json:"endpoint,omitempty"` // S3 host:port
	Region   string `json:"region,omitempty"`
	Insecure bool   `json:"insecure,omitempty"` // plain HTTP
	// Credentials is the content of an AWS-style credentials file.
	Credentials []byte `json:"credentials,omitempty"`
}

// BackupTarget is a target as users see it: never its credentials.
type BackupTarget struct {
	Name     string    `json:"name"`
	URL      string    `json:"url"`
	Endpoint string    `json:"endpoint,omitempty"`
	Region   string    `json:"region,omitempty"`
	Insecure bool      `json:"insecure,omitempty"`
	Created  time.Time `json:"created"`
}

// BackupSpec asks for a backup.
type BackupSpec struct {
	Volume string `json:"volume"`
	Target string `json:"target"`
	// Snapshot to back up; empty: a new one, taken for the backup.
	Snapshot string `json:"snapshot,omitempty"`
	// RateLimit bounds the upload in bytes per second; 0: none.
	RateLimit int64 `json:"rate_limit,omitempty"`
	// Scheduled is set by the volume's backup schedule: the backup counts
	// towards its retention.
	Scheduled bool `json:"scheduled,omitempty"`
}

// Backup states.
const (
	BackupRunning = "running"
	BackupDone    = "done"
	BackupFailed  = "failed"
)

// Backup is one backup as users see it.
type Backup struct {
	ID       string    `json:"id"`
	Volume   string    `json:"volume"`
	Target   string    `json:"target"`
	Snapshot string    `json:"snapshot"`
	Parent   string    `json:"parent,omitempty"` // taken incrementally on it
	Node     string    `json:"node"`
	State    string    `json:"state"`
	Error    string    `json:"error,omitempty"`
	Created  time.Time `json:"created"`
	Finished time.Time `json:"finished,omitzero"`
	Size     int64     `json:"size"`
	Done     int64     `json:"done"`     // bytes read
	Total    int64     `json:"total"`    // bytes to read: less than Size when incremental
	Uploaded int64     `json:"uploaded"` // compressed bytes sent to the target
	// Scheduled: made by the volume's backup schedule.
	Scheduled bool `json:"scheduled,omitempty"`
}

const backupServiceName = "ballast.v1.Backups"

// Request messages of the backup service.
type (
	BackupTargetReq = BackupTargetSpec
	BackupReq       = BackupSpec
	RestoreReq      struct {
		ID, To string
		Opts   RestoreOptions `json:"opts,omitempty"`
	}
	ScheduleReq    = ScheduleSpec
	ScheduleKeyReq struct{ Volume, Kind string }
)

var backupMethods = []rpc.Method[BackupService]{
	rpc.Unary(errorTable, "AddBackupTarget", func(s BackupService, ctx context.Context, r *BackupTargetReq) (*BackupTarget, error) {
		return s.AddBackupTarget(ctx, *r)
	}),
	rpc.Unary(errorTable, "ListBackupTargets", func(s BackupService, ctx context.Context, _ *Empty) ([]BackupTarget, error) {
		return s.ListBackupTargets(ctx)
	}),
	rpc.Unary(errorTable, "DeleteBackupTarget", func(s BackupService, ctx context.Context, r *NameReq) (*Empty, error) {
		return rpc.NoAnswer(s.DeleteBackupTarget(ctx, r.Name))
	}),
	rpc.Unary(errorTable, "CreateBackup", func(s BackupService, ctx context.Context, r *BackupReq) (*Backup, error) {
		return s.CreateBackup(ctx, *r)
	}),
	rpc.Unary(errorTable, "ListBackups", func(s BackupService, ctx context.Context, r *NameReq) ([]Backup, error) {
		return s.ListBackups(ctx, r.Name)
	}),
	rpc.Unary(errorTable, "ListTargetBackups", func(s BackupService, ctx context.Context, r *NameReq) ([]Backup, error) {
		return s.ListTargetBackups(ctx, r.Name)
	}),
	rpc.Unary(errorTable, "RestoreBackup", func(s BackupService, ctx context.Context, r *RestoreReq) (*Volume, error) {
		return s.RestoreBackup(ctx, r.ID, r.To, r.Opts)
	}),
	rpc.Unary(errorTable, "DeleteBackup", func(s BackupService, ctx context.Context, r *NameReq) (*Empty, error) {
		return rpc.NoAnswer(s.DeleteBackup(ctx, r.Name))
	}),
	rpc.Unary(errorTable, "SetSchedule", func(s BackupService, ctx context.Context, r *ScheduleReq) (*Schedule, error) {
		return s.SetSchedule(ctx, *r)
	}),
	rpc.Unary(errorTable, "ListSchedules", func(s BackupService, ctx context.Context, r *NameReq) ([]Schedule, error) {
		return s.ListSchedules(ctx, r.Name)
	}),
	rpc.Unary(errorTable, "DeleteSchedule", func(s BackupService, ctx context.Context, r *ScheduleKeyReq) (*Empty, error) {
		return rpc.NoAnswer(s.DeleteSchedule(ctx, r.Volume, r.Kind))
	}),
}

var _ BackupService = (*Client)(nil)

func backupCall[Resp any](ctx context.Context, c *Client, method string, req any) (Resp, error) {
	resp, err := rpc.Call[Resp](ctx, c.conn, errorTable, backupServiceName, method, req)
	return resp, unreachable(err)
}

func (c *Client) AddBackupTarget(ctx context.Context, t BackupTargetSpec) (*BackupTarget, error) {
	return backupCall[*BackupTarget](ctx, c, "AddBackupTarget", &t)
}

func (c *Client) ListBackupTargets(ctx context.Context) ([]BackupTarget, error) {
	return backupCall[[]BackupTarget](ctx, c, "ListBackupTargets", &Empty{})
}

func (c *Client) DeleteBackupTarget(ctx context.Context, name string) error {
	_, err := backupCall[*Empty](ctx, c, "DeleteBackupTarget", &NameReq{Name: name})
	return err
}

func (c *Client) CreateBackup(ctx context.Context, b BackupSpec) (*Backup, error) {
	return backupCall[*Backup](ctx, c, "CreateBackup", &b)
}

func (c *Client) ListBackups(ctx context.Context, volume string) ([]Backup, error) {
	return backupCall[[]Backup](ctx, c, "ListBackups", &NameReq{Name: volume})
}

func (c *Client) ListTargetBackups(ctx context.Context, target string) ([]Backup, error) {
	return backupCall[[]Backup](ctx, c, "ListTargetBackups", &NameReq{Name: target})
}

func (c *Client) RestoreBackup(ctx context.Context, id, to string, opts RestoreOptions) (*Volume, error) {
	return backupCall[*Volume](ctx, c, "RestoreBackup", &RestoreReq{ID: id, To: to, Opts: opts})
}

func (c *Client) DeleteBackup(ctx context.Context, id string) error {
	_, err := backupCall[*Empty](ctx, c, "DeleteBackup", &NameReq{Name: id})
	return err
}

func (c *Client) SetSchedule(ctx context.Context, s ScheduleSpec) (*Schedule, error) {
	return backupCall[*Schedule](ctx, c, "SetSchedule", &s)
}

func (c *Client) ListSchedules(ctx context.Context, volume string) ([]Schedule, error) {
	return backupCall[[]Schedule](ctx, c, "ListSchedules", &NameReq{Name: volume})
}

func (c *Client) DeleteSchedule(ctx context.Context, volume, kind string) error {
	_, err := backupCall[*Empty](ctx, c, "DeleteSchedule", &ScheduleKeyReq{Volume: volume, Kind: kind})
	return err
}
