package sensors

import (
	"context"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

// TestGroupProgress counts the readings produced to the topic and those a
// group committed, on the embedded broker, and names an unknown topic.
func TestGroupProgress(t *testing.T) {
	addr := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kc := KafkaConfig{Brokers: []string{addr}}
	const n = 3000
	if _, err := Produce(ctx, ProducerConfig{Kafka: kc, Sensors: 20, Count: n, Seed: 1, Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	p, err := GroupProgress(ctx, kc, Topic, Group)
	if err != nil {
		t.Fatal(err)
	}
	if p.Produced != n || p.End != n || p.Committed != 0 || p.Partitions != 6 || p.Lag() != n {
		t.Fatalf("before any commit: %+v (lag %d), want %d produced over 6 partitions, none committed", p, p.Lag(), n)
	}

	// Commit partitions 0 and 1 to their ends, partition 2 halfway.
	end := endOffsets(t, addr, Topic)
	want := end[0] + end[1] + end[2]/2
	cl := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	res, err := cl.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: Group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{
		Topic: {{Partition: 0, Offset: end[0]}, {Partition: 1, Offset: end[1]}, {Partition: 2, Offset: end[2] / 2}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, pc := range res.Topics[Topic] {
		if pc.Error != nil {
			t.Fatalf("commit %d: %v", pc.Partition, pc.Error)
		}
	}
	if p, err = GroupProgress(ctx, kc, Topic, Group); err != nil {
		t.Fatal(err)
	}
	if p.Produced != n || p.Committed != want || p.Lag() != n-want {
		t.Fatalf("after commits: %+v, want %d produced, %d committed", p, n, want)
	}
	if p, err = GroupProgress(ctx, kc, Topic, "nobody"); err != nil || p.Committed != 0 {
		t.Fatalf("a group that committed nothing: %+v, %v", p, err)
	}
	if _, err := GroupProgress(ctx, kc, "no-such-topic", Group); err == nil {
		t.Fatal("an unknown topic gave no error")
	}
}
