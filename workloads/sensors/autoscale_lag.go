package sensors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

// LagWatchConfig configures a LagWatcher. Zero values take the defaults
// given.
type LagWatchConfig struct {
	Kafka    KafkaConfig
	LagTopic string // the ingesters' reports, default LagTopic
	Group    string // only reports of this group count, default Group
	Topic    string // only lag on this topic counts, default Topic
	// Lookback: how many records back from the end of each partition of
	// the lag topic to start reading, so that a watcher started between
	// two reports has a view at once; default 1000.
	Lookback int64
	Backoff  Backoff // retries while the broker or the topic is missing, default DefaultBackoff
	Logger   *slog.Logger
}

// LagView is a consumer group's lag as its ingesters last reported it.
type LagView struct {
	Lag        int64     // records written but not yet committed, all partitions
	Partitions int       // partitions reported
	Newest     time.Time // newest report; zero: none yet
	Oldest     time.Time // oldest partition's newest report
}

// LagWatcher follows the lag reports the ingesters publish to the lag
// topic (see PartitionLag) and keeps the group's lag per partition, for
// `ballast workload autoscale`. Safe for concurrent use.
//
// Every ingester reports every partition it has ever read, each time with
// a fresh time: after a rebalance the former owner of a partition keeps
// reporting what it last saw (an old committed offset and high watermark)
// while the new owner reports the current ones. So rather than the latest
// report per partition, which would flip between the two, a partition's
// lag is the highest high watermark reported minus the highest committed
// offset reported: offsets only grow, so the most advanced report wins
// whichever ingester sent it and in whatever order they arrive.
type LagWatcher struct {
	cfg LagWatchConfig
	kc  *kafkaClient
	log *slog.Logger

	mu    sync.Mutex
	parts map[int]*watchedPartition
}

type watchedPartition struct {
	committed, hwm int64
	time           time.Time
}

// NewLagWatcher checks cfg and returns a watcher; nothing is contacted
// until Run.
func NewLagWatcher(cfg LagWatchConfig) (*LagWatcher, error) {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&cfg.LagTopic, LagTopic)
	def(&cfg.Group, Group)
	def(&cfg.Topic, Topic)
	if cfg.Lookback <= 0 {
		cfg.Lookback = 1000
	}
	if cfg.Backoff == (Backoff{}) {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	kc, err := cfg.Kafka.resolve()
	if err != nil {
		return nil, err
	}
	return &LagWatcher{cfg: cfg, kc: kc, log: cfg.Logger, parts: map[int]*watchedPartition{}}, nil
}

// Lag returns the group's lag as reported so far.
func (w *LagWatcher) Lag() LagView {
	w.mu.Lock()
	defer w.mu.Unlock()
	var v LagView
	for _, p := range w.parts {
		v.Lag += max(p.hwm-max(p.committed, 0), 0)
		v.Partitions++
		if p.time.After(v.Newest) {
			v.Newest = p.time
		}
		if v.Oldest.IsZero() || p.time.Before(v.Oldest) {
			v.Oldest = p.time
		}
	}
	return v
}

// Add takes one report into account; reports of another group or topic
// are ignored. Run calls it for each record of the lag topic.
func (w *LagWatcher) Add(l PartitionLag) {
	if l.Group != w.cfg.Group || l.Topic != w.cfg.Topic {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	p, ok := w.parts[l.Partition]
	if !ok {
		p = &watchedPartition{committed: -1, hwm: -1}
		w.parts[l.Partition] = p
	}
	p.committed = max(p.committed, l.Committed)
	p.hwm = max(p.hwm, l.HighWaterMark, l.Committed)
	if l.Time.After(p.time) {
		p.time = l.Time
	}
}

// Run reads the lag topic until ctx ends (then it returns nil), waiting
// with backoff while the broker or the topic is not there yet (no ingester
// has reported). Each partition of the lag topic is read from Lookback
// records before its end.
func (w *LagWatcher) Run(ctx context.Context) error {
	var parts []kafka.PartitionOffsets
	err := Retry(ctx, w.cfg.Backoff, w.log, "find lag topic "+w.cfg.LagTopic, func(ctx context.Context) error {
		var err error
		parts, err = w.partitions(ctx)
		return err
	})
	if err != nil {
		return w.stopped(ctx, err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(parts))
	for i, po := range parts {
		wg.Go(func() {
			errs[i] = Retry(ctx, w.cfg.Backoff, w.log, "read lag topic "+w.cfg.LagTopic, func(ctx context.Context) error {
				return w.follow(ctx, po)
			})
		})
	}
	wg.Wait()
	return w.stopped(ctx, errors.Join(errs...))
}

func (w *LagWatcher) stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil || err == nil {
		return nil
	}
	return fmt.Errorf("lag watcher: %w", err)
}

// partitions returns the lag topic's partitions with their first and end
// offsets.
func (w *LagWatcher) partitions(ctx context.Context) ([]kafka.PartitionOffsets, error) {
	topic := w.cfg.LagTopic
	parts, err := topicOffsets(ctx, w.kc, topic)
	if err != nil {
		return nil, err
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("topic %s has no partitions", topic)
	}
	return parts, nil
}

// followIdle is how long a partition of the lag topic may stay silent
// before follow gives its reader up (and Run makes a new one). Ingesters
// report every second; a reader left with connections to a broker that
// moved to another node may hear nothing more (twice in the demo, an
// autoscaler that outlived the broker's move never scaled).
const followIdle = 15 * time.Second

// follow reads one partition of the lag topic until ctx ends (nil), the
// reader fails or the partition stays silent for followIdle (Run starts
// it again: reports read twice change nothing).
func (w *LagWatcher) follow(ctx context.Context, po kafka.PartitionOffsets) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: w.kc.brokers, Topic: w.cfg.LagTopic, Partition: po.Partition, Dialer: w.kc.dialer(),
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 500 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(max(po.FirstOffset, po.LastOffset-w.cfg.Lookback)); err != nil {
		return fmt.Errorf("read %s/%d: %w", w.cfg.LagTopic, po.Partition, err)
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, followIdle)
		m, err := r.ReadMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read %s/%d: %w", w.cfg.LagTopic, po.Partition, err)
		}
		var l PartitionLag
		if err := json.Unmarshal(m.Value, &l); err != nil {
			w.log.Warn("malformed lag report", "topic", w.cfg.LagTopic, "partition", m.Partition, "offset", m.Offset, "err", err)
			continue
		}
		w.Add(l)
	}
}
