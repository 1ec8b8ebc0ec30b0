package sensors

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"

	embedded "github.com/ballast-io/ballast/workloads/kafka"
)

func startLagBroker(t *testing.T) string {
	t.Helper()
	b, err := embedded.Start(embedded.Config{Dir: filepath.Join(t.TempDir(), "kafka"), Listen: "127.0.0.1:0", DefaultPartitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addr()
}

func writeLag(t *testing.T, addr string, reports ...PartitionLag) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: LagTopic, AllowAutoTopicCreation: true, BatchTimeout: time.Millisecond}
	defer w.Close()
	msgs := make([]kafka.Message, len(reports))
	for i, l := range reports {
		msgs[i] = kafka.Message{Key: []byte(l.Key()), Value: l.Encode()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		err := w.WriteMessages(ctx, msgs...)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("write lag reports: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // the topic is being created
	}
}

func waitLag(t *testing.T, w *LagWatcher, want int64, parts int) LagView {
	t.Helper()
	var v LagView
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if v = w.Lag(); v.Lag == want && v.Partitions == parts {
			return v
		}
	}
	t.Fatalf("lag %+v, want %d over %d partitions", v, want, parts)
	return v
}

// TestLagWatcher reads the ingesters' lag reports from the embedded
// broker: it waits for the topic while no ingester has reported, sums the
// partitions, ignores other groups and topics and malformed records, and
// keeps the most advanced report of a partition when a former owner still
// reports an old view after a rebalance.
func TestLagWatcher(t *testing.T) {
	addr := startLagBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	w, err := NewLagWatcher(LagWatchConfig{Kafka: KafkaConfig{Brokers: []string{addr}}, Logger: testLogger(t),
		Backoff: Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	if v := w.Lag(); v.Partitions != 0 || !v.Newest.IsZero() {
		t.Fatalf("lag before any report: %+v", v)
	}
	time.Sleep(300 * time.Millisecond) // Run is waiting for the topic

	now := time.Now().UTC().Truncate(time.Millisecond)
	rep := func(p int, committed, hwm int64, at time.Time) PartitionLag {
		return PartitionLag{Group: Group, Topic: Topic, Partition: p, Committed: committed, HighWaterMark: hwm,
			Lag: max(hwm-max(committed, 0), 0), Time: at}
	}
	writeLag(t, addr,
		rep(0, 100, 150, now), // 50
		rep(1, -1, 30, now),   // nothing committed yet: 30
		rep(2, 500, 500, now), // 0
		PartitionLag{Group: "othergroup", Topic: Topic, Partition: 3, Committed: 0, HighWaterMark: 1e6, Time: now},
		PartitionLag{Group: Group, Topic: "othertopic", Partition: 3, Committed: 0, HighWaterMark: 1e6, Time: now},
	)
	v := waitLag(t, w, 80, 3)
	if !v.Newest.Equal(now) || !v.Oldest.Equal(now) {
		t.Errorf("report times %v..%v, want %v", v.Oldest, v.Newest, now)
	}

	// A malformed record is skipped. Partition 0 moved to another
	// ingester, which reports it further on; the former owner still
	// reports its old view, later.
	func() {
		kw := &kafka.Writer{Addr: kafka.TCP(addr), Topic: LagTopic, BatchTimeout: time.Millisecond}
		defer kw.Close()
		if err := kw.WriteMessages(context.Background(), kafka.Message{Key: []byte("x"), Value: []byte("{not json")}); err != nil {
			t.Fatal(err)
		}
	}()
	later := now.Add(5 * time.Second)
	writeLag(t, addr, rep(0, 400, 420, later), rep(0, 100, 150, later.Add(time.Second)), rep(1, 30, 31, later))
	v = waitLag(t, w, 20+1+0, 3)
	if !v.Newest.Equal(later.Add(time.Second)) || !v.Oldest.Equal(now) {
		t.Errorf("report times %v..%v, want %v..%v", v.Oldest, v.Newest, now, later.Add(time.Second))
	}

	// A watcher started now has the view at once, from the records
	// already in the topic.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	w2, err := NewLagWatcher(LagWatchConfig{Kafka: KafkaConfig{Brokers: []string{addr}}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	done2 := make(chan error, 1)
	go func() { done2 <- w2.Run(ctx2) }()
	waitLag(t, w2, 21, 3)
	cancel2()
	if err := <-done2; err != nil {
		t.Errorf("second watcher: %v", err)
	}
}

func TestNewLagWatcherChecksConfig(t *testing.T) {
	if _, err := NewLagWatcher(LagWatchConfig{}); err == nil {
		t.Error("no brokers: no error")
	}
	if _, err := NewLagWatcher(LagWatchConfig{Kafka: KafkaConfig{Brokers: []string{"nohost"}}}); err == nil {
		t.Error("broker without a port: no error")
	}
}
