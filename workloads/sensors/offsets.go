package sensors

import (
	"sort"

	kafka "github.com/segmentio/kafka-go"
)

// TopicPartition names a Kafka partition.
type TopicPartition struct {
	Topic     string
	Partition int
}

// CommitPoints returns, for every partition msgs come from, the message
// with the highest offset: committing it commits everything before it in
// that partition. The ingester calls it on a chunk only once every message
// of the chunk is stored or dead-lettered, so nothing is committed that is
// not written (at-least-once; a redelivered reading is an idempotent
// upsert). Sorted by topic and partition.
func CommitPoints(msgs []kafka.Message) []kafka.Message {
	top := map[TopicPartition]int{}
	for i, m := range msgs {
		tp := TopicPartition{m.Topic, m.Partition}
		if j, ok := top[tp]; !ok || m.Offset > msgs[j].Offset {
			top[tp] = i
		}
	}
	out := make([]kafka.Message, 0, len(top))
	for _, i := range top {
		out = append(out, msgs[i])
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Topic != out[b].Topic {
			return out[a].Topic < out[b].Topic
		}
		return out[a].Partition < out[b].Partition
	})
	return out
}
