package cql

import (
	"errors"
	"strings"
	"testing"

	"github.com/datastax/go-cassandra-native-protocol/primitive"
)

// validStatements parse; they also seed FuzzParse.
var validStatements = []string{
	`CREATE KEYSPACE IF NOT EXISTS sensors WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1};`,
	`create keyspace k with REPLICATION = {'class':'NetworkTopologyStrategy','dc1':3} and durable_writes = false`,
	`CREATE TABLE IF NOT EXISTS sensors.temperature_by_day (sensor_id text, event_date date, event_time timestamp, temperature double, PRIMARY KEY ((sensor_id, event_date), event_time)) WITH CLUSTERING ORDER BY (event_time DESC);`,
	`CREATE TABLE IF NOT EXISTS sensors.last_alert_per_sensor (sensor_id text PRIMARY KEY, event_time timestamp, temperature double)`,
	`CREATE TABLE t (a int, b int, c int, d map<text, frozen<list<int>>>, PRIMARY KEY (a, b, c)) WITH CLUSTERING ORDER BY (b ASC, c DESC) AND comment = 'x' AND gc_grace_seconds = 10 AND compaction = {'class': 'LeveledCompactionStrategy'}`,
	`INSERT INTO sensors.temperature_by_day (sensor_id, event_date, event_time, temperature) VALUES (?, ?, ?, ?)`,
	`INSERT INTO t ("Quoted", b) VALUES (:name, -1.5e3)`,
	`INSERT INTO t (a, b, c, d, e, f, g) VALUES (0xCAFE, 123e4567-e89b-12d3-a456-426614174000, true, null, [1, 2], {'a': 1}, {1, 2})`,
	`SELECT event_time, temperature FROM sensors.temperature_by_day WHERE sensor_id = ? AND event_date = ? AND event_time >= ? AND event_time < ? ORDER BY event_time ASC LIMIT 10`,
	`SELECT count(*) FROM sensors.temperature_by_day WHERE sensor_id = ? AND event_date = ?`,
	`SELECT COUNT(1) AS n FROM t`,
	`SELECT DISTINCT sensor_id, event_date FROM sensors.temperature_by_day`,
	`SELECT * FROM system.local WHERE key='local'`,
	`SELECT a FROM t WHERE a IN (1, 2, 3) AND b IN ? LIMIT ? ALLOW FILTERING`,
	`UPDATE t SET c = 1, d = 'x' WHERE a = 1 AND b = 2`,
	`DELETE FROM t WHERE a = 1 AND b > 5`,
	`DELETE c, d FROM t WHERE a = 1 AND b = 2`,
	`BEGIN UNLOGGED BATCH INSERT INTO t (a) VALUES (1); UPDATE t SET b = 2 WHERE a = 1; DELETE FROM t WHERE a = 3; APPLY BATCH`,
	`DROP TABLE IF EXISTS ks.t`, `DROP KEYSPACE ks`, `TRUNCATE ks.t`, `TRUNCATE TABLE t`, `USE "MyKs"`,
	"SELECT a -- comment\n FROM /* block */ t // more",
	`SELECT a FROM t WHERE b = $$it's$$ AND c = 'it''s'`,
	`SELECT a FROM t WHERE b = -NaN AND c = Infinity`,
}

func TestParseStatements(t *testing.T) {
	for _, q := range validStatements {
		if _, err := parse(q); err != nil {
			t.Errorf("parse(%q): %v", q, err)
		}
	}
}

func TestParseDetails(t *testing.T) {
	p, err := parse(`SELECT a AS x, "B" FROM ks.T WHERE a = ? AND b > :lo ORDER BY b DESC LIMIT 5`)
	if err != nil {
		t.Fatal(err)
	}
	s := p.stmt.(*selectStmt)
	if s.table != (tableName{"ks", "t"}) || len(s.selectors) != 2 || s.selectors[0].alias != "x" || s.selectors[1].column != "B" {
		t.Errorf("select parsed as %+v", s)
	}
	if len(p.binds) != 2 || p.binds[0] != "" || p.binds[1] != "lo" {
		t.Errorf("binds %q", p.binds)
	}
	if len(s.where) != 2 || s.where[1].op != ">" || !s.where[1].value.bind || s.where[1].value.index != 1 {
		t.Errorf("where %+v", s.where)
	}
	if len(s.orderBy) != 1 || !s.orderBy[0].desc || s.limit == nil || s.limit.text != "5" {
		t.Errorf("order/limit %+v %+v", s.orderBy, s.limit)
	}
	p, err = parse(`CREATE TABLE t (a int, b text, c int, PRIMARY KEY ((a, b), c)) WITH CLUSTERING ORDER BY (c DESC)`)
	if err != nil {
		t.Fatal(err)
	}
	ct := p.stmt.(*createTableStmt)
	if strings.Join(ct.partition, ",") != "a,b" || strings.Join(ct.clustering, ",") != "c" || len(ct.order) != 1 || !ct.order[0].desc {
		t.Errorf("create table parsed as %+v", ct)
	}
}

