package autoscale

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"

	embedded "github.com/ballast-io/ballast/workloads/kafka"
	"github.com/ballast-io/ballast/workloads/sensors"
)

// TestAutoscaleSwarm runs the autoscaler end to end: lag reports on the
// embedded broker's partitionlag topic, as the ingesters publish them, a
// sensors.LagWatcher following them, and Run scaling a real Swarm service.
// A burst of lag scales the service out to its max one cool-down at a
// time; once the lag drains, it scales back in to its min.
func TestAutoscaleSwarm(t *testing.T) {
	_, name, _, _ := newTestService(t)
	b, err := embedded.Start(embedded.Config{Dir: filepath.Join(t.TempDir(), "kafka"), Listen: "127.0.0.1:0", DefaultPartitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The ingesters' reports: 6 partitions, every 200 ms, lagPer each;
	// the high watermark grows, the committed offset follows it lagPer
	// behind.
	var lagPer atomic.Int64
	lagPer.Store(10000)
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		w := &kafka.Writer{Addr: kafka.TCP(b.Addr()), Topic: sensors.LagTopic, AllowAutoTopicCreation: true, BatchTimeout: time.Millisecond}
		defer w.Close()
		offset := int64(1e6)
		for ctx.Err() == nil {
			offset += 100
			var msgs []kafka.Message
			for p := range 6 {
				l := sensors.PartitionLag{Group: sensors.Group, Topic: sensors.Topic, Partition: p,
					Committed: offset - lagPer.Load(), HighWaterMark: offset, Time: time.Now()}
				msgs = append(msgs, kafka.Message{Key: []byte(l.Key()), Value: l.Encode()})
			}
			if err := w.WriteMessages(ctx, msgs...); err != nil && ctx.Err() == nil {
				t.Logf("write lag reports: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	lw, err := sensors.NewLagWatcher(sensors.LagWatchConfig{Kafka: sensors.KafkaConfig{Brokers: []string{b.Addr()}}, Logger: testLog(t),
		Backoff: sensors.Backoff{Min: 20 * time.Millisecond, Max: 500 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	watched := make(chan error, 1)
	go func() { watched <- lw.Run(ctx) }()

	sc, err := NewSwarmScaler("", name)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	events := filepath.Join(t.TempDir(), "events.jsonl")
	f, err := os.Create(events)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg := Config{Min: 1, Max: 3, ScaleOutLag: 1000, ScaleOutAfter: time.Second, ScaleInLag: 100, ScaleInAfter: 2 * time.Second,
		ScaleOutStep: 1, ScaleInStep: 1, Cooldown: 3 * time.Second, StaleAfter: 5 * time.Second}
	ran := make(chan error, 1)
	go func() {
		ran <- Run(ctx, Options{Config: cfg, Service: name, Interval: 200 * time.Millisecond, Logger: testLog(t), Events: f},
			WatcherSource(lw), sc)
	}()

	waitReplicas := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if r, err := sc.Replicas(ctx); err == nil && r == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("not scaled to %d replicas in 60 s (lag %+v)", n, lw.Lag())
			}
		}
		waitRunning(t, ctx, sc, n)
	}
	waitReplicas(3) // 60000 behind: out to the max
	lagPer.Store(0)
	waitReplicas(1) // drained: back in to the min

	cancel()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	if err := <-watched; err != nil {
		t.Fatal(err)
	}
	<-reported

	b2, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	got := readEvents(t, bytes.NewBuffer(b2))
	want := []struct {
		kind     string
		from, to int
	}{{EventStart, 1, 1}, {EventScale, 1, 2}, {EventScale, 2, 3}, {EventScale, 3, 2}, {EventScale, 2, 1}}
	if len(got) != len(want) {
		t.Fatalf("events %+v, want %v", got, want)
	}
	for i, w := range want {
		if g := got[i]; g.Kind != w.kind || g.From != w.from || g.To != w.to || g.Service != name {
			t.Errorf("event %d: %+v, want %s %d -> %d", i, g, w.kind, w.from, w.to)
		}
		if i > 1 && got[i].Time.Sub(got[i-1].Time) < cfg.Cooldown {
			t.Errorf("events %d and %d %s apart, within the cool-down", i-1, i, got[i].Time.Sub(got[i-1].Time))
		}
	}
	if l := got[1].Lag; l < 6*10000 {
		t.Errorf("scaled out at lag %d, want the burst's 60000", l)
	}
}
