package sensors

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"golang.org/x/time/rate"
)

// DefaultThreshold is the temperature (°C) above which a reading is an
// alert.
const DefaultThreshold = 30.0

// IngestConfig configures the ingester. Zero values take the defaults
// given.
type IngestConfig struct {
	Kafka        KafkaConfig
	Cassandra    CassandraConfig
	CreateSchema bool // create the keyspace and tables if missing

	Topic           string  // default Topic
	Group           string  // default Group
	DeadLetterTopic string  // default DeadLetterTopic
	LagTopic        string  // default LagTopic
	Threshold       float64 // alert threshold, default DefaultThreshold

	ChunkRows int           // most messages handled (and committed) at once, default 8192
	Linger    time.Duration // how long a chunk waits to fill, default 10 ms
	BatchRows int           // most readings per unlogged batch, default 64
	Writers   int           // batches written at once, default 32
	// MaxRate caps the readings handled per second (0: no cap), so that
	// a demo on one machine shows what scaling ingesters out does.
	MaxRate float64

	SessionTimeout time.Duration // consumer group session, default 10 s
	LagInterval    time.Duration // lag reports, default 5 s
	Progress       time.Duration // progress lines, default 5 s (negative: none)
	// StatsFile, if set, receives the counters and the latency histogram
	// as JSON (StatsFile) every StatsInterval (default 1 s).
	StatsFile     string
	StatsInterval time.Duration
	Backoff       Backoff // retries, default DefaultBackoff
	Logger        *slog.Logger
}