// invalidStatements are refused with the given code and message; they
// also seed FuzzParse.
var invalidStatements = []struct {
	q    string
	code primitive.ErrorCode
	want string
}{
	{`SELEC * FROM t`, codeSyntax, "mismatched input 'SELEC'"},
	{`SELECT * FROM`, codeSyntax, "end of statement"},
	{`SELECT * FROM t WHERE`, codeSyntax, "column name"},
	{`SELECT * FROM t WHERE a = 'unterminated`, codeSyntax, "unterminated string"},
	{`SELECT * FROM t extra`, codeSyntax, "mismatched input 'extra'"},
	{`INSERT INTO t (a, b) VALUES (1)`, codeInvalid, "2 columns but 1 values"},
	{`INSERT INTO t (a) VALUES (1) IF NOT EXISTS`, codeInvalid, "lightweight transaction"},
	{`INSERT INTO t (a) VALUES (1) USING TTL 10`, codeInvalid, "USING TTL"},
	{`UPDATE t SET c = c + 1 WHERE a = 1`, codeInvalid, "counter or collection update"},
	{`UPDATE t SET c = 1 WHERE a = 1 IF c = 2`, codeInvalid, "lightweight transaction"},
	{`CREATE INDEX ON t (b)`, codeInvalid, "CREATE INDEX is not supported"},
	{`CREATE MATERIALIZED VIEW v AS SELECT`, codeInvalid, "CREATE MATERIALIZED VIEW is not supported"},
	{`CREATE TYPE ty (a int)`, codeInvalid, "CREATE TYPE is not supported"},
	{`ALTER TABLE t ADD c int`, codeInvalid, "ALTER TABLE is not supported"},
	{`GRANT ALL ON t TO r`, codeInvalid, "GRANT is not supported"},
	{`CREATE TABLE t (a counter PRIMARY KEY)`, codeInvalid, "counter type"},
	{`CREATE TABLE t (a int PRIMARY KEY, b int static)`, codeInvalid, "static column"},
	{`CREATE TABLE t (a int PRIMARY KEY) WITH COMPACT STORAGE`, codeInvalid, "COMPACT STORAGE"},
	{`CREATE TABLE t (a int PRIMARY KEY) WITH default_time_to_live = 5`, codeInvalid, "default_time_to_live"},
	{`CREATE TABLE t (a int PRIMARY KEY) WITH nonsense = 1`, codeInvalid, "Unknown property 'nonsense'"},
	{`CREATE TABLE t (a int)`, codeInvalid, "no PRIMARY KEY"},
	{`CREATE TABLE t (a myudt PRIMARY KEY)`, codeInvalid, "user-defined types"},
	{`CREATE KEYSPACE k WITH durable_writes = true`, codeInvalid, "replication"},
	{`SELECT now() FROM t`, codeInvalid, "function now()"},
	{`SELECT * FROM t WHERE token(a) > 5`, codeInvalid, "token() relation"},
	{`SELECT * FROM t WHERE (a, b) > (1, 2)`, codeInvalid, "tuple"},
	{`SELECT * FROM t WHERE a CONTAINS 1`, codeInvalid, "CONTAINS"},
	{`SELECT * FROM t GROUP BY a`, codeInvalid, "GROUP BY"},
	{`SELECT * FROM t PER PARTITION LIMIT 1`, codeInvalid, "PER PARTITION LIMIT"},
	{`SELECT JSON a FROM t`, codeInvalid, "SELECT JSON"},
	{`SELECT * FROM t LIMIT 'x'`, codeSyntax, "LIMIT"},
	{`BEGIN COUNTER BATCH UPDATE t SET c = 1 WHERE a = 1 APPLY BATCH`, codeInvalid, "COUNTER BATCH"},
	{`BEGIN BATCH SELECT * FROM t APPLY BATCH`, codeSyntax, "INSERT, UPDATE, DELETE or APPLY BATCH"},
	{`SELECT * FROM t WHERE a = 1h30m`, codeInvalid, "duration"},
	{`SELECT * FROM select`, codeSyntax, "table name"},
	{"SELECT * FROM t WHERE a = \x01", codeSyntax, "unexpected character"},
	{`CREATE TABLE t (a list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<int>>>>>>>>>>>>>>>>> PRIMARY KEY)`, codeSyntax, "nested too deeply"},
	{``, codeSyntax, "a statement"},
}

func TestParseErrors(t *testing.T) {
	for _, c := range invalidStatements {
		_, err := parse(c.q)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("parse(%q) = %v, want a CQL error", c.q, err)
			continue
		}
		if e.Code != c.code || !strings.Contains(e.Message, c.want) {
			t.Errorf("parse(%q) = %#x %q, want %#x containing %q", c.q, uint32(e.Code), e.Message, uint32(c.code), c.want)
		}
	}
}
