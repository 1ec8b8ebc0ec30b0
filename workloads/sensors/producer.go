package sensors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

// ProducerConfig says what to produce and where.
type ProducerConfig struct {
	Kafka   KafkaConfig
	Topic   string // default Topic
	Sensors int
	Prefix  string // sensor id prefix, default "sensor"
	Seed    uint64
	// Rate is readings per second over the whole fleet (0: as fast as
	// the broker takes them, at most 1000 per sensor per second).
	Rate float64
	// Count stops after this many readings (0: until the context ends).
	Count int64
	// Partitions is the partition count the topic is created with if it
	// does not exist (0: the broker's default, or auto-creation).
	Partitions int
	// Progress is how often a progress line is logged (0: every 5 s).
	Progress time.Duration
	Logger   *slog.Logger
	// Backoff between retries of a failed write (zero: DefaultBackoff).
	Backoff Backoff
}

// ProduceStats says what a producer run did.
type ProduceStats struct {
	Produced int64         // readings the broker acknowledged
	Retries  int64         // writes retried after an error
	Elapsed  time.Duration // from the first write to the last acknowledgement
}

// chunkSize is how many readings one WriteMessages call carries.
const chunkSize = 4000

// Produce writes readings of a simulated fleet to the topic until Count
// readings are acknowledged or ctx ends. A failed write is retried with
// backoff until it succeeds (messages the broker did take are not sent
// again), so every reading the fleet emitted is in the topic when Produce
// returns nil; with Count 0 it returns nil when ctx ends.
func Produce(ctx context.Context, cfg ProducerConfig) (ProduceStats, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Topic == "" {
		cfg.Topic = Topic
	}
	if cfg.Rate < 0 || cfg.Count < 0 {
		return ProduceStats{}, errors.New("produce: rate and count cannot be negative")
	}
	if cfg.Backoff == (Backoff{}) {
		cfg.Backoff = DefaultBackoff
	}
	progress := cfg.Progress
	if progress <= 0 {
		progress = 5 * time.Second
	}
	kc, err := cfg.Kafka.resolve()
	if err != nil {
		return ProduceStats{}, err
	}
	fleet, err := NewFleet(cfg.Sensors, cfg.Prefix, cfg.Seed)
	if err != nil {
		return ProduceStats{}, err
	}
	if most := 1000 * float64(cfg.Sensors); cfg.Rate > most {
		log.Warn("the rate is more than the sensors can take (one reading per sensor per millisecond): producing at most that",
			"rate", cfg.Rate, "sensors", cfg.Sensors, "most_per_s", most)
	}
	if cfg.Partitions > 0 {
		if err := Retry(ctx, cfg.Backoff, log, "create topic "+cfg.Topic, func(ctx context.Context) error {
			return ensureTopic(ctx, kc, cfg.Topic, cfg.Partitions)
		}); err != nil {
			return ProduceStats{}, err
		}
	}
	w := newRenewingWriter(func() *kafka.Writer {
		return &kafka.Writer{
			Addr:         kafka.TCP(kc.brokers...),
			Topic:        cfg.Topic,
			Balancer:     &kafka.Murmur2Balancer{}, // the Java client's partitioner: same sensor, same partition
			RequiredAcks: kafka.RequireAll,
			// Per partition. kafka-go allocates a batch's capacity up front,
			// so not much more than a chunk's share of a partition; bytes
			// under the brokers' default message.max.bytes (1 MB).
			BatchSize:              1000,
			BatchBytes:             1 << 20,
			BatchTimeout:           time.Millisecond,
			MaxAttempts:            1, // writeAll retries, each time on a fresh writer
			Transport:              kc.transport(),
			AllowAutoTopicCreation: true,
		}
	})
	defer w.Close()

	// A generator emits readings as the clock and the rate allow; the
	// writer sends whatever has piled up (up to chunkSize) in one call, so
	// batches grow while a write is in flight.
	gctx, stopGen := context.WithCancel(ctx)
	defer stopGen()
	queue := make(chan kafka.Message, 2*chunkSize)
	genErr := make(chan error, 1)
	start := time.Now()
	go func() { genErr <- generate(gctx, fleet, newPacer(cfg.Rate, start), cfg.Count, queue) }()

	var st ProduceStats
	lastLog, lastN := start, int64(0)
	msgs := make([]kafka.Message, 0, chunkSize)
	for {
		msgs = msgs[:0]
		m, ok := <-queue
		if !ok {
			break // generator done: Count reached or ctx ended
		}
		msgs = append(msgs, m)
	drain:
		for len(msgs) < chunkSize {
			select {
			case m, ok := <-queue:
				if !ok {
					break drain
				}
				msgs = append(msgs, m)
			default:
				break drain
			}
		}
		n, retries, err := writeAll(ctx, w, w.Topic(), msgs, cfg.Backoff, log)
		st.Produced += int64(n)
		st.Retries += retries
		if err != nil {
			break // ctx ended
		}
		if t := time.Now(); t.Sub(lastLog) >= progress {
			log.Info("producing", "produced", st.Produced, "rate_per_s", int(float64(st.Produced-lastN)/t.Sub(lastLog).Seconds()),
				"retries", st.Retries)
			lastLog, lastN = t, st.Produced
		}
	}
	stopGen()
	if err := <-genErr; err != nil {
		return st, err
	}
	st.Elapsed = time.Since(start)
	log.Info("produced", "readings", st.Produced, "seconds", fmt.Sprintf("%.1f", st.Elapsed.Seconds()),
		"rate_per_s", int(float64(st.Produced)/max(st.Elapsed.Seconds(), 1e-9)), "retries", st.Retries)
	if cfg.Count > 0 && st.Produced < cfg.Count {
		return st, fmt.Errorf("produce: stopped after %d of %d readings: %w", st.Produced, cfg.Count, context.Cause(ctx))
	}
	return st, nil
}