func (c *IngestConfig) defaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Topic, Topic)
	def(&c.Group, Group)
	def(&c.DeadLetterTopic, DeadLetterTopic)
	def(&c.LagTopic, LagTopic)
	if c.Threshold == 0 {
		c.Threshold = DefaultThreshold
	}
	if c.ChunkRows <= 0 {
		c.ChunkRows = 8192
	}
	if c.Linger <= 0 {
		c.Linger = 10 * time.Millisecond
	}
	if c.BatchRows <= 0 {
		c.BatchRows = 64
	}
	if c.Writers <= 0 {
		c.Writers = 32
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.LagInterval <= 0 {
		c.LagInterval = 5 * time.Second
	}
	if c.Progress == 0 {
		c.Progress = 5 * time.Second
	}
	if c.Backoff == (Backoff{}) {
		c.Backoff = DefaultBackoff
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// IngestStats counts what an ingester did.
type IngestStats struct {
	Stored       int64 // readings written (a redelivered one counts again)
	Malformed    int64 // messages sent to the dead-letter topic
	Alerts       int64 // alert rows written
	Batches      int64 // unlogged batches written
	Chunks       int64 // chunks committed
	StoreRetries int64 // store writes retried
}

// sink is where the ingester writes: the CQL store, or a fake in tests.
type sink interface {
	WriteBatch(ctx context.Context, b Batch) error
	WriteAlert(ctx context.Context, r Reading) error
	LastAlert(ctx context.Context, sensor string) (Reading, error)
	Close()
}

// Ingester moves readings from the consumer group into the store. See Run.
type Ingester struct {
	cfg     IngestConfig
	open    func(ctx context.Context, hosts []string) (sink, error) // nil hosts: the configured ones
	kc      *kafkaClient
	log     *slog.Logger
	lag     *LagTracker
	latency Histogram
	alerts  alertBook

	stored, malformed, alertRows, batches, chunks, storeRetries atomic.Int64
	lastStored                                                  atomic.Int64 // unix ns
}

// Snapshot returns the counters, the latency histogram and when readings
// were last stored.
func (in *Ingester) Snapshot() StatsFile {
	return StatsFile{IngestStats: in.Stats(), Latency: in.latency.Snapshot(), LastStored: unixNano(in.lastStored.Load()), Written: time.Now()}
}

func unixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// prepare fills in cfg's defaults and checks its client settings, as both
// ingesters need; nothing is contacted.
func (c *IngestConfig) prepare() (*kafkaClient, error) {
	c.defaults()
	kc, err := c.Kafka.resolve()
	if err != nil {
		return nil, err
	}
	if _, err := c.Cassandra.cluster(); err != nil {
		return nil, err
	}
	return kc, nil
}

// NewIngester checks cfg and returns an ingester; nothing is contacted yet.
func NewIngester(cfg IngestConfig) (*Ingester, error) {
	kc, err := cfg.prepare()
	if err != nil {
		return nil, err
	}
	open := func(ctx context.Context, hosts []string) (sink, error) {
		c := cfg.Cassandra
		if hosts != nil {
			c.Hosts = hosts
		}
		return OpenStore(ctx, c, cfg.CreateSchema)
	}
	return &Ingester{cfg: cfg, open: open, kc: kc, log: cfg.Logger, lag: NewLagTracker(cfg.Group), alerts: alertBook{last: map[string]int64{}}}, nil
}

// Stats returns the counters so far.
func (in *Ingester) Stats() IngestStats {
	return IngestStats{Stored: in.stored.Load(), Malformed: in.malformed.Load(), Alerts: in.alertRows.Load(),
		Batches: in.batches.Load(), Chunks: in.chunks.Load(), StoreRetries: in.storeRetries.Load()}
}

// Latency is the histogram of produce-to-stored times: for each reading,
// from its Kafka timestamp (set by the producer) to the end of the batch
// write that stored it.
func (in *Ingester) Latency() *Histogram { return &in.latency }

// Lag returns the partitions' lag as last seen.
func (in *Ingester) Lag() []PartitionLag { return in.lag.Report(time.Now()) }

// Run consumes until ctx ends, then leaves the group and returns nil (or
// the error that stopped it early). Messages are taken in chunks; a chunk
// is committed only once all its readings are stored (unlogged batches per
// store partition, written in parallel), its alerts written and its
// malformed messages in the dead-letter topic. Every write is retried with
// backoff until it succeeds: while the broker or the store is down the
// ingester waits, and it loses nothing. Stopped or killed mid-chunk, the
// chunk is delivered again and rewritten (idempotent upserts).
func (in *Ingester) Run(ctx context.Context) error {
	cfg := in.cfg
	var store sink
	err := Retry(ctx, cfg.Backoff, in.log, "connect to the store", func(ctx context.Context) error {
		var err error
		store, err = in.open(ctx, nil)
		return err
	})
	if err != nil {
		return stopped(ctx, err)
	}
	redial := newRedialSink(store, in.open, in.log)
	store = redial
	defer store.Close()
	for _, t := range []string{cfg.DeadLetterTopic, cfg.LagTopic} {
		// Auto-creation would do on the embedded broker; a real cluster
		// may have it off. Not fatal: the writes retry.
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := ensureTopic(tctx, in.kc, t, 1); err != nil {
			in.log.Warn("could not create topic (writes to it will retry)", "topic", t, "err", err)
		}
		cancel()
	}

	reader, side := in.newReader(), in.newSideWriter()

	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); in.publishLag(runCtx, side) }()
	go func() {
		defer wg.Done()
		redial.watch(runCtx, cfg.Cassandra.Hosts, resolveEvery, net.DefaultResolver.LookupHost)
	}()
	go func() { defer wg.Done(); in.logProgress(runCtx) }()
	go func() {
		defer wg.Done()
		publishStats(runCtx, cfg.StatsFile, cfg.StatsInterval, in.Snapshot, func(err error) { in.log.Warn("write stats file", "err", err) })
	}()
	defer func() {
		cancel()
		wg.Wait()
		side.Close()
		if err := reader.Close(); err != nil {
			in.log.Debug("close kafka reader", "err", err)
		}
	}()

	var limit *rate.Limiter
	if cfg.MaxRate > 0 {
		limit = rate.NewLimiter(rate.Limit(cfg.MaxRate), cfg.ChunkRows)
	}
	buf := make([]kafka.Message, 0, cfg.ChunkRows) // reused: a chunk is done with when committed
	for {
		t0 := time.Now()
		chunk := in.collect(runCtx, reader, buf[:0])
		if len(chunk) == 0 {
			return nil // ctx ended
		}
		if limit != nil {
			if err := limit.WaitN(runCtx, len(chunk)); err != nil {
				return stopped(ctx, err) // the chunk is not committed
			}
		}
		t1 := time.Now()
		if err := in.handle(runCtx, store, side, chunk); err != nil {
			return stopped(ctx, err) // the chunk is not committed
		}
		if err := in.commit(runCtx, reader, chunk); err != nil {
			return stopped(ctx, err)
		}
		t2 := time.Now()
		in.log.Debug("chunk", "messages", len(chunk), "collect_ms", t1.Sub(t0).Milliseconds(), "write_and_commit_ms", t2.Sub(t1).Milliseconds())
	}
}

