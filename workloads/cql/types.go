package cql

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"math/big"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/datastax/go-cassandra-native-protocol/datatype"
	"github.com/datastax/go-cassandra-native-protocol/primitive"
)

// CQL types are datatype.DataType values from the protocol library. Values
// are kept everywhere in their native-protocol serialised form ([]byte), so a
// value bound by a client is validated, stored and returned without being
// decoded into Go values.

var primitiveTypes = map[string]datatype.DataType{
	"ascii": datatype.Ascii, "bigint": datatype.Bigint, "blob": datatype.Blob,
	"boolean": datatype.Boolean, "date": datatype.Date, "decimal": datatype.Decimal,
	"double": datatype.Double, "float": datatype.Float, "inet": datatype.Inet,
	"int": datatype.Int, "smallint": datatype.Smallint, "text": datatype.Varchar,
	"varchar": datatype.Varchar, "time": datatype.Time, "timestamp": datatype.Timestamp,
	"timeuuid": datatype.Timeuuid, "tinyint": datatype.Tinyint, "uuid": datatype.Uuid,
	"varint": datatype.Varint,
}

// typeName is the CQL name of a type as system_schema shows it.
func typeName(dt datatype.DataType) string {
	switch t := dt.(type) {
	case *datatype.List:
		return "list<" + typeName(t.ElementType) + ">"
	case *datatype.Set:
		return "set<" + typeName(t.ElementType) + ">"
	case *datatype.Map:
		return "map<" + typeName(t.KeyType) + ", " + typeName(t.ValueType) + ">"
	}
	if dt.Code() == primitive.DataTypeCodeVarchar {
		return "text"
	}
	return dt.AsCql()
}

// parseTypeName reads a type name as typeName writes it (the catalog stores
// types by name).
func parseTypeName(s string) (datatype.DataType, error) {
	p := &parser{src: s}
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p.toks = toks
	dt, err := p.dataType()
	if err != nil {
		return nil, err
	}
	if p.peek().kind != tokEOF {
		return nil, p.unexpected("end of type")
	}
	return dt, nil
}

// fixedSize is the serialised size of fixed-width types, 0 for the others.
func fixedSize(code primitive.DataTypeCode) int {
	switch code {
	case primitive.DataTypeCodeBoolean, primitive.DataTypeCodeTinyint:
		return 1
	case primitive.DataTypeCodeSmallint:
		return 2
	case primitive.DataTypeCodeInt, primitive.DataTypeCodeFloat, primitive.DataTypeCodeDate:
		return 4
	case primitive.DataTypeCodeBigint, primitive.DataTypeCodeCounter, primitive.DataTypeCodeDouble,
		primitive.DataTypeCodeTimestamp, primitive.DataTypeCodeTime:
		return 8
	case primitive.DataTypeCodeUuid, primitive.DataTypeCodeTimeuuid:
		return 16
	}
	return 0
}

// validateValue checks that b is a well-formed serialised value of type dt.
func validateValue(dt datatype.DataType, b []byte) error {
	code := dt.Code()
	if n := fixedSize(code); n != 0 {
		if len(b) != n {
			return invalidf("expected %d bytes for a %s value, got %d", n, typeName(dt), len(b))
		}
		if code == primitive.DataTypeCodeTimeuuid && b[6]>>4 != 1 {
			return invalidf("unsupported UUID for timeuuid: version %d, expected a version 1 (time-based) UUID", b[6]>>4)
		}
		if code == primitive.DataTypeCodeTime && int64(binary.BigEndian.Uint64(b)) < 0 || code == primitive.DataTypeCodeTime && binary.BigEndian.Uint64(b) >= 86400e9 {
			return invalidf("time value out of range (nanoseconds since midnight)")
		}
		return nil
	}
	switch code {
	case primitive.DataTypeCodeVarchar:
		if !utf8.Valid(b) {
			return invalidf("invalid UTF-8 bytes in a text value")
		}
	case primitive.DataTypeCodeAscii:
		for _, c := range b {
			if c >= 0x80 {
				return invalidf("invalid byte %#x in an ascii value", c)
			}
		}
	case primitive.DataTypeCodeInet:
		if len(b) != 4 && len(b) != 16 {
			return invalidf("expected 4 or 16 bytes for an inet value, got %d", len(b))
		}
	case primitive.DataTypeCodeDecimal:
		if len(b) < 4 {
			return invalidf("expected at least 4 bytes for a decimal value, got %d", len(b))
		}
	case primitive.DataTypeCodeList, primitive.DataTypeCodeSet:
		var elem datatype.DataType
		if l, ok := dt.(*datatype.List); ok {
			elem = l.ElementType
		} else {
			elem = dt.(*datatype.Set).ElementType
		}
		return validateCollection(b, elem, nil)
	case primitive.DataTypeCodeMap:
		m := dt.(*datatype.Map)
		return validateCollection(b, m.KeyType, m.ValueType)
	}
	return nil
}

