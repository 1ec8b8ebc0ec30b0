package node

import (
	"slices"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/meta"
)

func TestStaleBases(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	rec := func(id string, min int, state meta.BackupState, own bool, parent string) meta.Backup {
		return meta.Backup{ID: id, Volume: "v", Target: "s3", Created: t0.Add(time.Duration(min) * time.Minute), State: state, OwnSnapshot: own, Parent: parent}
	}
	other := rec("o1", 0, meta.BackupDone, true, "")
	other.Volume = "w"
	elsewhere := rec("e1", 0, meta.BackupDone, true, "")
	elsewhere.Target = "nas"
	for _, c := range []struct {
		name string
		recs []meta.Backup
		want []string
	}{
		{"none finished", []meta.Backup{rec("a", 0, meta.BackupRunning, true, "")}, nil},
		{"the newest is the base", []meta.Backup{rec("a", 0, meta.BackupDone, true, ""), rec("b", 1, meta.BackupDone, true, "a")}, []string{"a"}},
		// Two backups ran at once with parent a: b finished last but
		// started first; c is the newest and the base, a and b go.
		{"two at once, same parent", []meta.Backup{rec("a", 0, meta.BackupDone, true, ""), rec("b", 1, meta.BackupDone, true, "a"), rec("c", 2, meta.BackupDone, true, "a")}, []string{"a", "b"}},
		{"a running backup's parent stays", []meta.Backup{rec("a", 0, meta.BackupDone, true, ""), rec("b", 1, meta.BackupDone, true, "a"), rec("c", 2, meta.BackupRunning, true, "a")}, nil},
		{"named snapshots are not the backup's", []meta.Backup{rec("a", 0, meta.BackupDone, false, ""), rec("b", 1, meta.BackupDone, true, "a")}, nil},
		{"failed ones are dropped when they fail", []meta.Backup{rec("a", 0, meta.BackupFailed, true, ""), rec("b", 1, meta.BackupDone, true, "")}, nil},
		{"other volumes and targets are theirs", []meta.Backup{other, elsewhere, rec("b", 1, meta.BackupDone, true, "")}, nil},
	} {
		var got []string
		for _, b := range staleBases(c.recs, "v", "s3") {
			got = append(got, b.ID)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
