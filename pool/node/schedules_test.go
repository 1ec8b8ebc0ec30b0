package node

import (
	"slices"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/meta"
)

func TestNextRun(t *testing.T) {
	created := time.Date(2026, 12, 7, 10, 20, 0, 0, time.UTC)
	for _, c := range []struct {
		cron string
		last time.Time
		want time.Time
	}{
		{"0 */6 * * *", time.Time{}, time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)},
		{"0 */6 * * *", time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC), time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC)},
		// Missed for days: the next run is the first after the last, once.
		{"@hourly", time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)},
		{"@every 90s", time.Time{}, created.Add(90 * time.Second)},
		// A last run recorded in another zone is read in UTC.
		{"0 0 * * *", time.Date(2026, 12, 7, 23, 30, 0, 0, time.FixedZone("x", 3600)), time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)},
	} {
		sc, err := parseCron(c.cron)
		if err != nil {
			t.Fatal(err)
		}
		if got := nextRun(sc, &meta.Schedule{Created: created, LastRun: c.last}); !got.Equal(c.want) {
			t.Errorf("%s after %v: %v, want %v", c.cron, c.last, got, c.want)
		}
	}
	for _, bad := range []string{"", "* * *", "61 * * * *", "@weekly-ish", "@every x"} {
		if _, err := parseCron(bad); err == nil {
			t.Errorf("cron %q parsed", bad)
		}
	}
}

func TestToPrune(t *testing.T) {
	at := func(m int) time.Time { return time.Date(2026, 12, 7, 10, m, 0, 0, time.UTC) }
	items := []made{{"c", at(3)}, {"a", at(1)}, {"e", at(5)}, {"b", at(2)}, {"d", at(4)}}
	for _, c := range []struct {
		retain int
		want   []string
	}{
		{5, nil}, {9, nil}, {3, []string{"a", "b"}}, {1, []string{"a", "b", "c", "d"}},
	} {
		if got := toPrune(items, c.retain); !slices.Equal(got, c.want) {
			t.Errorf("retain %d: prune %v, want %v", c.retain, got, c.want)
		}
	}
	if items[0].id != "c" {
		t.Error("toPrune reordered its input")
	}
}
