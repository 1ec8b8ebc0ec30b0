package sensors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"

	embedded "github.com/ballast-io/ballast/workloads/kafka"
)

// These tests run the pipeline's Kafka side for real (the embedded broker,
// kafka-go's consumer group) against an in-memory store, so they can make
// the store fail or hang on purpose. The CQL side is tested end to end in
// cmd/ballast (workload_test.go).

// memStore is a store in memory that can fail or block writes.
type memStore struct {
	mu     sync.Mutex
	rows   map[PartitionKey]map[int64]float64
	alerts map[string]Reading
	writes int
	// failFirst makes the first writes fail; blockAfter blocks every
	// write after that many until unblock is closed.
	failFirst  int
	blockAfter int
	unblock    chan struct{}
	written    atomic.Int64 // readings written, duplicates included
}

func newMemStore() *memStore {
	return &memStore{rows: map[PartitionKey]map[int64]float64{}, alerts: map[string]Reading{}, blockAfter: -1}
}

func (m *memStore) WriteBatch(ctx context.Context, b Batch) error {
	m.mu.Lock()
	m.writes++
	n := m.writes
	m.mu.Unlock()
	if n <= m.failFirst {
		return errors.New("store down (test)")
	}
	if m.blockAfter >= 0 && n > m.blockAfter+m.failFirst {
		select {
		case <-m.unblock:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	day, ok := m.rows[b.Partition]
	if !ok {
		day = map[int64]float64{}
		m.rows[b.Partition] = day
	}
	for _, r := range b.Readings {
		if r.SensorID != b.Partition.SensorID || !r.Day().Equal(b.Partition.Day) {
			return fmt.Errorf("reading %+v in a batch of %+v", r, b.Partition)
		}
		day[r.Time.UnixMilli()] = r.Temperature
	}
	m.written.Add(int64(len(b.Readings)))
	return nil
}

func (m *memStore) WriteAlert(_ context.Context, r Reading) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.alerts[r.SensorID] = r
	return nil
}

func (m *memStore) LastAlert(_ context.Context, sensor string) (Reading, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.alerts[sensor]
	if !ok {
		return Reading{}, ErrNoAlert
	}
	return r, nil
}

func (m *memStore) ReadDay(_ context.Context, p PartitionKey) (map[int64]float64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[int64]float64{}
	for k, v := range m.rows[p] {
		out[k] = v
	}
	return out, nil
}

func (m *memStore) Close() {}

func (m *memStore) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, d := range m.rows {
		n += len(d)
	}
	return n
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("SENSORS_TEST_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

func startBroker(t *testing.T) string {
	t.Helper()
	b, err := embedded.Start(embedded.Config{Dir: filepath.Join(t.TempDir(), "kafka"), Listen: "127.0.0.1:0",
		Topics: []embedded.Topic{{Name: Topic, Partitions: 6}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addr()
}

// committed returns the group's committed offset per partition of topic.
func committed(t *testing.T, addr, group, topic string) map[int]int64 {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	resp, err := cl.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0, 1, 2, 3, 4, 5}}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[topic] {
		out[p.Partition] = p.CommittedOffset
	}
	return out
}

// endOffsets returns the offset after the last record of each partition.
func endOffsets(t *testing.T, addr, topic string) map[int]int64 {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	var reqs []kafka.OffsetRequest
	for p := range 6 {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	resp, err := cl.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[topic] {
		out[p.Partition] = p.LastOffset
	}
	return out
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func runIngester(t *testing.T, in *Ingester) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("ingester: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func newTestIngester(t *testing.T, addr string, store *memStore) *Ingester {
	t.Helper()
	in, err := NewIngester(IngestConfig{
		Kafka: KafkaConfig{Brokers: []string{addr}}, Cassandra: CassandraConfig{Hosts: []string{"unused"}},
		SessionTimeout: 6 * time.Second, LagInterval: 200 * time.Millisecond, Progress: -1,
		Backoff: Backoff{Min: time.Millisecond, Max: 20 * time.Millisecond}, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	in.open = func(context.Context, []string) (sink, error) { return store, nil }
	return in
}

// TestIngestKafka: readings and malformed messages through the embedded
// broker and a consumer group into a store whose first writes fail. Every
// reading ends up stored, each malformed message in the dead-letter topic
// with where it came from, the group's offsets at the end of every
// partition, lag reports in the lag topic, and the verifier agrees.
func TestIngestKafka(t *testing.T) {
	addr := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 20000
	st, err := Produce(ctx, ProducerConfig{Kafka: KafkaConfig{Brokers: []string{addr}}, Sensors: 50, Count: n, Seed: 1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if st.Produced != n {
		t.Fatalf("produced %d, want %d", st.Produced, n)
	}
	bad := []string{`{"machineid":"sensor-0001"}`, `garbage`, `{"machineid":"x","temperature":1,"eventdate":"2026-01-01T00:00:00.0001Z"}`}
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: Topic, BatchTimeout: time.Millisecond}
	for _, b := range bad {
		if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("bad"), Value: []byte(b)}); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()

	store := newMemStore()
	store.failFirst = 25
	in := newTestIngester(t, addr, store)
	stop := runIngester(t, in)
	waitFor(t, "all readings stored", time.Minute, func() bool { return store.count() == n })
	end := endOffsets(t, addr, Topic)
	waitFor(t, "offsets committed to the end", 30*time.Second, func() bool {
		c := committed(t, addr, Group, Topic)
		for p, e := range end {
			if c[p] != e {
				return false
			}
		}
		return true
	})
	time.Sleep(300 * time.Millisecond) // a lag report after the last commit
	stop()

	s := in.Stats()
	if s.Malformed != int64(len(bad)) {
		t.Errorf("malformed %d, want %d", s.Malformed, len(bad))
	}
	if s.StoreRetries < 25 {
		t.Errorf("store retries %d, want at least the 25 failed writes", s.StoreRetries)
	}
	if in.Latency().Count() < n {
		t.Errorf("latency samples %d, want %d", in.Latency().Count(), n)
	}
	if len(store.alerts) == 0 {
		t.Error("no alerts recorded (the fleet's spikes go over the threshold)")
	}

	// The verifier reads the topic and the same store: nothing missing,
	// every malformed message dead-lettered.
	rep, err := verify(ctx, VerifyConfig{Kafka: KafkaConfig{Brokers: []string{addr}}, Logger: testLogger(t)},
		func(context.Context) (dayReader, error) { return store, nil })
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Total.Produced != n || rep.Total.Stored != n || rep.Malformed != len(bad) || rep.DeadLettered != len(bad) {
		t.Fatalf("verify: ok %v produced %d stored %d malformed %d dead-lettered %d", rep.OK, rep.Total.Produced, rep.Total.Stored, rep.Malformed, rep.DeadLettered)
	}
	if len(rep.Sensors) != 50 {
		t.Errorf("verify: %d sensors, want 50", len(rep.Sensors))
	}

	// Lag reports: the last one per partition says 0.
	last := map[string]PartitionLag{}
	_, _, err = readTopic(ctx, mustResolve(t, addr), LagTopic, func(m kafka.Message) {
		var l PartitionLag
		if err := jsonUnmarshal(m.Value, &l); err != nil {
			t.Errorf("lag message %s: %v", m.Value, err)
			return
		}
		if old, ok := last[l.Key()]; !ok || l.Time.After(old.Time) {
			last[l.Key()] = l
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != 6 {
		t.Fatalf("lag reports for %d partitions, want 6", len(last))
	}
	for k, l := range last {
		if l.Lag != 0 || l.Group != Group {
			t.Errorf("last lag report of %s: %+v, want lag 0", k, l)
		}
	}

	// A store that lost readings fails the verification, naming them.
	for pk, rows := range store.rows {
		for ms := range rows {
			delete(rows, ms)
			rep, err := verify(ctx, VerifyConfig{Kafka: KafkaConfig{Brokers: []string{addr}}},
				func(context.Context) (dayReader, error) { return store, nil })
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || rep.Total.Missing != 1 {
				t.Fatalf("one reading of %s deleted: ok %v missing %d", pk.SensorID, rep.OK, rep.Total.Missing)
			}
			return
		}
	}
}

// TestIngestCommitsOnlyWhatIsStored: the store hangs in the middle of the
// run; what the group has committed by then is all stored, and a new
// ingester (the old one stopped mid-chunk, as if killed) picks up the rest.
func TestIngestCommitsOnlyWhatIsStored(t *testing.T) {
	addr := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 30000
	if _, err := Produce(ctx, ProducerConfig{Kafka: KafkaConfig{Brokers: []string{addr}}, Sensors: 50, Count: n, Seed: 2}); err != nil {
		t.Fatal(err)
	}
	store := newMemStore()
	store.blockAfter = 300 // batches: a couple of 8192-message chunks get through
	store.unblock = make(chan struct{})
	in := newTestIngester(t, addr, store)
	stop := runIngester(t, in)
	waitFor(t, "the store to hang", time.Minute, func() bool {
		store.mu.Lock()
		defer store.mu.Unlock()
		return store.writes > 300 // 300 through, then the writes hang
	})
	time.Sleep(200 * time.Millisecond)
	c := committed(t, addr, Group, Topic)
	stop() // mid-chunk: the hanging writes are abandoned, not committed
	var committedTotal int64
	for _, off := range c {
		if off > 0 {
			committedTotal += off
		}
	}
	stored := store.count()
	if committedTotal == 0 {
		t.Fatal("nothing committed before the store hung: the test proves nothing")
	}
	if committedTotal > int64(stored) {
		t.Fatalf("%d messages committed but only %d readings stored", committedTotal, stored)
	}
	if stored >= n {
		t.Fatalf("everything stored before the hang (%d): the test proves nothing", stored)
	}

	close(store.unblock)
	store.blockAfter = -1
	in2 := newTestIngester(t, addr, store)
	runIngester(t, in2)
	waitFor(t, "the rest stored by a new ingester", time.Minute, func() bool { return store.count() == n })
}

func mustResolve(t *testing.T, addr string) *kafkaClient {
	kc, err := KafkaConfig{Brokers: []string{addr}}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
