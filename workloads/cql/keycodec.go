package cql

import (
	"bytes"
	"errors"
	"sort"

	"github.com/datastax/go-cassandra-native-protocol/datatype"
	"github.com/datastax/go-cassandra-native-protocol/primitive"
)

// Order-preserving encoding of key components. Every encoding is prefix-free
// (no encoded value is a prefix of another), so a concatenation of encoded
// components sorts like the tuple of values, and a descending component is
// its encoding with every byte inverted.
//
//   - signed integers, timestamp, time: big-endian with the sign bit flipped
//   - date: as is (already an unsigned, epoch-centred day count)
//   - float, double: IEEE bits, sign bit flipped, all bits inverted if negative
//   - boolean: as is
//   - uuid, timeuuid: version nibble, then for version 1 the timestamp
//     (hi, mid, low) before the rest, so timeuuids sort by time
//   - everything else (text, blob, inet, varint, ...): bytes with 0x00
//     escaped as 0x00 0xFF, terminated by 0x00 0x01 (byte order)
//
// varint, decimal and collections sort by bytes, not by value, so they may
// be partition key components but not clustering columns (orderable).

var errBadKey = errors.New("malformed key encoding")

// orderable reports whether a type sorts correctly as a clustering column.
func orderable(dt datatype.DataType) bool {
	switch dt.Code() {
	case primitive.DataTypeCodeVarint, primitive.DataTypeCodeDecimal, primitive.DataTypeCodeList,
		primitive.DataTypeCodeSet, primitive.DataTypeCodeMap, primitive.DataTypeCodeDuration:
		return false
	}
	return true
}

// appendKey appends the encoding of the serialised value v of type dt. The
// value must have been validated (validateValue).
func appendKey(dst []byte, dt datatype.DataType, v []byte, desc bool) []byte {
	start := len(dst)
	switch dt.Code() {
	case primitive.DataTypeCodeTinyint, primitive.DataTypeCodeSmallint, primitive.DataTypeCodeInt,
		primitive.DataTypeCodeBigint, primitive.DataTypeCodeCounter, primitive.DataTypeCodeTimestamp,
		primitive.DataTypeCodeTime:
		dst = append(dst, v...)
		dst[start] ^= 0x80
	case primitive.DataTypeCodeDate, primitive.DataTypeCodeBoolean:
		dst = append(dst, v...)
	case primitive.DataTypeCodeFloat, primitive.DataTypeCodeDouble:
		dst = append(dst, v...)
		if v[0]&0x80 != 0 {
			for i := start; i < len(dst); i++ {
				dst[i] = ^dst[i]
			}
		} else {
			dst[start] ^= 0x80
		}
	case primitive.DataTypeCodeUuid, primitive.DataTypeCodeTimeuuid:
		ver := v[6] >> 4
		dst = append(dst, ver)
		if ver == 1 {
			dst = append(dst, v[6], v[7], v[4], v[5], v[0], v[1], v[2], v[3])
			dst = append(dst, v[8:]...)
		} else {
			dst = append(dst, v...)
		}
	default:
		for _, c := range v {
			if c == 0 {
				dst = append(dst, 0, 0xff)
			} else {
				dst = append(dst, c)
			}
		}
		dst = append(dst, 0, 1)
	}
	if desc {
		for i := start; i < len(dst); i++ {
			dst[i] = ^dst[i]
		}
	}
	return dst
}

// decodeKey reads one component encoded by appendKey from the front of src
// and returns its serialised value (appended to buf) and the rest of src.
func decodeKey(buf []byte, dt datatype.DataType, src []byte, desc bool) (val, rest []byte, err error) {
	var x byte
	if desc {
		x = 0xff
	}
	start := len(buf)
	code := dt.Code()
	if n := fixedSize(code); n != 0 {
		enc := n
		if code == primitive.DataTypeCodeUuid || code == primitive.DataTypeCodeTimeuuid {
			enc = 17
		}
		if len(src) < enc {
			return nil, nil, errBadKey
		}
		for _, c := range src[:enc] {
			buf = append(buf, c^x)
		}
		v := buf[start:]
		switch code {
		case primitive.DataTypeCodeDate, primitive.DataTypeCodeBoolean:
		case primitive.DataTypeCodeFloat, primitive.DataTypeCodeDouble:
			if v[0]&0x80 == 0 {
				for i := range v {
					v[i] = ^v[i]
				}
			} else {
				v[0] ^= 0x80
			}
		case primitive.DataTypeCodeUuid, primitive.DataTypeCodeTimeuuid:
			ver := v[0]
			if ver == 1 {
				t := [8]byte{v[5], v[6], v[7], v[8], v[3], v[4], v[1], v[2]}
				copy(v[1:9], t[:])
			}
			copy(v, v[1:])
			v = v[:16]
			buf = buf[:start+16]
		default:
			v[0] ^= 0x80
		}
		return buf[start:], src[enc:], nil
	}
	for i := 0; i < len(src); i++ {
		c := src[i] ^ x
		if c != 0 {
			buf = append(buf, c)
			continue
		}
		if i+1 >= len(src) {
			return nil, nil, errBadKey
		}
		switch src[i+1] ^ x {
		case 0xff:
			buf = append(buf, 0)
			i++
		case 1:
			if buf == nil {
				buf = []byte{}
			}
			return buf[start:], src[i+2:], nil
		default:
			return nil, nil, errBadKey
		}
	}
	return nil, nil, errBadKey
}

// prefixEnd is the smallest key greater than every key with prefix p, or nil
// when there is none (p is all 0xFF).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// compareValues orders two serialised values of type dt as CQL does (byte
// order for the types that are not orderable).
func compareValues(dt datatype.DataType, a, b []byte) int {
	var ka, kb [64]byte
	return bytes.Compare(appendKey(ka[:0], dt, a, false), appendKey(kb[:0], dt, b, false))
}

// sortUnique sorts set elements (or map keys) the way Cassandra stores them
// and drops duplicates.
func sortUnique(dt datatype.DataType, elems [][]byte) [][]byte {
	sort.SliceStable(elems, func(i, j int) bool { return compareValues(dt, elems[i], elems[j]) < 0 })
	out := elems[:0]
	for i, e := range elems {
		if i > 0 && compareValues(dt, out[len(out)-1], e) == 0 {
			continue
		}
		out = append(out, e)
	}
	return out
}
