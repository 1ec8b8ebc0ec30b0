package cql

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/datastax/go-cassandra-native-protocol/frame"
	"github.com/datastax/go-cassandra-native-protocol/message"
	"github.com/datastax/go-cassandra-native-protocol/primitive"
)

// Bad statements get ERROR frames naming the problem, and the connection
// goes on working.
func TestStatementErrors(t *testing.T) {
	ts := startServer(t, t.TempDir())
	s := newSession(t, ts.addr)
	sensorSchema(t, s)
	exec(t, s, `CREATE TABLE sensors.multi (p int, a int, b text, v int, PRIMARY KEY (p, a, b))`)
	for _, c := range []struct {
		q    string
		args []any
		code int
		want string
	}{
		{`SELEKT * FROM sensors.temperature_by_day`, nil, 0x2000, "mismatched input 'SELEKT'"},
		{`SELECT * FROM sensors.temperature_by_day WHERE`, nil, 0x2000, "end of statement"},
		{`CREATE INDEX ON sensors.temperature_by_day (temperature)`, nil, 0x2200, "CREATE INDEX is not supported"},
		{`INSERT INTO sensors.last_alert_per_sensor (sensor_id) VALUES ('a') IF NOT EXISTS`, nil, 0x2200, "lightweight transaction"},
		{`UPDATE sensors.last_alert_per_sensor USING TTL 5 SET temperature = 1 WHERE sensor_id = 'a'`, nil, 0x2200, "USING TTL"},
		{`SELECT * FROM nowhere.t`, nil, 0x2200, "Keyspace 'nowhere' does not exist"},
		{`SELECT * FROM sensors.nope`, nil, 0x2200, "unconfigured table nope"},
		{`SELECT * FROM temperature_by_day`, nil, 0x2200, "No keyspace has been specified"},
		{`SELECT nope FROM sensors.temperature_by_day`, nil, 0x2200, "Undefined column name nope"},
		{`INSERT INTO sensors.last_alert_per_sensor (sensor_id, temperature) VALUES ('a', 'hot')`, nil, 0x2200, "invalid string constant (hot) for a double"},
		{`INSERT INTO sensors.last_alert_per_sensor (sensor_id, event_time) VALUES ('a', 'yesterday')`, nil, 0x2200, "unable to parse a timestamp"},
		{`INSERT INTO sensors.last_alert_per_sensor (temperature) VALUES (1.5)`, nil, 0x2200, "Some partition key parts are missing: sensor_id"},
		{`INSERT INTO sensors.temperature_by_day (sensor_id, event_date, temperature) VALUES ('a', '2024-01-01', 1)`, nil, 0x2200, "Some clustering keys are missing: event_time"},
		{`INSERT INTO sensors.last_alert_per_sensor (sensor_id, temperature) VALUES (?, ?)`, []any{nil, 1.5}, 0x2200, "Invalid null value for sensor_id"},
		{`INSERT INTO sensors.last_alert_per_sensor (sensor_id, temperature) VALUES ('', 1.5)`, nil, 0x2200, "Key may not be empty"},
		{`SELECT * FROM sensors.temperature_by_day WHERE sensor_id = 'a'`, nil, 0x2200, "Partition key parts: event_date must be restricted"},
		{`SELECT * FROM sensors.temperature_by_day WHERE temperature > 1`, nil, 0x2200, "ALLOW FILTERING"},
		{`SELECT * FROM sensors.temperature_by_day WHERE sensor_id = 'a' AND event_date = '2024-01-01' ORDER BY temperature`, nil, 0x2200, "Order by is currently only supported on the clustered columns"},
		{`SELECT * FROM sensors.temperature_by_day ORDER BY event_time`, nil, 0x2200, "ORDER BY is only supported when the partition key is restricted"},
		{`SELECT * FROM sensors.temperature_by_day WHERE sensor_id = 'a' AND event_date = '2024-01-01' LIMIT 0`, nil, 0x2200, "LIMIT must be strictly positive"},
		{`SELECT * FROM sensors.temperature_by_day WHERE sensor_id = 'a' AND sensor_id = 'b' AND event_date = '2024-01-01'`, nil, 0x2200, "more than one relation"},
		{`SELECT * FROM sensors.multi WHERE p = 1 AND b = 'x'`, nil, 0x2200, `PRIMARY KEY column "b" cannot be restricted as preceding column "a" is not restricted`},
		{`SELECT * FROM sensors.multi WHERE p = 1 AND a > 1 AND b = 'x'`, nil, 0x2200, `Clustering column "b" cannot be restricted (preceding column "a" is restricted by a non-EQ relation)`},
		{`SELECT * FROM sensors.multi WHERE p = 1 AND a IN (1, 2)`, nil, 0x2200, "IN on a clustering column"},
		{`SELECT DISTINCT event_time FROM sensors.temperature_by_day`, nil, 0x2200, "SELECT DISTINCT queries must only request partition key columns"},
		{`SELECT count(*), sensor_id FROM sensors.temperature_by_day`, nil, 0x2200, "mixing count()"},
		{`UPDATE sensors.temperature_by_day SET sensor_id = 'x' WHERE sensor_id = 'a' AND event_date = '2024-01-01' AND event_time = 0`, nil, 0x2200, "PRIMARY KEY part sensor_id found in SET part"},
		{`UPDATE sensors.temperature_by_day SET temperature = 1 WHERE sensor_id = 'a' AND event_date = '2024-01-01'`, nil, 0x2200, "Some clustering keys are missing: event_time"},
		{`DELETE FROM sensors.temperature_by_day WHERE temperature = 1`, nil, 0x2200, "Non PRIMARY KEY columns found in where clause"},
		{`INSERT INTO system.local (key) VALUES ('x')`, nil, 0x2200, "system tables are read-only"},
		{`CREATE TABLE sensors.bad (a int, b varint, PRIMARY KEY (a, b))`, nil, 0x2200, "clustering column of type varint"},
		{`CREATE TABLE sensors.bad (a int PRIMARY KEY, a text)`, nil, 0x2200, "Multiple definition of identifier a"},
		{`CREATE TABLE sensors.bad (a int, b int, PRIMARY KEY (a, c))`, nil, 0x2200, "Unknown definition c referenced in PRIMARY KEY"},
		{`CREATE TABLE sensors.bad (a int, b int, c int, PRIMARY KEY (a, b, c)) WITH CLUSTERING ORDER BY (c DESC)`, nil, 0x2200, "CLUSTERING ORDER directive must be the one of the clustering key"},
		{`CREATE TABLE sensors.bad (a int PRIMARY KEY) WITH CLUSTERING ORDER BY (a DESC)`, nil, 0x2200, "Only clustering key columns"},
		{`CREATE KEYSPACE k WITH replication = {'class': 'NoSuchStrategy'}`, nil, 0x2300, "Unable to find replication strategy class"},
		{`DROP KEYSPACE nowhere`, nil, 0x2300, "Cannot drop non existing keyspace"},
		{`DROP TABLE sensors.nope`, nil, 0x2300, "Cannot drop non existing table"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.Query(c.q, c.args...).WithContext(ctx).Exec()
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: no answer within 5s", c.q)
		}
		assertCode(t, err, c.code, c.want)
		// The session still works.
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		var n int
		if err := s.Query(`SELECT count(*) FROM sensors.last_alert_per_sensor`).WithContext(ctx).Scan(&n); err != nil {
			t.Fatalf("after %q: %v", c.q, err)
		}
		cancel()
	}
}