// generate emits readings of fleet at pace into out, as messages stamped
// with the time they were taken, until count (0: no limit) or ctx ends,
// then closes out.
func generate(ctx context.Context, fleet *Fleet, pace *pacer, count int64, out chan<- kafka.Message) error {
	defer close(out)
	var sent int64
	buf := make([]Reading, 0, 1024)
	for count == 0 || sent < count {
		want := cap(buf)
		if count > 0 {
			want = int(min(int64(want), count-sent))
		}
		now := time.Now()
		want = pace.allow(now, want)
		buf = fleet.Emit(now, want, buf[:0])
		if len(buf) == 0 {
			// The rate, or every sensor has a reading in this
			// millisecond: wait a little.
			if !sleepCtx(ctx, pace.wait(now)) {
				return nil
			}
			continue
		}
		pace.took(len(buf))
		for _, r := range buf {
			v, err := Encode(r)
			if err != nil {
				return fmt.Errorf("produce: %w", err) // the fleet makes only valid readings
			}
			select {
			case out <- kafka.Message{Key: []byte(r.SensorID), Value: v, Time: now}:
			case <-ctx.Done():
				return nil
			}
		}
		sent += int64(len(buf))
	}
	return nil
}

// messageWriter writes messages to Kafka: a *kafka.Writer, or a
// renewingWriter.
type messageWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// writeTimeout bounds one write of a batch: a healthy broker acknowledges
// in milliseconds, even fsyncing; a write in flight to a broker that died
// is abandoned after it.
const writeTimeout = 3 * time.Second

// renewingWriter is a kafka.Writer made anew after a failed write. When
// the broker moves (its task rescheduled to another node, found again by
// its DNS name), the old writer's transport keeps its pooled connections
// and metadata for the dead address: in the demo the producer's writes
// through it stalled for 28 s after the broker was back. A fresh writer
// dials and asks for metadata again.
type renewingWriter struct {
	make func() *kafka.Writer

	mu sync.Mutex
	w  *kafka.Writer
}

func newRenewingWriter(make func() *kafka.Writer) *renewingWriter {
	return &renewingWriter{make: make, w: make()}
}

// Topic is the writer's topic ("" when each message names its own).
func (r *renewingWriter) Topic() string { return r.current().Topic }

func (r *renewingWriter) current() *kafka.Writer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.w
}

// WriteMessages writes msgs within writeTimeout (or ctx's deadline, if
// sooner); after an error other than ctx's cancellation the next write
// goes through a new writer. The old one is closed in the background:
// closing waits for what it still has in flight. Safe for concurrent use.
func (r *renewingWriter) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	w := r.current()
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	err := w.WriteMessages(wctx, msgs...)
	if err != nil && !errors.Is(ctx.Err(), context.Canceled) {
		r.mu.Lock()
		if r.w == w {
			go w.Close()
			r.w = r.make()
		}
		r.mu.Unlock()
	}
	return err
}

// Close closes the current writer.
func (r *renewingWriter) Close() error { return r.current().Close() }

// writeAll writes msgs to topic through w, retrying the ones that failed
// until all are acknowledged or ctx ends. It returns how many were
// acknowledged.
func writeAll(ctx context.Context, w messageWriter, topic string, msgs []kafka.Message, b Backoff, log *slog.Logger) (int, int64, error) {
	pending := msgs
	var retries int64
	done := 0
	err := Retry(ctx, b, log, "write to "+topic, func(ctx context.Context) error {
		err := w.WriteMessages(ctx, pending...)
		if err == nil {
			done += len(pending)
			return nil
		}
		retries++
		var werrs kafka.WriteErrors
		if errors.As(err, &werrs) && len(werrs) == len(pending) {
			var failed []kafka.Message
			for i, e := range werrs {
				if e != nil {
					failed = append(failed, pending[i])
				}
			}
			done += len(pending) - len(failed)
			pending = failed
			if len(failed) == 0 {
				return nil
			}
		}
		return err
	})
	return done, retries, err
}

// pacer spreads readings evenly at a rate: it allows as many as the rate
// has accrued since start.
type pacer struct {
	rate  float64
	start time.Time
	sent  int64
}

func newPacer(rate float64, start time.Time) *pacer { return &pacer{rate: rate, start: start} }

// allow returns how many of want may be sent at now.
func (p *pacer) allow(now time.Time, want int) int {
	if p.rate <= 0 {
		return want
	}
	due := int64(now.Sub(p.start).Seconds()*p.rate) - p.sent
	return int(max(0, min(int64(want), due)))
}

func (p *pacer) took(n int) { p.sent += int64(n) }

// wait is how long to sleep before the next reading is due.
func (p *pacer) wait(now time.Time) time.Duration {
	if p.rate <= 0 {
		return time.Millisecond
	}
	next := p.start.Add(time.Duration(float64(p.sent+1) / p.rate * float64(time.Second)))
	return max(next.Sub(now), time.Millisecond/2)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// ensureTopic creates topic with partitions partitions unless it exists.
func ensureTopic(ctx context.Context, kc *kafkaClient, topic string, partitions int) error {
	resp, err := kc.client().CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: -1}},
	})
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	if err := resp.Errors[topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}