// validateCollection checks a v4 collection: [int n] then n elements (or
// key/value pairs), each [int length][bytes].
func validateCollection(b []byte, elem, val datatype.DataType) error {
	if len(b) < 4 {
		return invalidf("collection value too short")
	}
	n := int32(binary.BigEndian.Uint32(b))
	if n < 0 {
		return invalidf("negative collection size")
	}
	b = b[4:]
	per := 1
	if val != nil {
		per = 2
	}
	for i := int32(0); i < n; i++ {
		for j := 0; j < per; j++ {
			if len(b) < 4 {
				return invalidf("collection value truncated")
			}
			l := int32(binary.BigEndian.Uint32(b))
			b = b[4:]
			if l < 0 || int(l) > len(b) {
				return invalidf("collection element with a bad length")
			}
			t := elem
			if j == 1 {
				t = val
			}
			if err := validateValue(t, b[:l]); err != nil {
				return err
			}
			b = b[l:]
		}
	}
	if len(b) != 0 {
		return invalidf("%d trailing bytes after a collection value", len(b))
	}
	return nil
}

// literalValue converts a constant from the statement text to the serialised
// form of type dt. litNull yields nil.
func literalValue(dt datatype.DataType, t term) ([]byte, error) {
	if t.kind == litNull {
		return nil, nil
	}
	code := dt.Code()
	bad := func() ([]byte, error) {
		return nil, invalidf("invalid %s constant (%s) for a %s value", kindName(t.kind), shortText(t.text), typeName(dt))
	}
	switch code {
	case primitive.DataTypeCodeVarchar, primitive.DataTypeCodeAscii:
		if t.kind != litString {
			return bad()
		}
		b := []byte(t.text)
		return b, validateValue(dt, b)
	case primitive.DataTypeCodeBlob:
		if t.kind != litHex {
			return bad()
		}
		if len(t.text)%2 != 0 {
			return nil, invalidf("blob constant 0x%s has an odd number of hex digits", shortText(t.text))
		}
		return hex.DecodeString(t.text)
	case primitive.DataTypeCodeBoolean:
		if t.kind != litBool && !(t.kind == litString && (strings.EqualFold(t.text, "true") || strings.EqualFold(t.text, "false"))) {
			return bad()
		}
		if strings.EqualFold(t.text, "true") {
			return []byte{1}, nil
		}
		return []byte{0}, nil
	case primitive.DataTypeCodeTinyint, primitive.DataTypeCodeSmallint, primitive.DataTypeCodeInt,
		primitive.DataTypeCodeBigint, primitive.DataTypeCodeCounter:
		if t.kind != litInteger && t.kind != litString {
			return bad()
		}
		size := fixedSize(code)
		v, err := strconv.ParseInt(t.text, 10, size*8)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return nil, invalidf("integer %s out of range for a %s value", shortText(t.text), typeName(dt))
			}
			return nil, notAnInteger(dt, t.text)
		}
		b := make([]byte, 8)
		binary.BigEndian.PutUint64(b, uint64(v))
		return b[8-size:], nil
	case primitive.DataTypeCodeVarint:
		// Like the fixed-size integers: an integer or a string holding one.
		if t.kind != litInteger && t.kind != litString {
			return bad()
		}
		v, ok := new(big.Int).SetString(t.text, 10)
		if !ok {
			return nil, notAnInteger(dt, t.text)
		}
		return varintBytes(v), nil
	case primitive.DataTypeCodeDecimal:
		if t.kind != litInteger && t.kind != litFloat {
			return bad()
		}
		return decimalBytes(t.text)
	case primitive.DataTypeCodeFloat, primitive.DataTypeCodeDouble:
		if t.kind != litInteger && t.kind != litFloat {
			return bad()
		}
		f, err := parseFloat(t.text)
		if err != nil {
			return bad()
		}
		if code == primitive.DataTypeCodeFloat {
			return binary.BigEndian.AppendUint32(nil, math.Float32bits(float32(f))), nil
		}
		return binary.BigEndian.AppendUint64(nil, math.Float64bits(f)), nil
	case primitive.DataTypeCodeTimestamp:
		var ms int64
		switch t.kind {
		case litInteger:
			v, err := strconv.ParseInt(t.text, 10, 64)
			if err != nil {
				return bad()
			}
			ms = v
		case litString:
			tm, err := parseTimestamp(t.text)
			if err != nil {
				return nil, invalidf("unable to parse a timestamp from '%s'", shortText(t.text))
			}
			ms = tm.UnixMilli()
		default:
			return bad()
		}
		return binary.BigEndian.AppendUint64(nil, uint64(ms)), nil
	case primitive.DataTypeCodeDate:
		switch t.kind {
		case litInteger:
			v, err := strconv.ParseUint(t.text, 10, 32)
			if err != nil {
				return bad()
			}
			return binary.BigEndian.AppendUint32(nil, uint32(v)), nil
		case litString:
			tm, err := time.Parse("2006-01-02", t.text)
			if err != nil {
				return nil, invalidf("unable to coerce '%s' to a formatted date (yyyy-mm-dd)", shortText(t.text))
			}
			days := tm.Unix() / 86400
			return binary.BigEndian.AppendUint32(nil, uint32(days+(1<<31))), nil
		}
		return bad()
	case primitive.DataTypeCodeTime:
		switch t.kind {
		case litInteger:
			v, err := strconv.ParseInt(t.text, 10, 64)
			if err != nil || v < 0 || v >= 86400e9 {
				return bad()
			}
			return binary.BigEndian.AppendUint64(nil, uint64(v)), nil
		case litString:
			ns, err := parseTimeOfDay(t.text)
			if err != nil {
				return nil, invalidf("unable to coerce '%s' to a formatted time (hh:mm:ss[.fffffffff])", shortText(t.text))
			}
			return binary.BigEndian.AppendUint64(nil, uint64(ns)), nil
		}
		return bad()
	case primitive.DataTypeCodeUuid, primitive.DataTypeCodeTimeuuid:
		if t.kind != litUUID {
			return bad()
		}
		b, err := hex.DecodeString(strings.ReplaceAll(t.text, "-", ""))
		if err != nil {
			return bad()
		}
		return b, validateValue(dt, b)
	case primitive.DataTypeCodeInet:
		if t.kind != litString {
			return bad()
		}
		ip := net.ParseIP(t.text)
		if ip == nil {
			return nil, invalidf("unable to make an inet address from '%s'", shortText(t.text))
		}
		if v4 := ip.To4(); v4 != nil {
			return v4, nil
		}
		return ip, nil
	case primitive.DataTypeCodeList, primitive.DataTypeCodeSet:
		var elem datatype.DataType
		if l, ok := dt.(*datatype.List); ok {
			if t.kind != litList {
				return bad()
			}
			elem = l.ElementType
		} else {
			if t.kind != litSet && !(t.kind == litList && len(t.elems) == 0) {
				return bad()
			}
			elem = dt.(*datatype.Set).ElementType
		}
		elems := make([][]byte, 0, len(t.elems))
		for _, e := range t.elems {
			b, err := literalValue(elem, e)
			if err != nil {
				return nil, err
			}
			if b == nil {
				return nil, invalidf("null is not supported inside collections")
			}
			elems = append(elems, b)
		}
		if code == primitive.DataTypeCodeSet {
			elems = sortUnique(elem, elems)
		}
		return collectionBytes(elems), nil
	case primitive.DataTypeCodeMap:
		m := dt.(*datatype.Map)
		if t.kind != litMap && !(t.kind == litSet && len(t.elems) == 0) {
			return bad()
		}
		type kv struct{ k, v []byte }
		pairs := make(map[string]kv, len(t.elems))
		var keys [][]byte
		for i, e := range t.elems {
			k, err := literalValue(m.KeyType, e)
			if err != nil {
				return nil, err
			}
			v, err := literalValue(m.ValueType, t.vals[i])
			if err != nil {
				return nil, err
			}
			if k == nil || v == nil {
				return nil, invalidf("null is not supported inside collections")
			}
			if _, dup := pairs[string(k)]; !dup {
				keys = append(keys, k)
			}
			pairs[string(k)] = kv{k, v}
		}
		keys = sortUnique(m.KeyType, keys)
		var flat [][]byte
		for _, k := range keys {
			flat = append(flat, k, pairs[string(k)].v)
		}
		b := collectionBytes(flat)
		binary.BigEndian.PutUint32(b, uint32(len(keys)))
		return b, nil
	}
	return nil, invalidf("constants of type %s are not supported", typeName(dt))
}

