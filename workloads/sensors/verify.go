package sensors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

// VerifyConfig configures a verification.
type VerifyConfig struct {
	Kafka           KafkaConfig
	Cassandra       CassandraConfig
	Topic           string // default Topic
	DeadLetterTopic string // default DeadLetterTopic
	// Wait keeps re-reading the store, while readings are missing, for up
	// to this long (an ingester still catching up).
	Wait        time.Duration
	Concurrency int // store partitions read at once, default 16
	// Threshold is the ingester's alert threshold (default
	// DefaultThreshold): each sensor's last reading over it must be in
	// last_alert_per_sensor.
	Threshold float64
	Logger    *slog.Logger
}

// SensorResult is one sensor's line of the report.
type SensorResult struct {
	SensorID string `json:"sensor_id"`
	Messages int    `json:"messages"` // messages in the topic (a producer's retry can repeat one)
	Produced int    `json:"produced"` // distinct readings: (sensor, millisecond) pairs
	Stored   int    `json:"stored"`   // of those, stored with the produced temperature
	Missing  int    `json:"missing"`  // not stored
	// Mismatched readings are stored with another temperature.
	Mismatched int `json:"mismatched"`
	// Overwritten counts readings lost because another reading of the
	// same sensor in the same millisecond, with another temperature, is
	// in the topic: the store keeps one row per millisecond.
	Overwritten int `json:"overwritten"`
	// Extra rows in the sensor's stored days that the topic does not hold
	// (an earlier run's readings, say): reported, not an error.
	Extra        int    `json:"extra"`
	FirstMissing string `json:"first_missing,omitempty"` // event time of the earliest missing reading
}

// Lost is how many of the sensor's readings are not as produced in the
// store.
func (s SensorResult) Lost() int { return s.Missing + s.Mismatched + s.Overwritten }

// VerifyReport is the outcome of a verification.
type VerifyReport struct {
	Topic      string `json:"topic"`
	Partitions int    `json:"partitions"`
	Messages   int64  `json:"messages"` // in the topic when the verification started
	// Malformed messages in the topic, and of those the ones the
	// dead-letter topic does not hold.
	Malformed       int            `json:"malformed"`
	DeadLettered    int            `json:"dead_lettered"`
	NotDeadLettered int            `json:"not_dead_lettered"`
	Sensors         []SensorResult `json:"sensors"`
	Total           SensorResult   `json:"total"`
	// Alerts is the number of sensors with a reading over the threshold;
	// WrongAlerts lists those whose last_alert_per_sensor row is missing
	// or older than their last such reading.
	Alerts      int      `json:"alerts"`
	WrongAlerts []string `json:"wrong_alerts,omitempty"`
	OK          bool     `json:"ok"`
}

// produced is what the topic holds: per sensor, per millisecond.
type produced map[string]map[int64]*cell

type cell struct {
	temp     float64
	messages int
	others   []float64 // other temperatures seen for this millisecond
}

// has reports whether t is one of the cell's temperatures.
func (c *cell) has(t float64) bool {
	if t == c.temp {
		return true
	}
	for _, o := range c.others {
		if o == t {
			return true
		}
	}
	return false
}

func (p produced) add(r Reading) {
	m, ok := p[r.SensorID]
	if !ok {
		m = map[int64]*cell{}
		p[r.SensorID] = m
	}
	ms := r.Time.UnixMilli()
	c, ok := m[ms]
	if !ok {
		m[ms] = &cell{temp: r.Temperature, messages: 1}
		return
	}
	c.messages++
	if !c.has(r.Temperature) {
		c.others = append(c.others, r.Temperature)
	}
}

// lastAlerts returns each sensor's latest reading over threshold.
func (p produced) lastAlerts(threshold float64) map[string]Reading {
	out := map[string]Reading{}
	for s, m := range p {
		for ms, c := range m {
			for _, t := range append([]float64{c.temp}, c.others...) {
				if t <= threshold {
					continue
				}
				if old, ok := out[s]; !ok || ms > old.Time.UnixMilli() {
					out[s] = Reading{SensorID: s, Temperature: t, Time: time.UnixMilli(ms).UTC()}
				}
			}
		}
	}
	return out
}

