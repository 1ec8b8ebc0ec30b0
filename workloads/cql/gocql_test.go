package cql

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"gopkg.in/inf.v0"
)

// These tests run the real gocql driver against a real Server on
// 127.0.0.1:0.

const (
	createSensors = `CREATE KEYSPACE IF NOT EXISTS sensors WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`
	createByDay   = `CREATE TABLE IF NOT EXISTS sensors.temperature_by_day (sensor_id text, event_date date, event_time timestamp, temperature double, PRIMARY KEY ((sensor_id, event_date), event_time)) WITH CLUSTERING ORDER BY (event_time DESC)`
	createAlerts  = `CREATE TABLE IF NOT EXISTS sensors.last_alert_per_sensor (sensor_id text PRIMARY KEY, event_time timestamp, temperature double)`
	insertByDay   = `INSERT INTO sensors.temperature_by_day (sensor_id, event_date, event_time, temperature) VALUES (?, ?, ?, ?)`
)

var day0 = time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)

func exec(t testing.TB, s *gocql.Session, q string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Query(q, args...).WithContext(ctx).Exec(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func sensorSchema(t testing.TB, s *gocql.Session) {
	t.Helper()
	for _, q := range []string{createSensors, createByDay, createAlerts} {
		exec(t, s, q)
	}
}

// readings returns the (event_time, temperature) rows of a query.
func readings(t testing.TB, q *gocql.Query) ([]time.Time, []float64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iter := q.WithContext(ctx).Iter()
	var times []time.Time
	var temps []float64
	var et time.Time
	var temp float64
	for iter.Scan(&et, &temp) {
		times = append(times, et)
		temps = append(temps, temp)
	}
	if err := iter.Close(); err != nil {
		t.Fatalf("select: %v", err)
	}
	return times, temps
}

func TestSessionSetup(t *testing.T) {
	ts := startServer(t, t.TempDir())
	s := newSession(t, ts.addr)

	var release, partitioner, cluster string
	var hostID gocql.UUID
	var tokens []string
	var rpc string
	if err := s.Query(`SELECT release_version, partitioner, cluster_name, host_id, tokens, rpc_address FROM system.local WHERE key = 'local'`).Scan(&release, &partitioner, &cluster, &hostID, &tokens, &rpc); err != nil {
		t.Fatal(err)
	}
	if partitioner != "org.apache.cassandra.dht.Murmur3Partitioner" || release == "" || len(tokens) != 1 || rpc != "127.0.0.1" || hostID == (gocql.UUID{}) {
		t.Errorf("system.local: release %q partitioner %q tokens %v rpc %q host %v", release, partitioner, tokens, rpc, hostID)
	}
	for _, q := range []string{`SELECT * FROM system.peers`, `SELECT * FROM system.peers_v2`} {
		if n := s.Query(q).Iter().NumRows(); n != 0 {
			t.Errorf("%s: %d rows, want 0 (one node)", q, n)
		}
	}

	sensorSchema(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.AwaitSchemaAgreement(ctx); err != nil {
		t.Errorf("schema agreement: %v", err)
	}

	// A token-aware session in the keyspace: metadata from system_schema,
	// routing keys from the prepared statements' partition key indices.
	ta := newSession(t, ts.addr, func(c *gocql.ClusterConfig) {
		c.Keyspace = "sensors"
		c.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(gocql.RoundRobinHostPolicy())
	})
	km, err := ta.KeyspaceMetadata("sensors")
	if err != nil {
		t.Fatal(err)
	}
	if km.StrategyClass != "SimpleStrategy" || km.StrategyOptions["replication_factor"] != "1" {
		t.Errorf("keyspace metadata %+v", km)
	}
	tm := km.Tables["temperature_by_day"]
	if tm == nil || len(tm.PartitionKey) != 2 || tm.PartitionKey[0].Name != "sensor_id" || tm.PartitionKey[1].Name != "event_date" ||
		len(tm.ClusteringColumns) != 1 || tm.ClusteringColumns[0].Name != "event_time" || tm.ClusteringColumns[0].ClusteringOrder != "desc" ||
		tm.Columns["temperature"].Type.Type() != gocql.TypeDouble {
		t.Fatalf("table metadata %+v", tm)
	}
	q := ta.Query(`INSERT INTO temperature_by_day (sensor_id, event_date, event_time, temperature) VALUES (?, ?, ?, ?)`, "s1", day0, day0, 21.5)
	rk, err := q.GetRoutingKey()
	if err != nil || len(rk) == 0 {
		t.Fatalf("routing key %x, %v", rk, err)
	}
	// Composite routing key: [len]sensor_id 0 [len]date 0.
	if want := []byte{0, 2, 's', '1', 0, 0, 4}; !strings.HasPrefix(string(rk), string(want)) {
		t.Errorf("routing key %x, want prefix %x", rk, want)
	}
	if err := q.Exec(); err != nil {
		t.Fatal(err)
	}
	times, temps := readings(t, ta.Query(`SELECT event_time, temperature FROM temperature_by_day WHERE sensor_id = ? AND event_date = ?`, "s1", day0))
	if len(times) != 1 || !times[0].Equal(day0) || temps[0] != 21.5 {
		t.Errorf("read back %v %v", times, temps)
	}
}

func TestTypesRoundTrip(t *testing.T) {
	ts := startServer(t, t.TempDir())
	s := newSession(t, ts.addr)
	exec(t, s, createSensors)
	exec(t, s, `CREATE TABLE sensors.types (k int, c timeuuid, txt text, asci ascii, vc varchar, i int, bi bigint, si smallint, ti tinyint,
		vi varint, f float, d double, dec decimal, b boolean, ts timestamp, dt date, tm time, u uuid, bl blob, ip inet,
		l list<int>, s set<text>, m map<text, int>, PRIMARY KEY (k, c))`)
	cols := "k, c, txt, asci, vc, i, bi, si, ti, vi, f, d, dec, b, ts, dt, tm, u, bl, ip, l, s, m"
	u, _ := gocql.ParseUUID("123e4567-e89b-42d3-a456-426614174000")
	c := gocql.TimeUUID()
	want := []any{
		int(1), c, "héllo ☃", "ascii", "varchar", int(-42), int64(1) << 40, int16(-7), int8(5),
		big.NewInt(-123456789012345), float32(1.5), 2.25, inf.NewDec(31415, 4), true,
		time.Date(2024, 5, 1, 12, 30, 45, 123e6, time.UTC), time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC),
		13*time.Hour + 5*time.Second + 7, u, []byte{0, 1, 2, 0xff}, "10.1.2.3",
		[]int{3, 1, 2}, []string{"a", "b"}, map[string]int{"x": 1, "y": 2},
	}
	exec(t, s, `INSERT INTO sensors.types (`+cols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, want...)

	// The same values as CQL constants in a second row.
	exec(t, s, `INSERT INTO sensors.types (`+cols+`) VALUES (2, `+c.String()+`, 'héllo ☃', 'ascii', 'varchar', -42, 1099511627776, -7, 5,
		-123456789012345, 1.5, 2.25, 3.1415, true, '2024-05-01 12:30:45.123+0000', '2024-05-01', '13:00:05.000000007',
		123e4567-e89b-42d3-a456-426614174000, 0x000102ff, '10.1.2.3', [3, 1, 2], {'b', 'a', 'b'}, {'y': 2, 'x': 1})`)

	for _, k := range []int{1, 2} {
		got := []any{
			new(int), new(gocql.UUID), new(string), new(string), new(string), new(int), new(int64), new(int16), new(int8),
			new(*big.Int), new(float32), new(float64), new(*inf.Dec), new(bool), new(time.Time), new(time.Time),
			new(time.Duration), new(gocql.UUID), new([]byte), new(string), new([]int), new([]string), new(map[string]int),
		}
		if err := s.Query(`SELECT `+cols+` FROM sensors.types WHERE k = ?`, k).Scan(got...); err != nil {
			t.Fatalf("row %d: %v", k, err)
		}
		w := append([]any{k}, want[1:]...)
		for i := range w {
			g := reflect.ValueOf(got[i]).Elem().Interface()
			if !equalValue(g, w[i]) {
				t.Errorf("row %d column %s: got %v (%T), want %v", k, strings.Split(cols, ", ")[i], g, g, w[i])
			}
		}
	}

	// Nulls: unset columns and explicit nulls read back as null.
	exec(t, s, `INSERT INTO sensors.types (k, c, txt, i) VALUES (?, ?, ?, ?)`, 3, c, nil, nil)
	var txt *string
	var i *int
	var l []int
	if err := s.Query(`SELECT txt, i, l FROM sensors.types WHERE k = 3`).Scan(&txt, &i, &l); err != nil {
		t.Fatal(err)
	}
	if txt != nil || i != nil || l != nil {
		t.Errorf("nulls read back as %v %v %v", txt, i, l)
	}
}

func equalValue(got, want any) bool {
	switch w := want.(type) {
	case *big.Int:
		g, ok := got.(*big.Int)
		return ok && g.Cmp(w) == 0
	case *inf.Dec:
		g, ok := got.(*inf.Dec)
		return ok && g.Cmp(w) == 0
	case time.Time:
		g, ok := got.(time.Time)
		return ok && g.Equal(w)
	case []string:
		g, ok := got.([]string)
		ws := append([]string(nil), w...)
		sort.Strings(ws)
		return ok && reflect.DeepEqual(g, ws) // a set comes back sorted
	}
	return reflect.DeepEqual(got, want)
}

func TestClusteringOrderAndRanges(t *testing.T) {
	ts := startServer(t, t.TempDir())
	s := newSession(t, ts.addr)
	sensorSchema(t, s)
	at := func(i int) time.Time { return day0.Add(time.Duration(i) * time.Second) }
	for i := 0; i < 100; i++ {
		exec(t, s, insertByDay, "s1", day0, at(i), float64(i))
	}
	exec(t, s, insertByDay, "s2", day0, at(5), 999.0) // another partition
	check := func(name string, q *gocql.Query, want ...int) {
		t.Helper()
		_, temps := readings(t, q)
		got := make([]int, len(temps))
		for i, v := range temps {
			got[i] = int(v)
		}
		if !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
	seq := func(from, to, step int) []int {
		var out []int
		for i := from; i != to; i += step {
			out = append(out, i)
		}
		return out
	}
	const base = `SELECT event_time, temperature FROM sensors.temperature_by_day WHERE sensor_id = ? AND event_date = ?`
	check("DESC clustering", s.Query(base, "s1", day0), seq(99, -1, -1)...)
	check("ORDER BY ASC", s.Query(base+` ORDER BY event_time ASC`, "s1", day0), seq(0, 100, 1)...)
	check("ORDER BY DESC", s.Query(base+` ORDER BY event_time DESC`, "s1", day0), seq(99, -1, -1)...)
	check("range [10,20)", s.Query(base+` AND event_time >= ? AND event_time < ?`, "s1", day0, at(10), at(20)), seq(19, 9, -1)...)
	check("range (10,20] ASC", s.Query(base+` AND event_time > ? AND event_time <= ? ORDER BY event_time ASC`, "s1", day0, at(10), at(20)), seq(11, 21, 1)...)
	check("lower only", s.Query(base+` AND event_time > ?`, "s1", day0, at(96)), 99, 98, 97)
	check("upper only ASC", s.Query(base+` AND event_time <= ? ORDER BY event_time ASC`, "s1", day0, at(2)), 0, 1, 2)
	check("equality", s.Query(base+` AND event_time = ?`, "s1", day0, at(42)), 42)
	check("empty range", s.Query(base+` AND event_time > ? AND event_time < ?`, "s1", day0, at(20), at(10)))
	check("LIMIT", s.Query(base+` LIMIT 3`, "s1", day0), 99, 98, 97)
	check("LIMIT ? ASC", s.Query(base+` ORDER BY event_time ASC LIMIT ?`, "s1", day0, 4), 0, 1, 2, 3)
	check("IN partitions", s.Query(`SELECT event_time, temperature FROM sensors.temperature_by_day WHERE sensor_id IN ? AND event_date = ? AND event_time = ?`, []string{"s1", "s2"}, day0, at(5)), 5, 999)

	// Several clustering columns with mixed orders.
	exec(t, s, `CREATE TABLE sensors.multi (p int, a int, b text, c int, v int, PRIMARY KEY (p, a, b, c)) WITH CLUSTERING ORDER BY (a ASC, b DESC, c ASC)`)
	type key struct {
		a int
		b string
		c int
	}
	var all []key
	for a := 0; a < 3; a++ {
		for _, b := range []string{"x", "y", "z"} {
			for c := 0; c < 3; c++ {
				all = append(all, key{a, b, c})
				exec(t, s, `INSERT INTO sensors.multi (p, a, b, c, v) VALUES (1, ?, ?, ?, ?)`, a, b, c, len(all))
			}
		}
	}
	sorted := append([]key(nil), all...)
	sort.Slice(sorted, func(i, j int) bool {
		x, y := sorted[i], sorted[j]
		if x.a != y.a {
			return x.a < y.a
		}
		if x.b != y.b {
			return x.b > y.b
		}
		return x.c < y.c
	})
	keys := func(q *gocql.Query) []key {
		t.Helper()
		iter := q.Iter()
		var out []key
		var k key
		for iter.Scan(&k.a, &k.b, &k.c) {
			out = append(out, k)
		}
		if err := iter.Close(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := keys(s.Query(`SELECT a, b, c FROM sensors.multi WHERE p = 1`)); !reflect.DeepEqual(got, sorted) {
		t.Errorf("mixed order: got %v, want %v", got, sorted)
	}
	rev := append([]key(nil), sorted...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	if got := keys(s.Query(`SELECT a, b, c FROM sensors.multi WHERE p = 1 ORDER BY a DESC, b ASC`)); !reflect.DeepEqual(got, rev) {
		t.Errorf("reversed: got %v, want %v", got, rev)
	}
	got := keys(s.Query(`SELECT a, b, c FROM sensors.multi WHERE p = 1 AND a = 1 AND b < 'z'`))
	want := []key{{1, "y", 0}, {1, "y", 1}, {1, "y", 2}, {1, "x", 0}, {1, "x", 1}, {1, "x", 2}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("prefix and range on a DESC column: got %v, want %v", got, want)
	}
	got = keys(s.Query(`SELECT a, b, c FROM sensors.multi WHERE p = 1 AND a = 2 AND b = 'y' AND c >= 1`))
	if want := []key{{2, "y", 1}, {2, "y", 2}}; !reflect.DeepEqual(got, want) {
		t.Errorf("two equalities and a range: got %v, want %v", got, want)
	}
	// ALLOW FILTERING on a regular column.
	got = keys(s.Query(`SELECT a, b, c FROM sensors.multi WHERE p = 1 AND v > 25 ALLOW FILTERING`))
	if len(got) != 2 {
		t.Errorf("filtering v > 25: got %v, want 2 rows", got)
	}
}

func TestCount(t *testing.T) {
	ts := startServer(t, t.TempDir())
	s := newSession(t, ts.addr)
	sensorSchema(t, s)
	for i := 0; i < 57; i++ {
		exec(t, s, insertByDay, "s1", day0, day0.Add(time.Duration(i)*time.Minute), float64(i))
	}
	exec(t, s, insertByDay, "s2", day0, day0, 1.0)
	count := func(q string, args ...any) int64 {
		t.Helper()
		var n int64
		if err := s.Query(q, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	if n := count(`SELECT count(*) FROM sensors.temperature_by_day WHERE sensor_id = ? AND event_date = ?`, "s1", day0); n != 57 {
		t.Errorf("count(*) = %d, want 57", n)
	}
	if n := count(`SELECT count(*) FROM sensors.temperature_by_day WHERE sensor_id = ? AND event_date = ? AND event_time >= ?`, "s1", day0, day0.Add(50*time.Minute)); n != 7 {
		t.Errorf("count(*) with range = %d, want 7", n)
	}
	if n := count(`SELECT COUNT(1) FROM sensors.temperature_by_day`); n != 58 {
		t.Errorf("count over the table = %d, want 58", n)
	}
	exec(t, s, `INSERT INTO sensors.last_alert_per_sensor (sensor_id, event_time) VALUES ('a', '2024-01-01')`)
	exec(t, s, `INSERT INTO sensors.last_alert_per_sensor (sensor_id, temperature) VALUES ('b', 1.5)`)
	if n := count(`SELECT count(temperature) FROM sensors.last_alert_per_sensor`); n != 1 {
		t.Errorf("count(temperature) = %d, want 1 (one null)", n)
	}
	if n := count(`SELECT count(*) FROM sensors.temperature_by_day WHERE sensor_id = 'none' AND event_date = '2024-05-01'`); n != 0 {
		t.Errorf("count of an empty partition = %d", n)
	}
}

func TestPaging(t *testing.T) {
	ts := startServer(t, t.TempDir())
	s := newSession(t, ts.addr)
	sensorSchema(t, s)
	const rows = 1000
	batch := s.NewBatch(gocql.UnloggedBatch)
	for i := 0; i < rows; i++ {
		batch.Query(insertByDay, "s1", day0, day0.Add(time.Duration(i)*time.Millisecond), float64(i))
	}
	if err := s.ExecuteBatch(batch); err != nil {
		t.Fatal(err)
	}
	const q = `SELECT event_time, temperature FROM sensors.temperature_by_day WHERE sensor_id = ? AND event_date = ?`

	// gocql's automatic paging with a small page size.
	times, temps := readings(t, s.Query(q, "s1", day0).PageSize(7))
	if len(temps) != rows {
		t.Fatalf("paged read: %d rows, want %d", len(temps), rows)
	}
	for i, v := range temps {
		if int(v) != rows-1-i || !times[i].Equal(day0.Add(time.Duration(rows-1-i)*time.Millisecond)) {
			t.Fatalf("row %d: %v %v", i, times[i], v)
		}
	}

	// Manual paging, page by page, ascending with a LIMIT across pages.
	var state []byte
	var got []float64
	pages := 0
	for {
		iter := s.Query(q+` ORDER BY event_time ASC LIMIT 95`, "s1", day0).PageSize(10).PageState(state).Iter()
		n := 0
		var et time.Time
		var v float64
		for iter.Scan(&et, &v) {
			got = append(got, v)
			n++
		}
		state = iter.PageState()
		if err := iter.Close(); err != nil {
			t.Fatal(err)
		}
		if n > 10 {
			t.Fatalf("page of %d rows, page size 10", n)
		}
		pages++
		if len(state) == 0 {
			break
		}
		if pages > 20 {
			t.Fatal("paging does not end")
		}
	}
	if len(got) != 95 || got[0] != 0 || got[94] != 94 || pages != 10 {
		t.Errorf("manual paging: %d rows in %d pages (first %v last %v), want 95 in 10", len(got), pages, got[0], got[len(got)-1])
	}

	// A paging state from another query is refused.
	other := s.Query(q+` AND event_time > ?`, "s1", day0, day0.Add(900*time.Millisecond)).PageSize(10).PageState([]byte{1, 0, 0, 9, 9}).Iter()
	var et time.Time
	var v float64
	for other.Scan(&et, &v) {
	}
	assertCode(t, other.Close(), 0x2200, "paging state")
}

func TestFullScanAndDistinct(t *testing.T) {
	ts := startServer(t, t.TempDir())
	s := newSession(t, ts.addr)
	sensorSchema(t, s)
	want := map[string]int{}
	for p := 0; p < 30; p++ {
		batch := s.NewBatch(gocql.UnloggedBatch)
		id := fmt.Sprintf("sensor-%02d", p)
		for i := 0; i < p%5+1; i++ {
			batch.Query(insertByDay, id, day0.AddDate(0, 0, p%2), day0.Add(time.Duration(i)*time.Second), float64(i))
			want[fmt.Sprintf("%s/%d/%d", id, p%2, i)]++
		}
		if err := s.ExecuteBatch(batch); err != nil {
			t.Fatal(err)
		}
	}
	iter := s.Query(`SELECT sensor_id, event_date, event_time FROM sensors.temperature_by_day`).PageSize(7).Iter()
	got := map[string]int{}
	var id string
	var date, et time.Time
	for iter.Scan(&id, &date, &et) {
		got[fmt.Sprintf("%s/%d/%d", id, int(date.Sub(day0).Hours()/24), int(et.Sub(day0).Seconds()))]++
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("full scan saw %d distinct rows, want %d", len(got), len(want))
	}
	iter = s.Query(`SELECT DISTINCT sensor_id, event_date FROM sensors.temperature_by_day`).PageSize(4).Iter()
	parts := map[string]bool{}
	n := 0
	for iter.Scan(&id, &date) {
		parts[id] = true
		n++
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	if n != 30 || len(parts) != 30 {
		t.Errorf("DISTINCT: %d rows, %d partitions, want 30", n, len(parts))
	}
}

func TestBatchAndUpsert(t *testing.T) {
	ts := startServer(t, t.TempDir())
	s := newSession(t, ts.addr)
	sensorSchema(t, s)
	const q = `SELECT event_time, temperature FROM sensors.temperature_by_day WHERE sensor_id = ? AND event_date = ?`

	// An unlogged batch of one partition, then the same keys again: upsert.
	for round := 0; round < 2; round++ {
		batch := s.NewBatch(gocql.UnloggedBatch)
		for i := 0; i < 300; i++ {
			batch.Query(insertByDay, "s1", day0, day0.Add(time.Duration(i)*time.Second), float64(i+1000*round))
		}
		if err := s.ExecuteBatch(batch); err != nil {
			t.Fatal(err)
		}
	}
	_, temps := readings(t, s.Query(q, "s1", day0))
	if len(temps) != 300 || temps[0] != 1299 || temps[299] != 1000 {
		t.Errorf("after upserting twice: %d rows, first %v last %v", len(temps), temps[0], temps[len(temps)-1])
	}

	// A batch is atomic: an invalid child fails the whole batch.
	batch := s.NewBatch(gocql.LoggedBatch)
	batch.Query(insertByDay, "s9", day0, day0, 1.0)
	batch.Query(`INSERT INTO sensors.nope (a) VALUES (?)`, 1)
	if err := s.ExecuteBatch(batch); err == nil {
		t.Errorf("batch with an unknown table succeeded")
	}
	if times, _ := readings(t, s.Query(q, "s9", day0)); len(times) != 0 {
		t.Errorf("a failed batch wrote %d rows", len(times))
	}

	// A CQL text batch mixing INSERT, UPDATE and DELETE.
	exec(t, s, `BEGIN UNLOGGED BATCH
		INSERT INTO sensors.last_alert_per_sensor (sensor_id, event_time, temperature) VALUES ('a', '2024-05-01 10:00:00+0000', 30.5);
		UPDATE sensors.last_alert_per_sensor SET temperature = 31.5 WHERE sensor_id = 'b';
		DELETE FROM sensors.temperature_by_day WHERE sensor_id = 's1' AND event_date = '2024-05-01' AND event_time >= '2024-05-01 00:00:10+0000';
		APPLY BATCH`)
	if _, temps := readings(t, s.Query(q, "s1", day0)); len(temps) != 10 {
		t.Errorf("range delete in batch left %d rows, want 10", len(temps))
	}
	var temp float64
	if err := s.Query(`SELECT temperature FROM sensors.last_alert_per_sensor WHERE sensor_id = 'b'`).Scan(&temp); err != nil || temp != 31.5 {
		t.Errorf("UPDATE created %v, %v", temp, err)
	}
	// SELECT is not allowed in a batch.
	batch = s.NewBatch(gocql.UnloggedBatch)
	batch.Query(`SELECT * FROM sensors.last_alert_per_sensor`)
	assertCode(t, s.ExecuteBatch(batch), 0x2200, "only UPDATE, INSERT and DELETE")
}

func TestUpsertSemantics(t *testing.T) {
	ts := startServer(t, t.TempDir())
	s := newSession(t, ts.addr)
	exec(t, s, createSensors)
	exec(t, s, `CREATE TABLE sensors.kv (k int, c int, a text, b text, PRIMARY KEY (k, c))`)
	row := func(k, c int) (a, b *string, ok bool) {
		t.Helper()
		iter := s.Query(`SELECT a, b FROM sensors.kv WHERE k = ? AND c = ?`, k, c).Iter()
		ok = iter.Scan(&a, &b)
		if err := iter.Close(); err != nil {
			t.Fatal(err)
		}
		return a, b, ok
	}
	str := func(p *string) string {
		if p == nil {
			return "<null>"
		}
		return *p
	}
	expect := func(name string, k, c int, wantA, wantB string, wantRow bool) {
		t.Helper()
		a, b, ok := row(k, c)
		if ok != wantRow || ok && (str(a) != wantA || str(b) != wantB) {
			t.Errorf("%s: row %v a=%s b=%s, want row %v a=%s b=%s", name, ok, str(a), str(b), wantRow, wantA, wantB)
		}
	}
	exec(t, s, `INSERT INTO sensors.kv (k, c, a, b) VALUES (1, 1, 'a1', 'b1')`)
	exec(t, s, `INSERT INTO sensors.kv (k, c, a, b) VALUES (1, 1, 'a2', 'b2')`)
	expect("overwrite", 1, 1, "a2", "b2", true)
	exec(t, s, `INSERT INTO sensors.kv (k, c, a) VALUES (1, 1, 'a3')`)
	expect("partial insert keeps other columns", 1, 1, "a3", "b2", true)
	exec(t, s, `INSERT INTO sensors.kv (k, c, a, b) VALUES (?, ?, ?, ?)`, 1, 1, gocql.UnsetValue, "b4")
	expect("unset value keeps the column", 1, 1, "a3", "b4", true)
	exec(t, s, `INSERT INTO sensors.kv (k, c, a) VALUES (1, 1, '')`)
	if a, _, _ := row(1, 1); a == nil || *a != "" {
		t.Errorf("an empty string read back as %v, want \"\" (not null)", a)
	}
	exec(t, s, `INSERT INTO sensors.kv (k, c, a) VALUES (1, 1, null)`)
	expect("null deletes the cell", 1, 1, "<null>", "b4", true)
	exec(t, s, `DELETE b FROM sensors.kv WHERE k = 1 AND c = 1`)
	expect("deleted column; the inserted row stays", 1, 1, "<null>", "<null>", true)
	exec(t, s, `UPDATE sensors.kv SET a = 'u' WHERE k = 2 AND c = 1`)
	expect("update creates", 2, 1, "u", "<null>", true)
	exec(t, s, `UPDATE sensors.kv SET a = null WHERE k = 2 AND c = 1`)
	expect("a row only updated vanishes with its last value", 2, 1, "", "", false)
	exec(t, s, `DELETE FROM sensors.kv WHERE k = 1 AND c = 1`)
	expect("row delete", 1, 1, "", "", false)
	exec(t, s, `INSERT INTO sensors.kv (k, c, a) VALUES (3, 1, 'x')`)
	exec(t, s, `INSERT INTO sensors.kv (k, c, a) VALUES (3, 2, 'y')`)
	exec(t, s, `DELETE FROM sensors.kv WHERE k = 3`)
	expect("partition delete", 3, 1, "", "", false)
	expect("partition delete", 3, 2, "", "", false)
	exec(t, s, `INSERT INTO sensors.kv (k, c, a) VALUES (3, 1, 'again')`)
	expect("write after partition delete", 3, 1, "again", "<null>", true)
}

func TestDDL(t *testing.T) {
	ts := startServer(t, t.TempDir())
	s := newSession(t, ts.addr)
	sensorSchema(t, s)
	assertCode(t, s.Query(createSensors[:len("CREATE KEYSPACE")]+` sensors WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`).Exec(), 0x2400, "already exists")
	assertCode(t, s.Query(`CREATE TABLE sensors.last_alert_per_sensor (a int PRIMARY KEY)`).Exec(), 0x2400, "already exists")
	exec(t, s, insertByDay, "s1", day0, day0, 1.0)
	exec(t, s, `TRUNCATE sensors.temperature_by_day`)
	if times, _ := readings(t, s.Query(`SELECT event_time, temperature FROM sensors.temperature_by_day`)); len(times) != 0 {
		t.Errorf("TRUNCATE left %d rows", len(times))
	}
	exec(t, s, insertByDay, "s1", day0, day0, 1.0)
	exec(t, s, `DROP TABLE sensors.temperature_by_day`)
	assertCode(t, s.Query(`SELECT * FROM sensors.temperature_by_day`).Exec(), 0x2200, "unconfigured table temperature_by_day")
	exec(t, s, createByDay)
	if times, _ := readings(t, s.Query(`SELECT event_time, temperature FROM sensors.temperature_by_day`)); len(times) != 0 {
		t.Errorf("a re-created table shows %d old rows", len(times))
	}
	exec(t, s, `DROP TABLE IF EXISTS sensors.nope`)
	exec(t, s, `DROP KEYSPACE sensors`)
	assertCode(t, s.Query(`SELECT * FROM sensors.temperature_by_day`).Exec(), 0x2200, "Keyspace 'sensors' does not exist")
	var n int
	if err := s.Query(`SELECT count(*) FROM system_schema.tables WHERE keyspace_name = 'sensors'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("system_schema.tables after DROP KEYSPACE: %d, %v", n, err)
	}
	assertCode(t, s.Query(`DROP TABLE system.local`).Exec(), 0x2200, "not user-modifiable")
}

// TestPreparedAfterSchemaChange: a statement prepared before its table was
// re-created with other columns is re-prepared by the driver.
func TestPreparedAfterSchemaChange(t *testing.T) {
	ts := startServer(t, t.TempDir())
	s := newSession(t, ts.addr)
	exec(t, s, createSensors)
	exec(t, s, `CREATE TABLE sensors.p (k int PRIMARY KEY, v text)`)
	exec(t, s, `INSERT INTO sensors.p (k, v) VALUES (1, 'one')`)
	var v string
	if err := s.Query(`SELECT * FROM sensors.p WHERE k = ?`, 1).Scan(new(int), &v); err != nil || v != "one" {
		t.Fatalf("select: %q %v", v, err)
	}
	exec(t, s, `DROP TABLE sensors.p`)
	exec(t, s, `CREATE TABLE sensors.p (k int PRIMARY KEY, v int, w text)`)
	exec(t, s, `INSERT INTO sensors.p (k, v, w) VALUES (1, 7, 'seven')`)
	var k, vi int
	var w string
	if err := s.Query(`SELECT * FROM sensors.p WHERE k = ?`, 1).Scan(&k, &vi, &w); err != nil || vi != 7 || w != "seven" {
		t.Fatalf("select after re-creating the table: %d %q %v", vi, w, err)
	}
}

func TestRestartKeepsSchemaAndRows(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir)
	s := newSession(t, ts.addr, func(c *gocql.ClusterConfig) {
		c.ReconnectInterval = 100 * time.Millisecond
		c.ReconnectionPolicy = &gocql.ConstantReconnectionPolicy{MaxRetries: 50, Interval: 100 * time.Millisecond}
	})
	sensorSchema(t, s)
	for i := 0; i < 20; i++ {
		exec(t, s, insertByDay, "s1", day0, day0.Add(time.Duration(i)*time.Second), float64(i))
	}
	const q = `SELECT event_time, temperature FROM sensors.temperature_by_day WHERE sensor_id = ? AND event_date = ?`
	if times, _ := readings(t, s.Query(q, "s1", day0)); len(times) != 20 {
		t.Fatalf("before restart: %d rows", len(times))
	}
	ts.stop(t)

	// Same directory, same address: the old session reconnects, its
	// prepared statement ids are unknown to the new process, and it
	// re-prepares on the Unprepared error.
	logs := &logCapture{}
	srv, err := Open(Config{Dir: dir, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", ts.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		srv.Close()
		t.Fatalf("listen again on %s: %v", ts.addr, err)
	}
	ts2 := &testServer{Server: srv, dir: dir, addr: ts.addr, done: make(chan error, 1)}
	go func() { ts2.done <- srv.Serve(ln) }()
	t.Cleanup(func() { ts2.stop(t) })

	deadline := time.Now().Add(20 * time.Second)
	for {
		iter := s.Query(q, "s1", day0).Iter()
		n := iter.NumRows()
		err := iter.Close()
		if err == nil {
			if n != 20 {
				t.Fatalf("after restart: %d rows, want 20", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the old session never recovered: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if logs.count("unknown prepared id") == 0 {
		t.Errorf("the old session's EXECUTE never met Unprepared (did it re-prepare for another reason?)")
	}
	exec(t, s, insertByDay, "s1", day0, day0.Add(time.Hour), 99.0)
	// A fresh session sees the schema in system_schema and the rows.
	s2 := newSession(t, ts.addr)
	km, err := s2.KeyspaceMetadata("sensors")
	if err != nil || km.Tables["temperature_by_day"] == nil || km.Tables["last_alert_per_sensor"] == nil {
		t.Fatalf("schema after restart: %+v, %v", km, err)
	}
	if times, _ := readings(t, s2.Query(q, "s1", day0)); len(times) != 21 {
		t.Errorf("after restart and a write: %d rows, want 21", len(times))
	}
}

// assertCode checks that err is a CQL error with the code and a message
// containing want.
func assertCode(t testing.TB, err error, code int, want string) {
	t.Helper()
	var re gocql.RequestError
	if !errors.As(err, &re) {
		t.Errorf("got %v, want CQL error %#x containing %q", err, code, want)
		return
	}
	if re.Code() != code || !strings.Contains(re.Message(), want) {
		t.Errorf("got error %#x %q, want %#x containing %q", re.Code(), re.Message(), code, want)
	}
}

// TestHotRowFlush: a row updated many times gets its merge operands folded
// by a memtable flush, and reads stay right.
func TestHotRowFlush(t *testing.T) {
	ts := startServer(t, t.TempDir())
	s := newSession(t, ts.addr)
	exec(t, s, createSensors)
	exec(t, s, createAlerts)
	for round := 0; round < 3; round++ {
		batch := s.NewBatch(gocql.UnloggedBatch)
		for i := 0; i < 2000; i++ {
			batch.Query(`UPDATE sensors.last_alert_per_sensor SET temperature = ? WHERE sensor_id = 'hot'`, float64(round*2000+i))
		}
		if err := s.ExecuteBatch(batch); err != nil {
			t.Fatal(err)
		}
	}
	if ts.eng.hot.flushes.Load() == 0 {
		t.Errorf("6000 updates of one row did not flush the memtable (limit %d)", hotRowLimit)
	}
	var temp float64
	if err := s.Query(`SELECT temperature FROM sensors.last_alert_per_sensor WHERE sensor_id = 'hot'`).Scan(&temp); err != nil || temp != 5999 {
		t.Errorf("hot row reads %v, %v; want 5999", temp, err)
	}
}
