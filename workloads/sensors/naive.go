package sensors

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

// NaiveIngester is the reference design's consumer, kept as the
// benchmark's baseline: it reads one message at a time (offsets committed
// in the background every second, as with enable.auto.commit) and inserts
// one row per message, synchronously, plus the alert row when the reading
// is over the threshold. It has no batching, no dead-letter topic and no
// retries: a failed insert stops it.
type NaiveIngester struct {
	cfg        IngestConfig
	kc         *kafkaClient
	latency    Histogram
	stored     atomic.Int64
	lastStored atomic.Int64 // unix ns
}

// Snapshot returns the count, the latency histogram and when a reading
// was last stored.
func (n *NaiveIngester) Snapshot() StatsFile {
	return StatsFile{IngestStats: IngestStats{Stored: n.stored.Load()}, Latency: n.latency.Snapshot(),
		LastStored: unixNano(n.lastStored.Load()), Written: time.Now()}
}

// NewNaiveIngester takes the same settings as NewIngester (the batching
// ones are not used).
func NewNaiveIngester(cfg IngestConfig) (*NaiveIngester, error) {
	kc, err := cfg.prepare()
	if err != nil {
		return nil, err
	}
	return &NaiveIngester{cfg: cfg, kc: kc}, nil
}

// Stored is the number of readings inserted.
func (n *NaiveIngester) Stored() int64 { return n.stored.Load() }

// Latency is the produce-to-stored histogram, as for Ingester.
func (n *NaiveIngester) Latency() *Histogram { return &n.latency }

// Run consumes until ctx ends (nil) or an insert fails.
func (n *NaiveIngester) Run(ctx context.Context) error {
	cfg := n.cfg
	store, err := OpenStore(ctx, cfg.Cassandra, cfg.CreateSchema)
	if err != nil {
		return err
	}
	defer store.Close()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: n.kc.brokers, GroupID: cfg.Group, Topic: cfg.Topic, Dialer: n.kc.dialer(),
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 100 * time.Millisecond, StartOffset: kafka.FirstOffset,
		HeartbeatInterval: time.Second, SessionTimeout: cfg.SessionTimeout, RebalanceTimeout: cfg.SessionTimeout,
		JoinGroupBackoff: 500 * time.Millisecond, CommitInterval: time.Second,
	})
	defer r.Close()
	pctx, stopStats := context.WithCancel(ctx)
	statsDone := make(chan struct{})
	go func() {
		defer close(statsDone)
		publishStats(pctx, cfg.StatsFile, cfg.StatsInterval, n.Snapshot, func(err error) { cfg.Logger.Warn("write stats file", "err", err) })
	}()
	defer func() { stopStats(); <-statsDone }()
	last, lastN := time.Now(), int64(0)
	for {
		m, err := r.ReadMessage(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("naive consumer: read: %w", err)
		}
		reading, err := Decode(m.Value)
		if err != nil {
			cfg.Logger.Warn("naive consumer: skipping malformed message", "partition", m.Partition, "offset", m.Offset, "err", err)
			continue
		}
		if err := store.Insert(ctx, reading); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("naive consumer: %w", err)
		}
		if reading.Temperature > cfg.Threshold {
			if err := store.WriteAlert(ctx, reading); err != nil && ctx.Err() == nil {
				return fmt.Errorf("naive consumer: %w", err)
			}
		}
		now := time.Now()
		n.latency.Add(now.Sub(m.Time))
		n.lastStored.Store(now.UnixNano())
		st := n.stored.Add(1)
		if cfg.Progress > 0 && now.Sub(last) >= cfg.Progress {
			cfg.Logger.Info("naive ingesting", "stored", st, "rate_per_s", int(float64(st-lastN)/now.Sub(last).Seconds()))
			last, lastN = now, st
		}
	}
}
