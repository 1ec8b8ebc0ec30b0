package cql

import (
	"errors"
	"math/big"
	"testing"

	"github.com/datastax/go-cassandra-native-protocol/datatype"
	"github.com/datastax/go-cassandra-native-protocol/message"
	"github.com/datastax/go-cassandra-native-protocol/primitive"
	"github.com/gocql/gocql"
)

// assertExact checks that err is a CQL error with exactly this code and
// message.
func assertExact(t testing.TB, err error, code int, want string) {
	t.Helper()
	var re gocql.RequestError
	if !errors.As(err, &re) {
		t.Errorf("got %v, want CQL error %#x %q", err, code, want)
		return
	}
	if re.Code() != code || re.Message() != want {
		t.Errorf("got error %#x %q, want %#x %q", re.Code(), re.Message(), code, want)
	}
}

// A constant that is not an integer, given to an integer column, is
// refused as not an integer; an integer too big for the column is refused
// as out of range. Every integer type, in the statement text.
func TestIntegerLiteralErrors(t *testing.T) {
	ts := startServer(t, t.TempDir())
	s := newSession(t, ts.addr)
	exec(t, s, createSensors)
	exec(t, s, `CREATE TABLE sensors.ints (k int PRIMARY KEY, i int, bi bigint, si smallint, ti tinyint, vi varint)`)

	for _, c := range []struct {
		q, want string
	}{
		// Not integers: a string constant, for each integer type.
		{`INSERT INTO sensors.ints (k, i) VALUES (1, 'not-an-int')`, `invalid value for i: invalid int value "not-an-int": not an integer`},
		{`INSERT INTO sensors.ints (k, bi) VALUES (1, 'not-an-int')`, `invalid value for bi: invalid bigint value "not-an-int": not an integer`},
		{`INSERT INTO sensors.ints (k, si) VALUES (1, 'not-an-int')`, `invalid value for si: invalid smallint value "not-an-int": not an integer`},
		{`INSERT INTO sensors.ints (k, ti) VALUES (1, 'not-an-int')`, `invalid value for ti: invalid tinyint value "not-an-int": not an integer`},
		{`INSERT INTO sensors.ints (k, vi) VALUES (1, 'not-an-int')`, `invalid value for vi: invalid varint value "not-an-int": not an integer`},
		{`INSERT INTO sensors.ints (k, i) VALUES (1, '')`, `invalid value for i: invalid int value "": not an integer`},
		{`INSERT INTO sensors.ints (k, i) VALUES (1, '1.5')`, `invalid value for i: invalid int value "1.5": not an integer`},
		{`SELECT * FROM sensors.ints WHERE k = 'not-an-int'`, `invalid value for k: invalid int value "not-an-int": not an integer`},
		// Real integers out of range, as integer and string constants.
		{`INSERT INTO sensors.ints (k, i) VALUES (1, 2147483648)`, `invalid value for i: integer 2147483648 out of range for a int value`},
		{`INSERT INTO sensors.ints (k, bi) VALUES (1, -9223372036854775809)`, `invalid value for bi: integer -9223372036854775809 out of range for a bigint value`},
		{`INSERT INTO sensors.ints (k, si) VALUES (1, 32768)`, `invalid value for si: integer 32768 out of range for a smallint value`},
		{`INSERT INTO sensors.ints (k, ti) VALUES (1, 128)`, `invalid value for ti: integer 128 out of range for a tinyint value`},
		{`INSERT INTO sensors.ints (k, ti) VALUES (1, '-129')`, `invalid value for ti: integer -129 out of range for a tinyint value`},
	} {
		assertExact(t, s.Query(c.q).Exec(), 0x2200, c.want)
	}

	// Integers in range, as integer or string constants, are stored.
	exec(t, s, `INSERT INTO sensors.ints (k, i, bi, si, ti, vi) VALUES (1, '-2147483648', 9223372036854775807, '32767', -128, '-123456789012345678901234567890')`)
	var i int32
	var bi int64
	var si int16
	var ti int8
	var vi *big.Int
	if err := s.Query(`SELECT i, bi, si, ti, vi FROM sensors.ints WHERE k = 1`).Scan(&i, &bi, &si, &ti, &vi); err != nil {
		t.Fatal(err)
	}
	if i != -2147483648 || bi != 9223372036854775807 || si != 32767 || ti != -128 || vi.String() != "-123456789012345678901234567890" {
		t.Errorf("read back %d %d %d %d %v", i, bi, si, ti, vi)
	}
}

// The same conversion without a server, including counter (which cannot
// share a table with the others).
func TestIntegerLiteralValue(t *testing.T) {
	for _, c := range []struct {
		dt   datatype.DataType
		tm   term
		want string
	}{
		{datatype.Counter, term{kind: litString, text: "not-an-int"}, `invalid counter value "not-an-int": not an integer`},
		{datatype.Counter, term{kind: litInteger, text: "9223372036854775808"}, `integer 9223372036854775808 out of range for a counter value`},
		{datatype.Int, term{kind: litString, text: "0x10"}, `invalid int value "0x10": not an integer`},
		{datatype.Varint, term{kind: litString, text: "12e3"}, `invalid varint value "12e3": not an integer`},
		{datatype.Int, term{kind: litFloat, text: "1.5"}, `invalid float constant (1.5) for a int value`},
	} {
		_, err := literalValue(c.dt, c.tm)
		var e *Error
		if !errors.As(err, &e) || e.Code != codeInvalid || e.Message != c.want {
			t.Errorf("%s %q: got %v, want Invalid %q", typeName(c.dt), c.tm.text, err, c.want)
		}
	}
}

// A text value bound to an integer column (the bytes of the text where a
// serialised int belongs) is refused for its size, not as out of range.
// (This path never went through the literal conversion; the test keeps it
// that way.)
func TestTextBoundToInt(t *testing.T) {
	ts := startServer(t, t.TempDir())
	r := startedRaw(t, ts.addr)
	r.send(1, &message.Query{Query: createSensors, Options: &message.QueryOptions{}})
	r.mustRecv()
	r.send(2, &message.Query{Query: `CREATE TABLE sensors.ints (k int PRIMARY KEY, i int, bi bigint)`, Options: &message.QueryOptions{}})
	r.mustRecv()
	for i, c := range []struct{ q, want string }{
		{`INSERT INTO sensors.ints (k, i) VALUES (1, ?)`, "invalid value for i: expected 4 bytes for a int value, got 10"},
		{`INSERT INTO sensors.ints (k, bi) VALUES (1, ?)`, "invalid value for bi: expected 8 bytes for a bigint value, got 10"},
	} {
		stream := int16(10 + i)
		r.send(stream, &message.Query{Query: c.q, Options: &message.QueryOptions{
			PositionalValues: []*primitive.Value{primitive.NewValue([]byte("not-an-int"))},
		}})
		f := r.mustRecv()
		e, ok := f.Body.Message.(message.Error)
		if !ok || f.Header.StreamId != stream || e.GetErrorCode() != primitive.ErrorCodeInvalid || e.GetErrorMessage() != c.want {
			t.Errorf("%s: got %v on stream %d, want Invalid %q", c.q, f.Body.Message, f.Header.StreamId, c.want)
		}
	}
}