// alertOK reports whether the stored alert (ok false: none) records the
// expected one. A newer stored alert (from readings outside the topic) is
// accepted; an older or missing one is not.
func alertOK(want Reading, got Reading, ok bool) bool {
	switch {
	case !ok:
		return false
	case got.Time.UnixMilli() > want.Time.UnixMilli():
		return true
	default:
		return got.Time.UnixMilli() == want.Time.UnixMilli() && got.Temperature == want.Temperature
	}
}

// partitions lists the store partitions the produced readings fall in.
func (p produced) partitions() []PartitionKey {
	seen := map[PartitionKey]bool{}
	var out []PartitionKey
	for s, m := range p {
		for ms := range m {
			pk := PartitionKey{SensorID: s, Day: Reading{Time: time.UnixMilli(ms)}.Day()}
			if !seen[pk] {
				seen[pk] = true
				out = append(out, pk)
			}
		}
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].SensorID != out[b].SensorID {
			return out[a].SensorID < out[b].SensorID
		}
		return out[a].Day.Before(out[b].Day)
	})
	return out
}

// Compare checks every produced reading against the stored rows of its
// partition and returns a line per sensor (sorted) and the total.
func Compare(p produced, stored map[PartitionKey]map[int64]float64) ([]SensorResult, SensorResult) {
	ids := make([]string, 0, len(p))
	for s := range p {
		ids = append(ids, s)
	}
	sort.Strings(ids)
	var out []SensorResult
	total := SensorResult{SensorID: "total"}
	for _, id := range ids {
		res := SensorResult{SensorID: id}
		first := int64(1<<63 - 1)
		days := map[PartitionKey]bool{}
		for ms, c := range p[id] {
			pk := PartitionKey{SensorID: id, Day: Reading{Time: time.UnixMilli(ms)}.Day()}
			days[pk] = true
			res.Messages += c.messages
			res.Produced++
			res.Overwritten += len(c.others)
			got, ok := stored[pk][ms]
			switch {
			case !ok:
				res.Missing++
				first = min(first, ms)
			case !c.has(got):
				res.Mismatched++
			default:
				res.Stored++
			}
		}
		for pk := range days {
			for ms := range stored[pk] {
				if _, ok := p[id][ms]; !ok {
					res.Extra++
				}
			}
		}
		if res.Missing > 0 {
			res.FirstMissing = time.UnixMilli(first).UTC().Format(TimeLayout)
		}
		out = append(out, res)
		total.Messages += res.Messages
		total.Produced += res.Produced
		total.Stored += res.Stored
		total.Missing += res.Missing
		total.Mismatched += res.Mismatched
		total.Overwritten += res.Overwritten
		total.Extra += res.Extra
	}
	return out, total
}

// source identifies a message in the topic.
type source struct {
	partition int
	offset    int64
}

// Verify reads the topic from its first offset to the end offsets it finds
// when it starts (a reader of its own, not the consumer group), then reads
// each stored partition the readings fall in and compares them reading by
// reading. Malformed messages must be in the dead-letter topic. The
// report's OK is false if any reading is missing, stored with another
// temperature or overwritten, a malformed message was not dead-lettered,
// or a sensor's last alert is not its last reading over the threshold.
func Verify(ctx context.Context, cfg VerifyConfig) (VerifyReport, error) {
	if _, err := cfg.Cassandra.cluster(); err != nil {
		return VerifyReport{}, err // before the long read of the topic
	}
	return verify(ctx, cfg, func(ctx context.Context) (dayReader, error) { return OpenStore(ctx, cfg.Cassandra, false) })
}

