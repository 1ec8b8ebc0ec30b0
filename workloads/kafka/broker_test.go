package kafka

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

func startBroker(t *testing.T, dir, listen string) *Broker {
	t.Helper()
	b, err := Start(Config{Dir: dir, Listen: listen, Topics: []Topic{{Name: "t", Partitions: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBrokerSurvivesRestart writes records with kafka-go, consumes some of
// them in a consumer group and commits, restarts the broker on the same dir
// and checks the topic, the records and the group's offsets are all back.
func TestBrokerSurvivesRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "kafka")
	b := startBroker(t, dir, "127.0.0.1:0")
	addr := b.Addr()
	closed := false
	t.Cleanup(func() {
		if !closed {
			b.Close()
		}
	})

	w := &kafkago.Writer{Addr: kafkago.TCP(addr), Topic: "t", Balancer: &kafkago.Hash{}, RequiredAcks: kafkago.RequireAll, BatchTimeout: time.Millisecond}
	const n = 300
	var msgs []kafkago.Message
	for i := range n {
		msgs = append(msgs, kafkago.Message{Key: []byte(fmt.Sprintf("k%d", i%17)), Value: []byte(fmt.Sprintf("v%d", i))})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{addr}, GroupID: "g", Topic: "t", MaxWait: 100 * time.Millisecond})
	const consumed = 100
	seen := map[string]bool{}
	for range consumed {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen[string(m.Value)] = true
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()

	b.Close()
	closed = true
	// Same address: clients that were connected find it again.
	b = startBroker(t, dir, addr)
	closed = false
	if b.Addr() != addr {
		t.Fatalf("restarted on %s, want %s", b.Addr(), addr)
	}

	conn, err := kafkago.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions("t")
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 3 {
		t.Fatalf("topic t has %d partitions after restart, want 3", len(parts))
	}

	// The group resumes after what it committed: the rest, and only the
	// rest, of the records.
	r = kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{addr}, GroupID: "g", Topic: "t", MaxWait: 100 * time.Millisecond})
	defer r.Close()
	for len(seen) < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("after %d records: %v", len(seen), err)
		}
		if seen[string(m.Value)] {
			t.Fatalf("record %s delivered again after its offset was committed", m.Value)
		}
		seen[string(m.Value)] = true
	}
}

func TestStartBadConfig(t *testing.T) {
	if _, err := Start(Config{Listen: "127.0.0.1:0"}); err == nil {
		t.Error("no data dir: no error")
	}
	if _, err := Start(Config{Dir: t.TempDir(), Listen: "nonsense"}); err == nil {
		t.Error("bad listen address: no error")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := Start(Config{Dir: t.TempDir(), Listen: ln.Addr().String()}); err == nil {
		t.Error("address in use: no error")
	}
}

// A broker listening on all interfaces advertises the address it is told
// to: clients follow the metadata to it.
func TestBrokerAdvertises(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	b, err := Start(Config{Dir: t.TempDir(), Listen: fmt.Sprintf("0.0.0.0:%d", port), Advertise: fmt.Sprintf("127.0.0.1:%d", port)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if want := fmt.Sprintf("127.0.0.1:%d", port); b.Addr() != want {
		t.Fatalf("Addr %s, want %s", b.Addr(), want)
	}
	conn, err := kafkago.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	brokers, err := conn.Brokers()
	if err != nil {
		t.Fatal(err)
	}
	if len(brokers) != 1 || brokers[0].Host != "127.0.0.1" || brokers[0].Port != port {
		t.Fatalf("metadata brokers %+v, want 127.0.0.1:%d", brokers, port)
	}
	if _, err := Start(Config{Dir: t.TempDir(), Listen: "127.0.0.1:0", Advertise: "0.0.0.0:9092"}); err == nil {
		t.Error("advertising 0.0.0.0: no error")
	}
}
