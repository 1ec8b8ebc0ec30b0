package sensors

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"time"
)

// StatsFile is what an ingester publishes to its --stats-file: its
// counters and latency histogram, for a benchmark or a monitor to read.
type StatsFile struct {
	IngestStats
	Latency HistogramSnapshot `json:"latency"`
	// LastStored is when the last write of readings finished.
	LastStored time.Time `json:"last_stored"`
	Written    time.Time `json:"written"`
}

// writeStatsFile replaces path with st (write to a temporary file, then
// rename: a reader sees the old or the new one, whole).
func writeStatsFile(path string, st StatsFile) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".stats-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ReadStatsFile reads a file written by an ingester's stats publishing.
func ReadStatsFile(path string) (StatsFile, error) {
	var st StatsFile
	b, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	err = json.Unmarshal(b, &st)
	return st, err
}

// publishStats writes snap() to path every interval until ctx ends, and
// once more at the end.
func publishStats(ctx context.Context, path string, interval time.Duration, snap func() StatsFile, log func(error)) {
	if path == "" {
		return
	}
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := writeStatsFile(path, snap()); err != nil {
				log(err)
			}
			return
		case <-t.C:
			if err := writeStatsFile(path, snap()); err != nil {
				log(err)
			}
		}
	}
}
