package sensors

import (
	"context"
	"errors"
	"fmt"

	kafka "github.com/segmentio/kafka-go"
)

// Progress is how far a consumer group has come through a topic: the
// readings produced (the sum of the partitions' end offsets less their
// first offsets) and the readings the group committed, which the ingester
// does only once they are stored.
type Progress struct {
	Produced   int64 `json:"produced"`
	Committed  int64 `json:"committed"`
	Partitions int   `json:"partitions"`
	// End is the sum of the partitions' end offsets. It never goes down
	// unless the broker lost acknowledged records.
	End int64 `json:"end"`
}

// Lag is what was produced and not yet committed.
func (p Progress) Lag() int64 { return max(p.Produced-p.Committed, 0) }

// GroupProgress asks the brokers how far group has come through topic.
func GroupProgress(ctx context.Context, kc KafkaConfig, topic, group string) (Progress, error) {
	k, err := kc.resolve()
	if err != nil {
		return Progress{}, err
	}
	parts, err := topicOffsets(ctx, k, topic)
	if err != nil {
		return Progress{}, err
	}
	var p Progress
	ids := make([]int, 0, len(parts))
	first := make(map[int]int64, len(parts))
	for _, po := range parts {
		ids = append(ids, po.Partition)
		first[po.Partition] = po.FirstOffset
		p.Produced += max(po.LastOffset-po.FirstOffset, 0)
		p.End += po.LastOffset
	}
	p.Partitions = len(parts)
	if len(ids) == 0 {
		return p, nil
	}
	res, err := k.client().OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ids}})
	if err != nil {
		return p, fmt.Errorf("committed offsets of group %s: %w", group, err)
	}
	if errors.Is(res.Error, kafka.GroupIdNotFound) {
		return p, nil // nothing committed yet
	}
	if res.Error != nil {
		return p, fmt.Errorf("committed offsets of group %s: %w", group, res.Error)
	}
	for _, c := range res.Topics[topic] {
		if c.Error != nil {
			return p, fmt.Errorf("committed offset of %s/%d in group %s: %w", topic, c.Partition, group, c.Error)
		}
		if c.CommittedOffset > first[c.Partition] {
			p.Committed += c.CommittedOffset - first[c.Partition]
		}
	}
	return p, nil
}
