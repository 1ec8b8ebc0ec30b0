package sensors

import "time"

// PartitionKey is a partition of temperature_by_day: one sensor's day.
type PartitionKey struct {
	SensorID string
	Day      time.Time // UTC midnight
}

// Batch is what one unlogged batch writes: readings of one partition.
type Batch struct {
	Partition PartitionKey
	Readings  []Reading
	Produced  []time.Time // when each reading was produced (its Kafka timestamp), for latency
}

// Stamped is a reading with the time it was produced.
type Stamped struct {
	Reading
	Produced time.Time
}

// Batches groups readings by store partition, in the order the partitions
// first appear, and cuts each group into batches of at most maxRows
// readings (maxRows <= 0: one batch per partition). A reading whose key
// (sensor, millisecond) appears again later in the input is dropped: the
// later one is what sequential upserts would leave, and a batch need not
// write one row twice.
func Batches(in []Stamped, maxRows int) []Batch {
	last := make(map[Key]int, len(in)) // key -> index of its last occurrence
	for i, r := range in {
		last[r.Key()] = i
	}
	order := []PartitionKey{}
	groups := map[PartitionKey][]int{}
	for i, r := range in {
		if last[r.Key()] != i {
			continue
		}
		pk := PartitionKey{SensorID: r.SensorID, Day: r.Day()}
		if _, ok := groups[pk]; !ok {
			order = append(order, pk)
		}
		groups[pk] = append(groups[pk], i)
	}
	var out []Batch
	for _, pk := range order {
		idx := groups[pk]
		for len(idx) > 0 {
			n := len(idx)
			if maxRows > 0 && n > maxRows {
				n = maxRows
			}
			b := Batch{Partition: pk, Readings: make([]Reading, n), Produced: make([]time.Time, n)}
			for j, i := range idx[:n] {
				b.Readings[j], b.Produced[j] = in[i].Reading, in[i].Produced
			}
			out = append(out, b)
			idx = idx[n:]
		}
	}
	return out
}