// newReader is the consumer group's reader.
func (in *Ingester) newReader() *kafka.Reader {
	cfg := in.cfg
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:               in.kc.brokers,
		GroupID:               cfg.Group,
		Topic:                 cfg.Topic,
		Dialer:                in.kc.dialer(),
		QueueCapacity:         cfg.ChunkRows,
		MinBytes:              1,
		MaxBytes:              8 << 20,
		MaxWait:               100 * time.Millisecond,
		StartOffset:           kafka.FirstOffset, // a new group starts at the beginning: nothing produced is skipped
		HeartbeatInterval:     time.Second,
		SessionTimeout:        cfg.SessionTimeout,
		RebalanceTimeout:      cfg.SessionTimeout,
		JoinGroupBackoff:      500 * time.Millisecond,
		ReadBackoffMin:        100 * time.Millisecond,
		ReadBackoffMax:        time.Second,
		CommitInterval:        0, // synchronous commits, only ever of stored readings
		ErrorLogger:           kafka.LoggerFunc(func(f string, a ...any) { in.log.Debug("kafka reader: " + fmt.Sprintf(f, a...)) }),
		WatchPartitionChanges: true,
	})
}

// newSideWriter writes to the dead-letter and lag topics (each message
// names its topic), through a fresh writer after a failed write (a broker
// that moved: see renewingWriter).
func (in *Ingester) newSideWriter() *renewingWriter {
	return newRenewingWriter(func() *kafka.Writer {
		return &kafka.Writer{
			Addr:                   kafka.TCP(in.kc.brokers...),
			Balancer:               &kafka.Murmur2Balancer{},
			RequiredAcks:           kafka.RequireAll,
			BatchTimeout:           time.Millisecond,
			MaxAttempts:            1,
			Transport:              in.kc.transport(),
			AllowAutoTopicCreation: true,
		}
	})
}

// sessionWake returns what tells a retry of a write to store to go at
// once: a new session (the store moved). Nil for a sink without sessions.
func sessionWake(store sink) func() <-chan struct{} {
	if w, ok := store.(interface{ newSession() <-chan struct{} }); ok {
		return w.newSession
	}
	return nil
}

// commit commits a written chunk: per partition, the offset after its
// last message. Retried until it succeeds or ctx ends.
func (in *Ingester) commit(ctx context.Context, r *kafka.Reader, chunk []kafka.Message) error {
	points := CommitPoints(chunk)
	err := Retry(ctx, in.cfg.Backoff, in.log, "commit offsets", func(ctx context.Context) error {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return r.CommitMessages(cctx, points...)
	})
	if err != nil {
		return err
	}
	for _, m := range points {
		in.lag.Committed(TopicPartition{m.Topic, m.Partition}, m.Offset+1)
	}
	in.chunks.Add(1)
	return nil
}

// stopped is what Run returns when err stopped it: nil if ctx ended (a
// normal stop), else err.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("ingest: %w", err)
}

// idleGap ends a chunk early: no message for this long means the reader's
// queue is empty (the ingester is keeping up), so waiting out Linger would
// only add latency. Under a backlog the queue never runs dry and chunks
// fill up.
const idleGap = time.Millisecond