// rawConn speaks the native protocol directly, with the library's codec.
type rawConn struct {
	t     *testing.T
	c     net.Conn
	codec frame.Codec
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, codec: frame.NewCodec()}
}

func (r *rawConn) send(stream int16, msg message.Message) {
	r.t.Helper()
	var buf bytes.Buffer
	if err := r.codec.EncodeFrame(frame.NewFrame(primitive.ProtocolVersion4, stream, msg), &buf); err != nil {
		r.t.Fatal(err)
	}
	r.write(buf.Bytes())
}

func (r *rawConn) write(b []byte) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

// recv reads one response frame; a 5 s deadline makes a hang a failure.
func (r *rawConn) recv() (*frame.Frame, error) {
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	return r.codec.DecodeFrame(r.c)
}

func (r *rawConn) mustRecv() *frame.Frame {
	r.t.Helper()
	f, err := r.recv()
	if err != nil {
		r.t.Fatalf("no response frame: %v", err)
	}
	return f
}

// expectClosed checks that the server closes the connection (EOF), not
// that it hangs.
func (r *rawConn) expectClosed() {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, r.c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		r.t.Fatalf("connection still open after 5s")
	}
}

func expectError(t *testing.T, f *frame.Frame, stream int16, code primitive.ErrorCode, want string) {
	t.Helper()
	e, ok := f.Body.Message.(message.Error)
	if !ok {
		t.Fatalf("got %v, want an ERROR", f.Body.Message)
	}
	if f.Header.StreamId != stream || e.GetErrorCode() != code || !strings.Contains(e.GetErrorMessage(), want) {
		t.Fatalf("got error %v on stream %d, want %v containing %q on stream %d", e, f.Header.StreamId, code, want, stream)
	}
}