// collectionBytes serialises elements as a v4 collection.
func collectionBytes(elems [][]byte) []byte {
	n := 4
	for _, e := range elems {
		n += 4 + len(e)
	}
	b := make([]byte, 4, n)
	binary.BigEndian.PutUint32(b, uint32(len(elems)))
	for _, e := range elems {
		b = binary.BigEndian.AppendUint32(b, uint32(len(e)))
		b = append(b, e...)
	}
	return b
}

// notAnInteger is the error for a constant given to an integer type that
// is not a (base 10) integer at all.
func notAnInteger(dt datatype.DataType, text string) error {
	return invalidf("invalid %s value %q: not an integer", typeName(dt), shortText(text))
}

func kindName(k literalKind) string {
	switch k {
	case litString:
		return "string"
	case litInteger:
		return "integer"
	case litFloat:
		return "float"
	case litBool:
		return "boolean"
	case litUUID:
		return "uuid"
	case litHex:
		return "blob"
	case litList:
		return "list"
	case litSet:
		return "set"
	case litMap:
		return "map"
	}
	return "null"
}

func shortText(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func parseFloat(s string) (float64, error) {
	switch strings.ToLower(s) {
	case "nan", "-nan":
		return math.NaN(), nil
	case "infinity":
		return math.Inf(1), nil
	case "-infinity":
		return math.Inf(-1), nil
	}
	return strconv.ParseFloat(s, 64)
}

// varintBytes is the two's complement big-endian form CQL varints use.
func varintBytes(v *big.Int) []byte {
	if v.Sign() >= 0 {
		b := v.Bytes()
		if len(b) == 0 || b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
		return b
	}
	// -v - 1, inverted.
	n := new(big.Int).Neg(v)
	n.Sub(n, big.NewInt(1))
	b := n.Bytes()
	for i := range b {
		b[i] = ^b[i]
	}
	if len(b) == 0 || b[0]&0x80 == 0 {
		b = append([]byte{0xff}, b...)
	}
	return b
}

// decimalBytes encodes a decimal constant: [int scale][varint unscaled].
func decimalBytes(s string) ([]byte, error) {
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(s[i+1:])
		if err != nil {
			return nil, invalidf("invalid decimal constant %s", shortText(s))
		}
		mant, exp = s[:i], e
	}
	scale := 0
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		scale = len(mant) - i - 1
		mant = mant[:i] + mant[i+1:]
	}
	v, ok := new(big.Int).SetString(mant, 10)
	if !ok {
		return nil, invalidf("invalid decimal constant %s", shortText(s))
	}
	scale -= exp
	if scale > math.MaxInt32 || scale < math.MinInt32 {
		return nil, invalidf("decimal constant %s out of range", shortText(s))
	}
	b := binary.BigEndian.AppendUint32(nil, uint32(int32(scale)))
	return append(b, varintBytes(v)...), nil
}

// timestampLayouts are the literal forms Cassandra accepts for timestamps.
var timestampLayouts = []string{
	"2006-01-02 15:04:05.999999999Z0700", "2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999Z0700", "2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04Z0700", "2006-01-02T15:04Z0700", "2006-01-02 15:04", "2006-01-02T15:04",
	"2006-01-02Z0700", "2006-01-02",
}

func parseTimestamp(s string) (time.Time, error) {
	var err error
	for _, l := range timestampLayouts {
		var t time.Time
		if t, err = time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}

func parseTimeOfDay(s string) (int64, error) {
	t, err := time.Parse("15:04:05.999999999", s)
	if err != nil {
		return 0, err
	}
	return int64(t.Hour())*3600e9 + int64(t.Minute())*60e9 + int64(t.Second())*1e9 + int64(t.Nanosecond()), nil
}
