package cql

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/datastax/go-cassandra-native-protocol/frame"
	"github.com/datastax/go-cassandra-native-protocol/message"
	"github.com/datastax/go-cassandra-native-protocol/primitive"
)

// FuzzParse: the statement parser never panics and fails only with Syntax
// or Invalid errors.
func FuzzParse(f *testing.F) {
	for _, q := range validStatements {
		f.Add(q)
	}
	for _, c := range invalidStatements {
		f.Add(c.q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		p, err := parse(q)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != codeSyntax && e.Code != codeInvalid {
				t.Fatalf("parse(%q) failed with %v, want a Syntax or Invalid CQL error", q, err)
			}
			return
		}
		if p.stmt == nil {
			t.Fatalf("parse(%q) returned no statement", q)
		}
	})
}

// encodeFrames encodes request frames with the library codec.
func encodeFrames(tb testing.TB, msgs ...message.Message) []byte {
	var buf bytes.Buffer
	codec := frame.NewCodec()
	for i, m := range msgs {
		if err := codec.EncodeFrame(frame.NewFrame(primitive.ProtocolVersion4, int16(i), m), &buf); err != nil {
			tb.Fatal(err)
		}
	}
	return buf.Bytes()
}

// FuzzDecodeFrame feeds bytes to the frame decoder and to a whole
// connection handler of a real server: requests decode or fail with a
// Protocol error, the handler always finishes, and everything it writes
// back is a well-formed response frame.
func FuzzDecodeFrame(f *testing.F) {
	q := func(s string, vals ...[]byte) *message.Query {
		o := &message.QueryOptions{PageSize: 2}
		for _, v := range vals {
			o.PositionalValues = append(o.PositionalValues, primitive.NewValue(v))
		}
		return &message.Query{Query: s, Options: o}
	}
	startup := message.NewStartup("CQL_VERSION", "3.0.0")
	f.Add(encodeFrames(f, &message.Options{}, startup))
	f.Add(encodeFrames(f, startup,
		q(createSensors), q(createAlerts),
		q(`INSERT INTO sensors.last_alert_per_sensor (sensor_id, temperature) VALUES (?, ?)`, []byte("a"), doubleValue(1)),
		q(`SELECT * FROM sensors.last_alert_per_sensor`),
		&message.Prepare{Query: `SELECT * FROM sensors.last_alert_per_sensor WHERE sensor_id = ?`},
		&message.Execute{QueryId: preparedID("", `SELECT * FROM sensors.last_alert_per_sensor WHERE sensor_id = ?`), Options: &message.QueryOptions{PositionalValues: []*primitive.Value{primitive.NewValue([]byte("a"))}}},
		&message.Batch{Type: primitive.BatchTypeUnlogged, Children: []*message.BatchChild{
			{Query: `INSERT INTO sensors.last_alert_per_sensor (sensor_id) VALUES (?)`, Values: []*primitive.Value{primitive.NewValue([]byte("b"))}},
		}},
		&message.Register{EventTypes: []primitive.EventType{primitive.EventTypeSchemaChange}},
	))
	f.Add(encodeFrames(f, startup, q(`SELECT * FROM system.local WHERE key = ?`, []byte("local")), q(`SELEKT`)))
	f.Add(rawFrame(5, 0, 5, nil))
	f.Add(rawFrame(4, 1, 0x07, []byte{0, 0, 0, 1, 'x', 0, 1, 1, 0, 5, 0x7f, 0xff, 0xff}))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))

	srv, err := Open(Config{Dir: f.TempDir(), Logger: quietLogger()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close() })
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9042}

	f.Fuzz(func(t *testing.T, data []byte) {
		// The decoder alone.
		for rest := data; len(rest) >= headerLen; {
			h := parseHeader(rest)
			if checkHeader(h) != nil || int(h.length) > len(rest)-headerLen {
				break
			}
			body := rest[headerLen : headerLen+int(h.length)]
			rest = rest[headerLen+int(h.length):]
			if _, err := decodeRequest(h, body); err != nil {
				var e *Error
				if !errors.As(err, &e) || e.Code != codeProtocol {
					t.Fatalf("decodeRequest failed with %v, want a Protocol error", err)
				}
			}
		}

		// The connection handler against the server.
		var out bytes.Buffer
		c := newConn(srv, bytes.NewReader(data), &out, func() {}, local)
		done := make(chan struct{})
		go func() {
			c.serve()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("the connection handler did not finish")
		}
		codec := frame.NewCodec()
		r := bytes.NewReader(out.Bytes())
		refusals := 0
		for r.Len() > 0 {
			if rest := out.Bytes()[out.Len()-r.Len():]; rest[0]&0x7f != byte(protoVersion) {
				// The refusal of another protocol version, in that version
				// (possibly one the library cannot decode). Only answers to
				// requests still running may follow it.
				f, after, err := parseRawError(rest)
				if refusals++; err != nil || refusals > 1 || !f.response || f.code != codeProtocol {
					t.Fatalf("the server refused a protocol version with %x: %+v, %v (refusal #%d)", rest, f, err, refusals)
				}
				r = bytes.NewReader(after)
				continue
			}
			fr, err := codec.DecodeFrame(r)
			if err != nil {
				t.Fatalf("the server wrote a malformed frame: %v", err)
			}
			if !fr.Header.IsResponse {
				t.Fatalf("the server wrote a request frame: %v", fr)
			}
		}
	})
}
