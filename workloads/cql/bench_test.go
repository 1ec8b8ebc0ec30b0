package cql

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/datastax/go-cassandra-native-protocol/primitive"
	"github.com/gocql/gocql"
)

const benchSchema = `CREATE TABLE sensors.temperature_by_day (sensor_id text, event_date date, event_time timestamp, temperature double, PRIMARY KEY ((sensor_id, event_date), event_time)) WITH CLUSTERING ORDER BY (event_time DESC)`

const benchInsert = `INSERT INTO sensors.temperature_by_day (sensor_id, event_date, event_time, temperature) VALUES (?, ?, ?, ?)`

// BenchmarkBatchInsert writes the sensor workload's rows: unlogged batches
// of batchRows readings of one partition, from writers concurrent
// goroutines. "gocql" goes through the driver, the network and the
// server; "engine" is the baseline in the same run: the same rows applied to
// the same store by the engine directly (planning, key encoding and the
// fsynced pebble commit, without protocol or driver). Both report rows/s.
func BenchmarkBatchInsert(b *testing.B) {
	const batchRows, writers = 250, 8
	b.Run("engine", func(b *testing.B) {
		ts := startServer(b, b.TempDir())
		s := newSession(b, ts.addr)
		benchCreate(b, s)
		sp, err := ts.eng.plan(benchInsert, "")
		if err != nil {
			b.Fatal(err)
		}
		m := sp.plan.(*mutation)
		runWriters(b, batchRows, writers, func(w, seq int) error {
			sensor := []byte(fmt.Sprintf("sensor-%d-%d", w, seq))
			_, err := ts.eng.write(func(pb *pebble.Batch, buf *mutationBuf) error {
				for i := 0; i < batchRows; i++ {
					vals := benchValues(sensor, i)
					if err := m.apply(pb, vals, buf); err != nil {
						return err
					}
				}
				return nil
			})
			return err
		})
	})
	b.Run("gocql", func(b *testing.B) {
		ts := startServer(b, b.TempDir())
		s := newSession(b, ts.addr, func(c *gocql.ClusterConfig) { c.NumConns = 2 })
		benchCreate(b, s)
		runWriters(b, batchRows, writers, func(w, seq int) error {
			batch := s.NewBatch(gocql.UnloggedBatch)
			day := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
			sensor := fmt.Sprintf("sensor-%d-%d", w, seq)
			for i := 0; i < batchRows; i++ {
				batch.Query(benchInsert, sensor, day, day.Add(time.Duration(i)*time.Millisecond), 20+float64(i)/100)
			}
			return s.ExecuteBatch(batch)
		})
	})
}

func benchCreate(b *testing.B, s *gocql.Session) {
	b.Helper()
	for _, q := range []string{
		`CREATE KEYSPACE sensors WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`,
		benchSchema,
	} {
		if err := s.Query(q).Exec(); err != nil {
			b.Fatal(err)
		}
	}
}

func benchValues(sensor []byte, i int) []*primitive.Value {
	day := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	ts := day.Add(time.Duration(i) * time.Millisecond).UnixMilli()
	return []*primitive.Value{
		primitive.NewValue(sensor),
		primitive.NewValue(int32Value(int32(uint32(day.Unix()/86400 + 1<<31)))),
		primitive.NewValue(int64Value(ts)),
		primitive.NewValue(int64Value(int64(i))),
	}
}

func int64Value(v int64) []byte {
	return []byte{byte(v >> 56), byte(v >> 48), byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

// runWriters runs b.N rows worth of batches from concurrent writers and
// reports rows/s.
func runWriters(b *testing.B, batchRows, writers int, write func(w, seq int) error) {
	batches := (b.N + batchRows - 1) / batchRows
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				seq := int(next.Add(1))
				if seq > batches {
					return
				}
				if err := write(w, seq); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(batches*batchRows)/elapsed.Seconds(), "rows/s")
}

// BenchmarkSelectPartition reads a partition of the workload's table in
// pages of 5000 rows, as verify does: "gocql" through the driver, "engine"
// (the baseline in the same run) with the engine's select directly.
func BenchmarkSelectPartition(b *testing.B) {
	const rows = 20000
	ts := startServer(b, b.TempDir())
	s := newSession(b, ts.addr)
	benchCreate(b, s)
	day := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < rows; i += 500 {
		batch := s.NewBatch(gocql.UnloggedBatch)
		for j := i; j < i+500; j++ {
			batch.Query(benchInsert, "s1", day, day.Add(time.Duration(j)*time.Millisecond), float64(j))
		}
		if err := s.ExecuteBatch(batch); err != nil {
			b.Fatal(err)
		}
	}
	const q = `SELECT event_time, temperature FROM sensors.temperature_by_day WHERE sensor_id = ? AND event_date = ?`
	report := func(b *testing.B, start time.Time) {
		b.ReportMetric(float64(b.N*rows)/time.Since(start).Seconds(), "rows/s")
	}
	b.Run("engine", func(b *testing.B) {
		sp, err := ts.eng.plan(q, "")
		if err != nil {
			b.Fatal(err)
		}
		vals := []*primitive.Value{primitive.NewValue([]byte("s1")), primitive.NewValue(int32Value(int32(uint32(day.Unix()/86400 + 1<<31))))}
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			n := 0
			var state []byte
			for {
				res, err := ts.eng.runSelect(sp.plan.(*selectPlan), vals, pageRequest{pageSize: 5000, pagingState: state}, nil)
				if err != nil {
					b.Fatal(err)
				}
				n += len(res.Data)
				if state = res.Metadata.PagingState; state == nil {
					break
				}
			}
			if n != rows {
				b.Fatalf("read %d rows, want %d", n, rows)
			}
		}
		report(b, start)
	})
	b.Run("gocql", func(b *testing.B) {
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			iter := s.Query(q, "s1", day).PageSize(5000).Iter()
			var et time.Time
			var temp float64
			n := 0
			for iter.Scan(&et, &temp) {
				n++
			}
			if err := iter.Close(); err != nil || n != rows {
				b.Fatalf("read %d rows (%v), want %d", n, err, rows)
			}
		}
		report(b, start)
	})
}
