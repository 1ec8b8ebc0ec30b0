package sensors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gocql/gocql"
)

// Schema returns the CQL statements that create the keyspace and tables
// (IF NOT EXISTS), with SimpleStrategy and rf replicas.
func Schema(keyspace string, rf int) []string {
	if rf <= 0 {
		rf = 1
	}
	return []string{
		fmt.Sprintf("CREATE KEYSPACE IF NOT EXISTS %s WITH replication = {'class': 'SimpleStrategy', 'replication_factor': %d}", keyspace, rf),
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.temperature_by_day (sensor_id text, event_date date, event_time timestamp, temperature double, "+
			"PRIMARY KEY ((sensor_id, event_date), event_time)) WITH CLUSTERING ORDER BY (event_time DESC)", keyspace),
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.last_alert_per_sensor (sensor_id text PRIMARY KEY, event_time timestamp, temperature double)", keyspace),
	}
}

// Store writes readings to the CQL tables and reads them back.
type Store struct {
	s         *gocql.Session
	insert    string
	alert     string
	selectDay string
	lastAlert string
}

// OpenStore connects to the cluster in cfg and, if createSchema, creates
// the keyspace and tables.
func OpenStore(ctx context.Context, cfg CassandraConfig, createSchema bool) (*Store, error) {
	cl, err := cfg.cluster()
	if err != nil {
		return nil, err
	}
	s, err := cl.CreateSession()
	if err != nil {
		return nil, fmt.Errorf("connect to cassandra %v: %w", cfg.Hosts, err)
	}
	ks := cfg.keyspace()
	if createSchema {
		for _, stmt := range Schema(ks, cfg.ReplicationFactor) {
			if err := s.Query(stmt).WithContext(ctx).Consistency(gocql.All).Exec(); err != nil {
				s.Close()
				return nil, classify(fmt.Errorf("create schema: %s: %w", stmt, err))
			}
		}
	}
	return &Store{
		s:         s,
		insert:    fmt.Sprintf("INSERT INTO %s.temperature_by_day (sensor_id, event_date, event_time, temperature) VALUES (?, ?, ?, ?)", ks),
		alert:     fmt.Sprintf("INSERT INTO %s.last_alert_per_sensor (sensor_id, event_time, temperature) VALUES (?, ?, ?)", ks),
		selectDay: fmt.Sprintf("SELECT event_time, temperature FROM %s.temperature_by_day WHERE sensor_id = ? AND event_date = ?", ks),
		lastAlert: fmt.Sprintf("SELECT event_time, temperature FROM %s.last_alert_per_sensor WHERE sensor_id = ?", ks),
	}, nil
}

// Close closes the session.
func (s *Store) Close() { s.s.Close() }

// WriteBatch writes readings of one partition as one unlogged batch.
func (s *Store) WriteBatch(ctx context.Context, b Batch) error {
	if len(b.Readings) == 0 {
		return nil
	}
	if len(b.Readings) == 1 {
		return s.Insert(ctx, b.Readings[0])
	}
	batch := s.s.NewBatch(gocql.UnloggedBatch).WithContext(ctx)
	for _, r := range b.Readings {
		batch.Query(s.insert, r.SensorID, r.Day(), r.Time, r.Temperature)
	}
	if err := s.s.ExecuteBatch(batch); err != nil {
		return classify(fmt.Errorf("write %d readings of %s on %s: %w", len(b.Readings), b.Partition.SensorID,
			b.Partition.Day.Format(time.DateOnly), err))
	}
	return nil
}

// Insert writes one reading on its own (the naive consumer's way).
func (s *Store) Insert(ctx context.Context, r Reading) error {
	if err := s.s.Query(s.insert, r.SensorID, r.Day(), r.Time, r.Temperature).WithContext(ctx).Exec(); err != nil {
		return classify(fmt.Errorf("insert reading of %s at %s: %w", r.SensorID, r.Time.Format(TimeLayout), err))
	}
	return nil
}

// WriteAlert records r as its sensor's last alert. (The ingester writes
// only alerts newer than the stored one; USING TIMESTAMP would let the
// store decide, but the embedded CQL server does not take it.)
func (s *Store) WriteAlert(ctx context.Context, r Reading) error {
	if err := s.s.Query(s.alert, r.SensorID, r.Time, r.Temperature).WithContext(ctx).Exec(); err != nil {
		return classify(fmt.Errorf("write alert of %s: %w", r.SensorID, err))
	}
	return nil
}

// classify marks the errors no retry can fix as permanent: the store
// refused the statement or the credentials. Timeouts, unavailable nodes
// and connection errors stay transient.
func classify(err error) error {
	var re gocql.RequestError
	if errors.As(err, &re) {
		switch re.Code() {
		case gocql.ErrCodeSyntax, gocql.ErrCodeUnauthorized, gocql.ErrCodeInvalid, gocql.ErrCodeConfig, gocql.ErrCodeCredentials:
			return Permanent(err)
		}
	}
	return err
}

// ReadDay returns the readings stored in one partition: temperature by
// event time in milliseconds.
func (s *Store) ReadDay(ctx context.Context, p PartitionKey) (map[int64]float64, error) {
	out := map[int64]float64{}
	it := s.s.Query(s.selectDay, p.SensorID, p.Day).WithContext(ctx).PageSize(5000).Iter()
	var t time.Time
	var temp float64
	for it.Scan(&t, &temp) {
		out[t.UnixMilli()] = temp
	}
	if err := it.Close(); err != nil {
		return nil, classify(fmt.Errorf("read %s on %s: %w", p.SensorID, p.Day.Format(time.DateOnly), err))
	}
	return out, nil
}

// ErrNoAlert is returned by LastAlert for a sensor without one.
var ErrNoAlert = errors.New("no alert")

// LastAlert returns the sensor's last alert.
func (s *Store) LastAlert(ctx context.Context, sensor string) (Reading, error) {
	r := Reading{SensorID: sensor}
	err := s.s.Query(s.lastAlert, sensor).WithContext(ctx).Scan(&r.Time, &r.Temperature)
	if errors.Is(err, gocql.ErrNotFound) {
		return Reading{}, ErrNoAlert
	}
	if err != nil {
		return Reading{}, classify(fmt.Errorf("read alert of %s: %w", sensor, err))
	}
	r.Time = r.Time.UTC()
	return r, nil
}
