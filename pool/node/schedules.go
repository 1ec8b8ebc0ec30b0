package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/spec"
)

// maxRetain bounds a schedule's retention.
const maxRetain = 1000

// schedPrefix starts the names of the snapshots a schedule takes.
const schedPrefix = "sched-"

// parseCron parses a schedule's cron expression: five fields or a
// descriptor (@hourly, @every 30m, ...), in UTC.
func parseCron(expr string) (cron.Schedule, error) {
	sc, err := cron.ParseStandard(expr)
	if err != nil {
		return nil, fmt.Errorf("%w: schedule %q: %v (give five cron fields, e.g. \"0 */6 * * *\", or @hourly, @daily, @every 30m)", api.ErrInvalid, expr, err)
	}
	return sc, nil
}

// nextRun is when schedule s runs next: its cron's first time after its
// last run, or after its creation if it never ran. A run missed while no
// node led the schedules is made once, not once per missed time.
func nextRun(sc cron.Schedule, s *meta.Schedule) time.Time {
	from := s.LastRun
	if from.IsZero() {
		from = s.Created
	}
	return sc.Next(from.UTC())
}

// made is something a schedule made: a snapshot or a backup.
type made struct {
	id      string
	created time.Time
}

// toPrune answers what a schedule that keeps retain of what it made
// deletes: all but the newest retain, oldest first.
func toPrune(items []made, retain int) []string {
	if len(items) <= retain {
		return nil
	}
	items = slices.Clone(items)
	slices.SortFunc(items, func(a, b made) int {
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	var out []string
	for _, it := range items[:len(items)-retain] {
		out = append(out, it.id)
	}
	return out
}

// SetSchedule makes or replaces the schedule of s.Kind of a volume.
func (n *Node) SetSchedule(ctx context.Context, s api.ScheduleSpec) (*api.Schedule, error) {
	if err := spec.ValidateName("volume name", s.Volume); err != nil {
		return nil, err
	}
	kind := meta.ScheduleKind(s.Kind)
	switch kind {
	case meta.ScheduleSnapshot:
		if s.Target != "" || s.RateLimit != 0 {
			return nil, fmt.Errorf("%w: a snapshot schedule takes no target or rate limit", api.ErrInvalid)
		}
	case meta.ScheduleBackup:
		if _, _, _, err := n.openTarget(ctx, s.Target); err != nil {
			return nil, err
		}
		if s.RateLimit < 0 {
			return nil, fmt.Errorf("%w: rate limit %d bytes/s is negative", api.ErrInvalid, s.RateLimit)
		}
	default:
		return nil, fmt.Errorf("%w: schedule kind %q: give snapshot or backup", api.ErrInvalid, s.Kind)
	}
	if s.Retain < 1 || s.Retain > maxRetain {
		return nil, fmt.Errorf("%w: retain %d: keep 1 to %d", api.ErrInvalid, s.Retain, maxRetain)
	}
	sc, err := parseCron(s.Cron)
	if err != nil {
		return nil, err
	}
	if _, _, err := n.getVolume(ctx, s.Volume); err != nil {
		return nil, err
	}
	rec := &meta.Schedule{Volume: s.Volume, Kind: kind, Cron: s.Cron, Retain: s.Retain, Target: s.Target, RateLimit: s.RateLimit, Created: time.Now().UTC()}
	_, rev, err := n.meta.Schedule(ctx, s.Volume, kind)
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		return nil, err
	}
	if err := n.meta.Commit(ctx, meta.PutSchedule(rec, rev)); err != nil {
		return nil, conflict("schedule of "+s.Volume, err)
	}
	n.log.Info("schedule set", "volume", s.Volume, "kind", kind, "cron", s.Cron, "retain", s.Retain, "target", s.Target)
	return scheduleToAPI(rec, sc), nil
}

func scheduleToAPI(s *meta.Schedule, sc cron.Schedule) *api.Schedule {
	out := &api.Schedule{ScheduleSpec: api.ScheduleSpec{Volume: s.Volume, Kind: string(s.Kind), Cron: s.Cron, Retain: s.Retain, Target: s.Target, RateLimit: s.RateLimit},
		Created: s.Created, LastRun: s.LastRun, LastNode: s.LastNode, LastError: s.LastError}
	if sc != nil {
		out.Next = nextRun(sc, s)
	}
	return out
}

// ListSchedules lists the schedules of vol, or all.
func (n *Node) ListSchedules(ctx context.Context, vol string) ([]api.Schedule, error) {
	recs, err := n.meta.Schedules(ctx)
	if err != nil {
		return nil, err
	}
	out := []api.Schedule{}
	for i := range recs {
		if vol != "" && recs[i].Volume != vol {
			continue
		}
		sc, _ := parseCron(recs[i].Cron)
		out = append(out, *scheduleToAPI(&recs[i], sc))
	}
	return out, nil
}

// DeleteSchedule deletes the schedule of kind of vol.
func (n *Node) DeleteSchedule(ctx context.Context, vol, kind string) error {
	if err := spec.ValidateName("volume name", vol); err != nil {
		return err
	}
	_, rev, err := n.meta.Schedule(ctx, vol, meta.ScheduleKind(kind))
	if errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("volume %q has no %s schedule: %w", vol, kind, api.ErrNotFound)
	} else if err != nil {
		return err
	}
	if err := n.meta.Commit(ctx, meta.DeleteSchedule(vol, meta.ScheduleKind(kind), rev)); err != nil {
		return conflict("delete schedule of "+vol, err)
	}
	n.log.Info("schedule deleted", "volume", vol, "kind", kind)
	return nil
}