// dayReader reads the store: the CQL store, or a fake in tests.
type dayReader interface {
	ReadDay(ctx context.Context, p PartitionKey) (map[int64]float64, error)
	LastAlert(ctx context.Context, sensor string) (Reading, error)
	Close()
}

func verify(ctx context.Context, cfg VerifyConfig, open func(context.Context) (dayReader, error)) (VerifyReport, error) {
	if cfg.Topic == "" {
		cfg.Topic = Topic
	}
	if cfg.DeadLetterTopic == "" {
		cfg.DeadLetterTopic = DeadLetterTopic
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.Threshold == 0 {
		cfg.Threshold = DefaultThreshold
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kc, err := cfg.Kafka.resolve()
	if err != nil {
		return VerifyReport{}, err
	}
	rep := VerifyReport{Topic: cfg.Topic}
	prod := produced{}
	malformed := map[source]bool{}
	var mu sync.Mutex
	n, parts, err := readTopic(ctx, kc, cfg.Topic, func(m kafka.Message) {
		r, err := Decode(m.Value)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			malformed[source{m.Partition, m.Offset}] = true
			return
		}
		prod.add(r)
	})
	if err != nil {
		return rep, err
	}
	rep.Messages, rep.Partitions, rep.Malformed = n, parts, len(malformed)
	log.Info("read the topic", "topic", cfg.Topic, "messages", n, "partitions", parts, "sensors", len(prod), "malformed", len(malformed))

	if len(malformed) > 0 {
		dead := map[source]bool{}
		_, _, err := readTopic(ctx, kc, cfg.DeadLetterTopic, func(m kafka.Message) {
			if string(headerValue(m, HeaderTopic)) != cfg.Topic {
				return
			}
			p, err1 := strconv.Atoi(string(headerValue(m, HeaderPartition)))
			o, err2 := strconv.ParseInt(string(headerValue(m, HeaderOffset)), 10, 64)
			if err1 == nil && err2 == nil {
				mu.Lock()
				dead[source{p, o}] = true
				mu.Unlock()
			}
		})
		if err != nil && !errors.Is(err, kafka.UnknownTopicOrPartition) {
			return rep, fmt.Errorf("read dead-letter topic: %w", err)
		}
		for s := range malformed {
			if dead[s] {
				rep.DeadLettered++
			}
		}
		rep.NotDeadLettered = rep.Malformed - rep.DeadLettered
	}

	store, err := open(ctx)
	if err != nil {
		return rep, err
	}
	defer store.Close()
	pks := prod.partitions()
	stored := map[PartitionKey]map[int64]float64{}
	deadline := time.Now().Add(cfg.Wait)
	for {
		if err := readDays(ctx, store, pks, cfg.Concurrency, stored); err != nil {
			return rep, err
		}
		rep.Sensors, rep.Total = Compare(prod, stored)
		if rep.Total.Missing == 0 || time.Now().After(deadline) {
			break
		}
		log.Info("readings missing, waiting for the ingester", "missing", rep.Total.Missing, "left", time.Until(deadline).Round(time.Second))
		if !sleepCtx(ctx, 2*time.Second) {
			return rep, ctx.Err()
		}
		// Re-read only the partitions still missing readings.
		pks = missingDays(prod, stored)
	}
	alerts := prod.lastAlerts(cfg.Threshold)
	rep.Alerts = len(alerts)
	for s, want := range alerts {
		got, err := store.LastAlert(ctx, s)
		if err != nil && !errors.Is(err, ErrNoAlert) {
			return rep, err
		}
		if !alertOK(want, got, err == nil) {
			rep.WrongAlerts = append(rep.WrongAlerts, s)
		}
	}
	sort.Strings(rep.WrongAlerts)
	rep.OK = rep.Total.Lost() == 0 && rep.NotDeadLettered == 0 && len(rep.WrongAlerts) == 0
	return rep, nil
}

// missingDays lists the store partitions with a produced reading not stored.
func missingDays(p produced, stored map[PartitionKey]map[int64]float64) []PartitionKey {
	var out []PartitionKey
	for _, pk := range p.partitions() {
		for ms := range p[pk.SensorID] {
			day := Reading{Time: time.UnixMilli(ms)}.Day()
			if !day.Equal(pk.Day) {
				continue
			}
			if _, ok := stored[pk][ms]; !ok {
				out = append(out, pk)
				break
			}
		}
	}
	return out
}

// readDays reads the partitions pks, concurrency at a time, into stored.
func readDays(ctx context.Context, store dayReader, pks []PartitionKey, concurrency int, stored map[PartitionKey]map[int64]float64) error {
	var mu sync.Mutex
	var firstErr error
	work := make(chan PartitionKey)
	var wg sync.WaitGroup
	for range min(concurrency, len(pks)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pk := range work {
				rows, err := store.ReadDay(ctx, pk)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					stored[pk] = rows
				}
				mu.Unlock()
			}
		}()
	}
	for _, pk := range pks {
		work <- pk
	}
	close(work)
	wg.Wait()
	return firstErr
}