// collect waits for a first message, then appends more to chunk until
// ChunkRows, until Linger has passed since the first, or until no message
// came for idleGap. Empty when ctx ended. (The reader keeps fetching in the
// background, up to ChunkRows messages ahead, while a chunk is written.)
// Fetch errors (the broker down, a rebalance) are logged and retried: the
// reader reconnects by itself.
func (in *Ingester) collect(ctx context.Context, r *kafka.Reader, chunk []kafka.Message) []kafka.Message {
	lctx, cancel := context.WithCancel(ctx) // cancelled when the chunk is to go
	defer cancel()
	var linger, idle *time.Timer
	defer func() {
		if linger != nil {
			linger.Stop()
			idle.Stop()
		}
	}()
	attempt := 0
	for len(chunk) < in.cfg.ChunkRows {
		m, err := r.FetchMessage(lctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if lctx.Err() != nil {
				return chunk // time to go
			}
			d := in.cfg.Backoff.Delay(attempt)
			in.log.Warn("fetch from kafka failed, retrying", "in", d, "err", err)
			attempt++
			if !sleepCtx(lctx, d) && ctx.Err() != nil {
				return nil
			}
			continue
		}
		attempt = 0
		in.lag.Fetched(TopicPartition{m.Topic, m.Partition}, m.Offset, m.HighWaterMark)
		if len(chunk) == 0 {
			linger = time.AfterFunc(in.cfg.Linger, cancel)
			idle = time.AfterFunc(idleGap, cancel)
		} else {
			idle.Reset(idleGap)
		}
		chunk = append(chunk, m)
	}
	return chunk
}

// handle stores a chunk: readings in batches, alerts, malformed messages
// to the dead-letter topic. It returns only when all of it is written, or
// with ctx's error.
func (in *Ingester) handle(ctx context.Context, store sink, side messageWriter, chunk []kafka.Message) error {
	readings := make([]Stamped, 0, len(chunk))
	var dead []kafka.Message
	for _, m := range chunk {
		r, err := Decode(m.Value)
		if err != nil {
			dead = append(dead, deadLetter(in.cfg.DeadLetterTopic, m, err))
			continue
		}
		readings = append(readings, Stamped{Reading: r, Produced: m.Time})
	}
	if len(dead) > 0 {
		in.log.Warn("malformed messages to the dead-letter topic", "count", len(dead), "topic", in.cfg.DeadLetterTopic,
			"first", string(headerValue(dead[0], HeaderError)))
		if _, _, err := writeAll(ctx, side, in.cfg.DeadLetterTopic, dead, in.cfg.Backoff, in.log); err != nil {
			return err
		}
		in.malformed.Add(int64(len(dead)))
	}

	wake := sessionWake(store)
	batches := Batches(readings, in.cfg.BatchRows)
	work := make(chan Batch)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for range min(in.cfg.Writers, len(batches)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				attempts := 0
				err := retryWake(ctx, in.cfg.Backoff, wake, in.log, "write batch", func(ctx context.Context) error {
					attempts++
					return store.WriteBatch(ctx, b)
				})
				if err != nil {
					cancel(err) // permanent, or ctx ended; drain
					continue
				}
				in.storeRetries.Add(int64(attempts - 1))
				now := time.Now()
				for _, p := range b.Produced {
					in.latency.Add(now.Sub(p))
				}
				in.stored.Add(int64(len(b.Readings)))
				in.batches.Add(1)
				in.lastStored.Store(now.UnixNano())
			}
		}()
	}
feed:
	for _, b := range batches {
		select {
		case work <- b:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return in.writeAlerts(ctx, store, Alerts(readings, in.cfg.Threshold))
}

// logProgress logs a rate line every Progress interval in which
// something was stored or dead-lettered.
func (in *Ingester) logProgress(ctx context.Context) {
	if in.cfg.Progress < 0 {
		return
	}
	t := time.NewTicker(in.cfg.Progress)
	defer t.Stop()
	last, lastSt := time.Now(), in.Stats()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			st := in.Stats()
			if st == lastSt {
				continue
			}
			in.log.Info("ingesting", "stored", st.Stored, "rate_per_s", int(float64(st.Stored-lastSt.Stored)/now.Sub(last).Seconds()),
				"malformed", st.Malformed, "lag", Total(in.lag.Report(now)),
				"p99_ms", fmt.Sprintf("%.1f", float64(in.latency.Quantile(0.99))/1e6), "store_retries", st.StoreRetries)
			last, lastSt = now, st
		}
	}
}
