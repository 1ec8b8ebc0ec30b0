package cql

import (
	"context"
	"testing"
	"time"

	gocqlv2 "github.com/apache/cassandra-gocql-driver/v2"
)

// TestApacheDriverV2Defaults connects the Apache gocql v2 driver with its
// default settings. It asks for protocol v5 first; the server must refuse
// v5 in a frame the driver can read (the version it asked with), so that
// the driver steps down to v4 by itself.
func TestApacheDriverV2Defaults(t *testing.T) {
	ts := startServer(t, t.TempDir())

	// Defaults throughout: no ProtoVersion, no timeouts, no logger. The
	// only thing the test environment needs is the port, and it is part
	// of the address (127.0.0.1:<ephemeral port>), which the driver takes
	// as is. Each request below runs under its own context deadline, so a
	// hang fails the test instead of stalling it.
	cluster := gocqlv2.NewCluster(ts.addr)
	s, err := cluster.CreateSession()
	if err != nil {
		t.Fatalf("gocql v2 CreateSession with default settings: %v", err)
	}
	defer s.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, q := range []string{
		`CREATE KEYSPACE IF NOT EXISTS v2ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`,
		`CREATE TABLE IF NOT EXISTS v2ks.readings (sensor text, seq int, reading bigint, note text, PRIMARY KEY (sensor, seq))`,
	} {
		if err := s.Query(q).ExecContext(ctx); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	// Query with values: the driver prepares the statement and executes it.
	const rows = 53
	const ins = `INSERT INTO v2ks.readings (sensor, seq, reading, note) VALUES (?, ?, ?, ?)`
	for i := 0; i < rows; i++ {
		if err := s.Query(ins, "s1", i, int64(i)*1_000_000_007, noteFor(i)).ExecContext(ctx); err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
	}

	// A page size of 5 makes 11 pages; the iterator fetches them all.
	const pageSize = 5
	iter := s.Query(`SELECT seq, reading, note FROM v2ks.readings WHERE sensor = ?`, "s1").PageSize(pageSize).IterContext(ctx)
	var (
		seq     int
		reading int64
		note    string
		n       int
	)
	for iter.Scan(&seq, &reading, &note) {
		if seq != n || reading != int64(n)*1_000_000_007 || note != noteFor(n) {
			t.Fatalf("row %d: got (%d, %d, %q), want (%d, %d, %q)", n, seq, reading, note, n, int64(n)*1_000_000_007, noteFor(n))
		}
		n++
	}
	if err := iter.Close(); err != nil {
		t.Fatalf("paged select: %v", err)
	}
	if n != rows {
		t.Fatalf("paged select read %d rows, want %d", n, rows)
	}

	// The pages really were pages: the first one holds pageSize rows and
	// hands back a paging state.
	first := s.Query(`SELECT seq FROM v2ks.readings WHERE sensor = ?`, "s1").PageSize(pageSize).IterContext(ctx)
	if got := first.NumRows(); got != pageSize || len(first.PageState()) == 0 {
		t.Errorf("first page: %d rows, paging state %x; want %d rows and a paging state", got, first.PageState(), pageSize)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
}

func noteFor(i int) string { return "reading #" + string(rune('a'+i%26)) }
