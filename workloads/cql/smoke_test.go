package cql

import (
	"testing"
	"time"

	"github.com/gocql/gocql"
)

func TestSmoke(t *testing.T) {
	ts := startServer(t, t.TempDir())
	s := newSession(t, ts.addr)
	if err := s.Query(`CREATE KEYSPACE IF NOT EXISTS sensors WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`).Exec(); err != nil {
		t.Fatal(err)
	}
	if err := s.Query(`CREATE TABLE IF NOT EXISTS sensors.temperature_by_day (sensor_id text, event_date date, event_time timestamp, temperature double, PRIMARY KEY ((sensor_id, event_date), event_time)) WITH CLUSTERING ORDER BY (event_time DESC)`).Exec(); err != nil {
		t.Fatal(err)
	}
	day := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 10; i++ {
		if err := s.Query(`INSERT INTO sensors.temperature_by_day (sensor_id, event_date, event_time, temperature) VALUES (?, ?, ?, ?)`, "s1", day, day.Add(time.Duration(i)*time.Minute), 20.5+float64(i)).Exec(); err != nil {
			t.Fatal(err)
		}
	}
	iter := s.Query(`SELECT event_time, temperature FROM sensors.temperature_by_day WHERE sensor_id = ? AND event_date = ?`, "s1", day).Iter()
	var et time.Time
	var temp float64
	n := 0
	for iter.Scan(&et, &temp) {
		n++
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	if n != 10 {
		t.Fatalf("got %d rows", n)
	}
}

func TestSmokeTokenAware(t *testing.T) {
	ts := startServer(t, t.TempDir())
	s := newSession(t, ts.addr)
	if err := s.Query(`CREATE KEYSPACE sensors WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`).Exec(); err != nil {
		t.Fatal(err)
	}
	if err := s.Query(`CREATE TABLE sensors.last_alert_per_sensor (sensor_id text PRIMARY KEY, event_time timestamp, temperature double)`).Exec(); err != nil {
		t.Fatal(err)
	}
	s2 := newSession(t, ts.addr, func(c *gocql.ClusterConfig) {
		c.Keyspace = "sensors"
		c.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(gocql.RoundRobinHostPolicy())
	})
	if err := s2.Query(`INSERT INTO last_alert_per_sensor (sensor_id, event_time, temperature) VALUES (?, ?, ?)`, "a", time.Now(), 1.5).Exec(); err != nil {
		t.Fatal(err)
	}
	var temp float64
	if err := s2.Query(`SELECT temperature FROM last_alert_per_sensor WHERE sensor_id = ?`, "a").Scan(&temp); err != nil {
		t.Fatal(err)
	}
	km, err := s2.KeyspaceMetadata("sensors")
	if err != nil {
		t.Fatal(err)
	}
	tm := km.Tables["last_alert_per_sensor"]
	if tm == nil || len(tm.PartitionKey) != 1 || tm.PartitionKey[0].Name != "sensor_id" {
		t.Fatalf("table metadata %+v", tm)
	}
}
