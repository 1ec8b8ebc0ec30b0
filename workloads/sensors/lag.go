package sensors

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

// PartitionLag is one partition's lag as the ingester publishes it to
// LagTopic (JSON, keyed by "topic/partition").
type PartitionLag struct {
	Group         string    `json:"group"`
	Topic         string    `json:"topic"`
	Partition     int       `json:"partition"`
	Committed     int64     `json:"committed"`      // next offset the group will read
	HighWaterMark int64     `json:"high_watermark"` // offset after the last record, as last seen
	Lag           int64     `json:"lag"`            // records written but not yet committed
	Time          time.Time `json:"time"`
}

// Key is the message key for the lag topic.
func (l PartitionLag) Key() string { return fmt.Sprintf("%s/%d", l.Topic, l.Partition) }

// Encode is the message value for the lag topic.
func (l PartitionLag) Encode() []byte {
	b, _ := json.Marshal(l) // plain struct: cannot fail
	return b
}

// LagTracker keeps each partition's committed offset and high watermark as
// the ingester sees them. Safe for concurrent use.
type LagTracker struct {
	group string
	mu    sync.Mutex
	parts map[TopicPartition]*lagState
}

type lagState struct{ committed, hwm int64 }

// NewLagTracker returns a tracker for group.
func NewLagTracker(group string) *LagTracker {
	return &LagTracker{group: group, parts: map[TopicPartition]*lagState{}}
}

func (t *LagTracker) state(tp TopicPartition) *lagState {
	s, ok := t.parts[tp]
	if !ok {
		s = &lagState{committed: -1, hwm: -1}
		t.parts[tp] = s
	}
	return s
}

// Fetched records a message's partition high watermark.
func (t *LagTracker) Fetched(tp TopicPartition, offset, hwm int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.state(tp)
	if hwm > s.hwm {
		s.hwm = hwm
	}
	if offset+1 > s.hwm {
		s.hwm = offset + 1
	}
}

// Committed records that everything before next is committed.
func (t *LagTracker) Committed(tp TopicPartition, next int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.state(tp)
	s.committed = next
	if next > s.hwm {
		s.hwm = next
	}
}

// Report returns every partition's lag at now, sorted. A partition with no
// commit yet counts everything below its high watermark as lag.
func (t *LagTracker) Report(now time.Time) []PartitionLag {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]PartitionLag, 0, len(t.parts))
	for tp, s := range t.parts {
		committed := max(s.committed, 0)
		l := PartitionLag{Group: t.group, Topic: tp.Topic, Partition: tp.Partition, Committed: s.committed,
			HighWaterMark: s.hwm, Lag: max(s.hwm-committed, 0), Time: now.UTC()}
		out = append(out, l)
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Topic != out[b].Topic {
			return out[a].Topic < out[b].Topic
		}
		return out[a].Partition < out[b].Partition
	})
	return out
}

// Total is the sum of the lags.
func Total(lags []PartitionLag) int64 {
	var n int64
	for _, l := range lags {
		n += l.Lag
	}
	return n
}

// publishLag writes every partition's lag to the lag topic every
// LagInterval. A failed write is logged and skipped: the next report
// supersedes it.
func (in *Ingester) publishLag(ctx context.Context, w messageWriter) {
	t := time.NewTicker(in.cfg.LagInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			lags := in.lag.Report(now)
			if len(lags) == 0 {
				continue
			}
			msgs := make([]kafka.Message, len(lags))
			for i, l := range lags {
				msgs[i] = kafka.Message{Topic: in.cfg.LagTopic, Key: []byte(l.Key()), Value: l.Encode(), Time: now}
			}
			wctx, cancel := context.WithTimeout(ctx, in.cfg.LagInterval)
			if err := w.WriteMessages(wctx, msgs...); err != nil && ctx.Err() == nil {
				in.log.Warn("publish lag", "topic", in.cfg.LagTopic, "err", err)
			}
			cancel()
		}
	}
}