func TestRawProtocol(t *testing.T) {
	ts := startServer(t, t.TempDir())
	r := dialRaw(t, ts.addr)

	r.send(1, &message.Options{})
	sup, ok := r.mustRecv().Body.Message.(*message.Supported)
	if !ok || sup.Options["PROTOCOL_VERSIONS"][0] != "4/v4" || len(sup.Options["COMPRESSION"]) != 0 {
		t.Fatalf("SUPPORTED: %v", sup)
	}
	r.send(2, &message.Query{Query: "SELECT * FROM system.local"})
	expectError(t, r.mustRecv(), 2, primitive.ErrorCodeProtocolError, "expecting STARTUP or OPTIONS")
	r.send(3, message.NewStartup("CQL_VERSION", "3.0.0"))
	if f := r.mustRecv(); f.Header.OpCode != primitive.OpCodeReady {
		t.Fatalf("STARTUP answered %v", f.Body.Message)
	}
	r.send(4, &message.Register{EventTypes: []primitive.EventType{primitive.EventTypeSchemaChange}})
	if f := r.mustRecv(); f.Header.OpCode != primitive.OpCodeReady {
		t.Fatalf("REGISTER answered %v", f.Body.Message)
	}

	// EXECUTE of an unknown id: Unprepared, carrying the id.
	id := []byte{1, 2, 3, 4}
	r.send(5, &message.Execute{QueryId: id, Options: &message.QueryOptions{}})
	f := r.mustRecv()
	expectError(t, f, 5, primitive.ErrorCodeUnprepared, "not found")
	if un := f.Body.Message.(*message.Unprepared); !bytes.Equal(un.Id, id) {
		t.Errorf("Unprepared id %x, want %x", un.Id, id)
	}

	// Schema changes are pushed to registered connections on stream -1.
	r.send(6, &message.Query{Query: createSensors, Options: &message.QueryOptions{}})
	gotResult, gotEvent := false, false
	for !gotResult || !gotEvent {
		f := r.mustRecv()
		switch m := f.Body.Message.(type) {
		case *message.SchemaChangeResult:
			gotResult = f.Header.StreamId == 6 && m.Keyspace == "sensors"
		case *message.SchemaChangeEvent:
			gotEvent = f.Header.StreamId == -1 && m.Keyspace == "sensors"
		default:
			t.Fatalf("unexpected %v", m)
		}
	}
	r.send(7, &message.Query{Query: `USE "sensors"`, Options: &message.QueryOptions{}})
	if ks, ok := r.mustRecv().Body.Message.(*message.SetKeyspaceResult); !ok || ks.Keyspace != "sensors" {
		t.Fatalf("USE answered %v", ks)
	}
	r.send(8, &message.Query{Query: `USE nowhere`, Options: &message.QueryOptions{}})
	expectError(t, r.mustRecv(), 8, primitive.ErrorCodeInvalid, "Keyspace 'nowhere' does not exist")

	// Pipelining: many streams in flight, each answered on its own stream.
	r.send(9, &message.Query{Query: createAlerts, Options: &message.QueryOptions{}})
	for f := r.mustRecv(); f.Header.StreamId != 9; f = r.mustRecv() {
	}
	const n = 300
	var batch bytes.Buffer
	for i := 0; i < n; i++ {
		msg := &message.Query{Query: `INSERT INTO last_alert_per_sensor (sensor_id, temperature) VALUES (?, ?)`, Options: &message.QueryOptions{
			PositionalValues: []*primitive.Value{primitive.NewValue([]byte(strings.Repeat("x", i+1))), primitive.NewValue(doubleValue(float64(i)))},
		}}
		if err := r.codec.EncodeFrame(frame.NewFrame(primitive.ProtocolVersion4, int16(100+i), msg), &batch); err != nil {
			t.Fatal(err)
		}
	}
	r.write(batch.Bytes())
	seen := map[int16]bool{}
	for len(seen) < n {
		f := r.mustRecv()
		if _, ok := f.Body.Message.(*message.VoidResult); !ok || f.Header.StreamId < 100 || f.Header.StreamId >= 100+n || seen[f.Header.StreamId] {
			t.Fatalf("pipelined insert: %v on stream %d", f.Body.Message, f.Header.StreamId)
		}
		seen[f.Header.StreamId] = true
	}
	r.send(10, &message.Query{Query: `SELECT count(*) FROM last_alert_per_sensor`, Options: &message.QueryOptions{}})
	rows, ok := r.mustRecv().Body.Message.(*message.RowsResult)
	if !ok || len(rows.Data) != 1 || binary.BigEndian.Uint64(rows.Data[0][0]) != n {
		t.Fatalf("count after pipelined inserts: %v", rows)
	}

	// Named bind markers with named values.
	r.send(14, &message.Query{Query: `SELECT temperature FROM last_alert_per_sensor WHERE sensor_id = :id`, Options: &message.QueryOptions{
		NamedValues: map[string]*primitive.Value{"id": primitive.NewValue([]byte("xxx"))},
	}})
	if rows, ok := r.mustRecv().Body.Message.(*message.RowsResult); !ok || len(rows.Data) != 1 || !bytes.Equal(rows.Data[0][0], doubleValue(2)) {
		t.Fatalf("named values: %v", rows)
	}
	r.send(15, &message.Query{Query: `SELECT temperature FROM last_alert_per_sensor WHERE sensor_id = :id`, Options: &message.QueryOptions{
		NamedValues: map[string]*primitive.Value{"other": primitive.NewValue([]byte("xxx"))},
	}})
	expectError(t, r.mustRecv(), 15, primitive.ErrorCodeInvalid, "No value has been provided for bind variable id")

	// Wrong value count and wrong value size for a bound value.
	r.send(11, &message.Query{Query: `SELECT * FROM last_alert_per_sensor WHERE sensor_id = ?`, Options: &message.QueryOptions{}})
	expectError(t, r.mustRecv(), 11, primitive.ErrorCodeInvalid, "There were 1 markers(?) in CQL but 0 bound variables")
	r.send(12, &message.Query{Query: `INSERT INTO last_alert_per_sensor (sensor_id, temperature) VALUES ('a', ?)`, Options: &message.QueryOptions{
		PositionalValues: []*primitive.Value{primitive.NewValue([]byte{1, 2, 3})},
	}})
	expectError(t, r.mustRecv(), 12, primitive.ErrorCodeInvalid, "expected 8 bytes for a double value, got 3")
	r.send(13, &message.Query{Query: `INSERT INTO last_alert_per_sensor (sensor_id) VALUES (?)`, Options: &message.QueryOptions{
		PositionalValues: []*primitive.Value{primitive.NewValue([]byte{0xff, 0xfe})},
	}})
	expectError(t, r.mustRecv(), 13, primitive.ErrorCodeInvalid, "invalid UTF-8")
}

