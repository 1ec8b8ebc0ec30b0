package meta

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"
)

// ScheduleKind is what a schedule makes.
type ScheduleKind string

const (
	ScheduleSnapshot ScheduleKind = "snapshot"
	ScheduleBackup   ScheduleKind = "backup"
)

// Schedule makes snapshots or backups of a volume on a cron schedule and
// keeps the newest Retain of those it made. One node of the cluster runs
// the schedules at a time (Lead).
type Schedule struct {
	Volume    string       `json:"volume"`
	Kind      ScheduleKind `json:"kind"`
	Cron      string       `json:"cron"`
	Retain    int          `json:"retain"`
	Target    string       `json:"target,omitempty"`     // backups only
	RateLimit int64        `json:"rate_limit,omitempty"` // backups only
	Created   time.Time    `json:"created"`
	// LastRun is when it last fired; the next run is the schedule's
	// first time after it. It is set, by compare-and-swap, before the run.
	LastRun   time.Time `json:"last_run,omitzero"`
	LastNode  string    `json:"last_node,omitempty"`
	LastError string    `json:"last_error,omitempty"`
}

func scheduleKey(vol string, kind ScheduleKind) string {
	return Prefix + "schedules/" + vol + "/" + string(kind)
}

// PutSchedule writes s if its record is still at rev (0: absent).
func PutSchedule(s *Schedule, rev Rev) Op { return put(scheduleKey(s.Volume, s.Kind), s, rev) }

// DeleteSchedule deletes a schedule if its record is still at rev.
func DeleteSchedule(vol string, kind ScheduleKind, rev Rev) Op {
	return Op{key: scheduleKey(vol, kind), rev: rev}
}

// Schedule reads the schedule of kind of vol.
func (s *Store) Schedule(ctx context.Context, vol string, kind ScheduleKind) (*Schedule, Rev, error) {
	return get[Schedule](ctx, s, scheduleKey(vol, kind))
}

// Schedules lists every schedule, by volume and kind.
func (s *Store) Schedules(ctx context.Context) ([]Schedule, error) {
	return list[Schedule](ctx, s, Prefix+"schedules/")
}

// Lead runs fn each time node id becomes the leader of election name,
// until ctx ends. fn's context ends when the leadership is lost (the
// node's session with etcd lapsed) or ctx ends. A node that dies loses it
// within ttl, and another campaigning node takes over.
func (s *Store) Lead(ctx context.Context, name, id string, ttl time.Duration, fn func(context.Context)) error {
	for ctx.Err() == nil {
		err := s.leadOnce(ctx, name, id, ttl, fn)
		if err != nil && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return ctx.Err()
}

func (s *Store) leadOnce(ctx context.Context, name, id string, ttl time.Duration, fn func(context.Context)) error {
	sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(max(int(ttl.Seconds()), 1)), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("election %s: %w", name, err)
	}
	defer sess.Close()
	el := concurrency.NewElection(sess, Prefix+"elections/"+name)
	if err := el.Campaign(ctx, id); err != nil {
		return fmt.Errorf("election %s: %w", name, err)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sess.Done():
			cancel()
		case <-lctx.Done():
		}
	}()
	fn(lctx)
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer rcancel()
	if err := el.Resign(rctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("election %s: resign: %w", name, err)
	}
	return nil
}