// scheduleLoop runs the cluster's schedules while this node leads them:
// one node at a time, another within a lease TTL of its death.
func (n *Node) scheduleLoop(ctx context.Context) {
	n.meta.Lead(ctx, "scheduler", n.cfg.ID, n.cfg.LeaseTTL, func(ctx context.Context) {
		n.log.Info("this node runs the schedules")
		defer n.log.Info("this node no longer runs the schedules")
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			n.runSchedules(ctx, time.Now().UTC())
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
}

// runSchedules fires the schedules due at now and prunes what they made
// beyond their retention.
func (n *Node) runSchedules(ctx context.Context, now time.Time) {
	recs, err := n.meta.Schedules(ctx)
	if err != nil {
		if ctx.Err() == nil {
			n.log.Warn("read the schedules", "err", err)
		}
		return
	}
	for i := range recs {
		s := &recs[i]
		log := n.log.With("volume", s.Volume, "schedule", s.Kind)
		sc, err := parseCron(s.Cron)
		if err != nil {
			log.Error("a schedule's cron does not parse", "err", err)
			continue
		}
		if !nextRun(sc, s).After(now) {
			n.fire(ctx, s, now, log)
		}
		if err := n.prune(ctx, s); err != nil && ctx.Err() == nil {
			log.Warn("prune what the schedule made", "err", err)
		}
	}
}

// fire runs schedule s once: it claims the run by compare-and-swap on the
// record's last run, so that no two nodes (a new leader and an old one
// that has not noticed) run it for the same time.
func (n *Node) fire(ctx context.Context, s *meta.Schedule, now time.Time, log *slog.Logger) {
	cur, rev, err := n.meta.Schedule(ctx, s.Volume, s.Kind)
	if err != nil || !cur.LastRun.Equal(s.LastRun) || cur.Cron != s.Cron || !cur.Created.Equal(s.Created) {
		return // run or changed meanwhile: the next tick sees it as it is
	}
	cur.LastRun, cur.LastNode, cur.LastError = now, n.cfg.ID, ""
	if err := n.meta.Commit(ctx, meta.PutSchedule(cur, rev)); err != nil {
		return
	}
	s = cur
	name := schedPrefix + now.Format("20060102t150405")
	switch s.Kind {
	case meta.ScheduleSnapshot:
		_, err = n.CreateSnapshot(ctx, s.Volume, name)
	case meta.ScheduleBackup:
		_, err = n.CreateBackup(ctx, api.BackupSpec{Volume: s.Volume, Target: s.Target, RateLimit: s.RateLimit, Scheduled: true})
	}
	if err == nil {
		log.Info("schedule ran", "at", now)
		return
	}
	log.Warn("schedule failed", "err", err)
	if cur, rev, gerr := n.meta.Schedule(ctx, s.Volume, s.Kind); gerr == nil && cur.LastRun.Equal(now) {
		cur.LastError = err.Error()
		n.meta.Commit(ctx, meta.PutSchedule(cur, rev))
	}
}

// prune deletes what schedule s made beyond its retention: its snapshots
// (named sched-...) or its finished backups.
func (n *Node) prune(ctx context.Context, s *meta.Schedule) error {
	var items []made
	switch s.Kind {
	case meta.ScheduleSnapshot:
		snaps, err := n.meta.Snapshots(ctx, s.Volume)
		if err != nil {
			return err
		}
		for _, sn := range snaps {
			if strings.HasPrefix(sn.Name, schedPrefix) && sn.State == meta.StateReady {
				items = append(items, made{sn.Name, sn.Created})
			}
		}
	case meta.ScheduleBackup:
		recs, err := n.meta.Backups(ctx)
		if err != nil {
			return err
		}
		alive, err := n.aliveNow(ctx)
		if err != nil {
			return err
		}
		for _, b := range recs {
			if b.Target == s.Target && runningOn(&b, alive) {
				return nil // a delete would be refused: prune once it ends
			}
		}
		for _, b := range recs {
			if b.Scheduled && b.Volume == s.Volume && b.Target == s.Target && b.State == meta.BackupDone {
				items = append(items, made{b.ID, b.Created})
			}
		}
	}
	var errs []error
	for _, id := range toPrune(items, s.Retain) {
		var err error
		if s.Kind == meta.ScheduleSnapshot {
			err = n.DeleteSnapshot(ctx, s.Volume, id)
		} else {
			err = n.DeleteBackup(ctx, id)
		}
		if errors.Is(err, api.ErrInUse) {
			continue // a backup to the target runs: the next tick prunes
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n.log.Info("schedule retention: deleted", "volume", s.Volume, "kind", s.Kind, "what", id, "retain", s.Retain)
	}
	return errors.Join(errs...)
}