// rawFrame builds a v4 request frame by hand.
func rawFrame(version byte, stream int16, opcode byte, body []byte) []byte {
	b := []byte{version, 0, byte(stream >> 8), byte(stream), opcode}
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

func startedRaw(t *testing.T, addr string) *rawConn {
	r := dialRaw(t, addr)
	r.send(0, message.NewStartup("CQL_VERSION", "3.0.0"))
	r.mustRecv()
	return r
}

// Garbage frames get an error frame or a closed connection, never a hang.
func TestGarbageFrames(t *testing.T) {
	ts := startServer(t, t.TempDir())

	t.Run("protocol v5", func(t *testing.T) {
		r := dialRaw(t, ts.addr)
		r.write(rawFrame(5, 0, byte(primitive.OpCodeOptions), nil))
		f, err := decodeAnyVersion(r)
		if err != nil {
			t.Fatal(err)
		}
		expectError(t, f, 0, primitive.ErrorCodeProtocolError, "the lowest supported version is 4 and the greatest is 4")
		r.expectClosed()
	})
	t.Run("http request", func(t *testing.T) {
		r := dialRaw(t, ts.addr)
		r.write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		r.expectClosed()
	})
	t.Run("huge body length", func(t *testing.T) {
		r := dialRaw(t, ts.addr)
		h := rawFrame(4, 3, byte(primitive.OpCodeQuery), nil)
		binary.BigEndian.PutUint32(h[5:], 1<<30)
		r.write(h)
		expectError(t, r.mustRecv(), 3, primitive.ErrorCodeProtocolError, "out of range")
		r.expectClosed()
	})
	t.Run("response frame as request", func(t *testing.T) {
		r := dialRaw(t, ts.addr)
		r.write(rawFrame(0x84, 1, byte(primitive.OpCodeResult), []byte{0, 0, 0, 1}))
		expectError(t, r.mustRecv(), 1, primitive.ErrorCodeProtocolError, "response frame")
		r.expectClosed()
	})
	t.Run("unknown opcode, then more requests", func(t *testing.T) {
		r := startedRaw(t, ts.addr)
		r.write(rawFrame(4, 7, 0x42, []byte("junk")))
		expectError(t, r.mustRecv(), 7, primitive.ErrorCodeProtocolError, "opcode 0x42")
		r.send(8, &message.Options{})
		if f := r.mustRecv(); f.Header.OpCode != primitive.OpCodeSupported || f.Header.StreamId != 8 {
			t.Fatalf("after a bad opcode: %v", f)
		}
	})
	t.Run("truncated bodies", func(t *testing.T) {
		r := startedRaw(t, ts.addr)
		for i, body := range [][]byte{
			{0, 0, 0, 10, 'S'},                                 // QUERY string longer than the body
			{0, 0, 0, 1, 'x', 0, 1},                            // QUERY without flags
			{0, 0, 0, 1, 'x', 0, 1, 1, 0, 5, 0x7f, 0xff, 0xff}, // 5 values claimed, a 2 GiB one
			{0xff, 0xff, 0xff, 0xff},                           // negative string length
		} {
			stream := int16(20 + i)
			r.write(rawFrame(4, stream, byte(primitive.OpCodeQuery), body))
			expectError(t, r.mustRecv(), stream, primitive.ErrorCodeProtocolError, "malformed request")
		}
		r.write(rawFrame(4, 30, byte(primitive.OpCodeBatch), []byte{1, 0xff, 0xff, 0}))
		expectError(t, r.mustRecv(), 30, primitive.ErrorCodeProtocolError, "malformed request")
		r.write(rawFrame(4, 31, byte(primitive.OpCodeExecute), []byte{0, 50, 1}))
		expectError(t, r.mustRecv(), 31, primitive.ErrorCodeProtocolError, "malformed request")
		r.send(32, &message.Options{})
		if f := r.mustRecv(); f.Header.StreamId != 32 {
			t.Fatalf("after truncated bodies: %v", f)
		}
	})
	t.Run("compressed frame", func(t *testing.T) {
		r := startedRaw(t, ts.addr)
		fr := rawFrame(4, 5, byte(primitive.OpCodeOptions), nil)
		fr[1] = 1
		r.write(fr)
		expectError(t, r.mustRecv(), 5, primitive.ErrorCodeProtocolError, "no compression was negotiated")
	})
	t.Run("half a frame then close", func(t *testing.T) {
		r := startedRaw(t, ts.addr)
		r.write(rawFrame(4, 5, byte(primitive.OpCodeQuery), []byte("abcdefgh"))[:12])
		r.c.(*net.TCPConn).CloseWrite()
		r.expectClosed()
	})
	t.Run("random bytes", func(t *testing.T) {
		rng := rand.New(rand.NewSource(7))
		for i := 0; i < 20; i++ {
			r := dialRaw(t, ts.addr)
			junk := make([]byte, rng.Intn(200)+1)
			rng.Read(junk)
			r.write(junk)
			r.c.(*net.TCPConn).CloseWrite()
			r.expectClosed() // whatever came back, the connection ends
		}
	})
	// The server still serves new clients after all that.
	s := newSession(t, ts.addr)
	var key string
	if err := s.Query(`SELECT key FROM system.local`).Scan(&key); err != nil || key != "local" {
		t.Fatalf("after garbage: %q %v", key, err)
	}
}

// decodeAnyVersion reads a response whatever its header version.
func decodeAnyVersion(r *rawConn) (*frame.Frame, error) {
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	return r.codec.DecodeFrame(r.c)
}
