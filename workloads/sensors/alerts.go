package sensors

import (
	"context"
	"errors"
)

// Alerts returns, per sensor, its latest reading (by event time) whose
// temperature is above threshold, in the order the sensors first appear.
func Alerts(in []Stamped, threshold float64) []Reading {
	latest := map[string]int{}
	var out []Reading
	for _, r := range in {
		if r.Temperature <= threshold {
			continue
		}
		i, ok := latest[r.SensorID]
		if !ok {
			latest[r.SensorID] = len(out)
			out = append(out, r.Reading)
			continue
		}
		if r.Time.After(out[i].Time) {
			out[i] = r.Reading
		}
	}
	return out
}

// writeAlerts writes the alerts newer than the sensors' last ones.
func (in *Ingester) writeAlerts(ctx context.Context, store sink, alerts []Reading) error {
	wake := sessionWake(store)
	for _, a := range alerts {
		if !in.alerts.known(a.SensorID) {
			var last Reading
			err := retryWake(ctx, in.cfg.Backoff, wake, in.log, "read last alert", func(ctx context.Context) error {
				var err error
				last, err = store.LastAlert(ctx, a.SensorID)
				if errors.Is(err, ErrNoAlert) {
					return nil
				}
				return err
			})
			if err != nil {
				return err
			}
			in.alerts.set(last)
		}
		if !in.alerts.newer(a) {
			continue
		}
		if err := retryWake(ctx, in.cfg.Backoff, wake, in.log, "write alert", func(ctx context.Context) error {
			return store.WriteAlert(ctx, a)
		}); err != nil {
			return err
		}
		in.alerts.set(a)
		in.alertRows.Add(1)
	}
	return nil
}

// alertBook remembers each sensor's last alert time (ms), so an older
// alert (a redelivery) never overwrites a newer one. One ingester owns a
// sensor at a time (its Kafka partition), so this view is current.
type alertBook struct{ last map[string]int64 }

func (b *alertBook) known(sensor string) bool { _, ok := b.last[sensor]; return ok }

// set records r; a zero Reading with a sensor id records "no alert yet".
func (b *alertBook) set(r Reading) {
	if r.SensorID == "" {
		return
	}
	ms := int64(-1 << 62)
	if !r.Time.IsZero() {
		ms = r.Time.UnixMilli()
	}
	if old, ok := b.last[r.SensorID]; !ok || ms > old {
		b.last[r.SensorID] = ms
	}
}

func (b *alertBook) newer(r Reading) bool {
	old, ok := b.last[r.SensorID]
	return !ok || r.Time.UnixMilli() > old
}