// topicOffsets returns topic's partitions with their first and end
// offsets (none if it has no partitions), or the first error the broker
// reports for the topic or one of its partitions.
func topicOffsets(ctx context.Context, kc *kafkaClient, topic string) ([]kafka.PartitionOffsets, error) {
	cl := kc.client()
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of topic %s: %w", topic, err)
	}
	if len(md.Topics) != 1 {
		return nil, fmt.Errorf("metadata of topic %s: %d topics in the answer", topic, len(md.Topics))
	}
	if err := md.Topics[0].Error; err != nil {
		return nil, fmt.Errorf("topic %s: %w", topic, err)
	}
	if len(md.Topics[0].Partitions) == 0 {
		return nil, nil
	}
	var reqs []kafka.OffsetRequest
	for _, p := range md.Topics[0].Partitions {
		reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	offs, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("offsets of topic %s: %w", topic, err)
	}
	parts := offs.Topics[topic]
	for _, po := range parts {
		if po.Error != nil {
			return nil, fmt.Errorf("offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
	}
	return parts, nil
}

// readTopic reads every partition of topic from its first offset to the
// end offset it had when readTopic started, calling fn for each message
// (from several goroutines). It returns the number of messages and
// partitions.
func readTopic(ctx context.Context, kc *kafkaClient, topic string, fn func(kafka.Message)) (int64, int, error) {
	parts, err := topicOffsets(ctx, kc, topic)
	if err != nil {
		return 0, 0, err
	}
	var total int64
	var wg sync.WaitGroup
	errs := make([]error, len(parts))
	for i, po := range parts {
		if po.LastOffset <= po.FirstOffset {
			continue
		}
		total += po.LastOffset - po.FirstOffset
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = readPartition(ctx, kc, topic, po, fn)
		}()
	}
	wg.Wait()
	return total, len(parts), errors.Join(errs...)
}

// idleLimit is how long readPartition waits for the next message before it
// gives up.
const idleLimit = 30 * time.Second

func readPartition(ctx context.Context, kc *kafkaClient, topic string, po kafka.PartitionOffsets, fn func(kafka.Message)) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: kc.brokers, Topic: topic, Partition: po.Partition, Dialer: kc.dialer(),
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 100 * time.Millisecond, QueueCapacity: 4096,
	})
	defer r.Close()
	if err := r.SetOffset(po.FirstOffset); err != nil {
		return fmt.Errorf("read %s/%d: %w", topic, po.Partition, err)
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, idleLimit)
		m, err := r.ReadMessage(rctx)
		cancel()
		if err != nil {
			return fmt.Errorf("read %s/%d at offset %d (of %d..%d): %w", topic, po.Partition, r.Offset(), po.FirstOffset, po.LastOffset, err)
		}
		fn(m)
		if m.Offset >= po.LastOffset-1 {
			return nil
		}
	}
}
