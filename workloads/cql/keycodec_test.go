package cql

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand"
	"sort"
	"testing"

	"github.com/datastax/go-cassandra-native-protocol/datatype"
)

// valueLess orders serialised values of a type by their meaning, the way
// CQL does, independently of the key encoding.
func valueLess(dt datatype.DataType, a, b []byte) bool {
	switch dt {
	case datatype.Int:
		return int32(binary.BigEndian.Uint32(a)) < int32(binary.BigEndian.Uint32(b))
	case datatype.Bigint, datatype.Timestamp:
		return int64(binary.BigEndian.Uint64(a)) < int64(binary.BigEndian.Uint64(b))
	case datatype.Date:
		return binary.BigEndian.Uint32(a) < binary.BigEndian.Uint32(b)
	case datatype.Double:
		return math.Float64frombits(binary.BigEndian.Uint64(a)) < math.Float64frombits(binary.BigEndian.Uint64(b))
	case datatype.Float:
		return math.Float32frombits(binary.BigEndian.Uint32(a)) < math.Float32frombits(binary.BigEndian.Uint32(b))
	case datatype.Timeuuid:
		ts := func(u []byte) uint64 {
			return uint64(binary.BigEndian.Uint16(u[6:8])&0x0fff)<<48 | uint64(binary.BigEndian.Uint16(u[4:6]))<<32 | uint64(binary.BigEndian.Uint32(u[0:4]))
		}
		if ts(a) != ts(b) {
			return ts(a) < ts(b)
		}
		return bytes.Compare(a[8:], b[8:]) < 0
	}
	return bytes.Compare(a, b) < 0 // text, blob
}

func randomValue(r *rand.Rand, dt datatype.DataType) []byte {
	b := make([]byte, 8)
	r.Read(b)
	switch dt {
	case datatype.Int, datatype.Date:
		return b[:4]
	case datatype.Float:
		return binary.BigEndian.AppendUint32(nil, math.Float32bits(float32(r.NormFloat64()*1e3)))
	case datatype.Double:
		return binary.BigEndian.AppendUint64(nil, math.Float64bits(r.NormFloat64()*1e6))
	case datatype.Timeuuid:
		u := make([]byte, 16)
		r.Read(u)
		u[6] = u[6]&0x0f | 0x10
		return u
	case datatype.Varchar, datatype.Blob:
		n := r.Intn(6)
		s := make([]byte, n)
		for i := range s {
			s[i] = []byte{0, 1, 'a', 0xff, 'b'}[r.Intn(5)] // zero bytes and 0xff test the escaping
		}
		if dt == datatype.Varchar {
			for i := range s {
				s[i] &= 0x7f
			}
		}
		return s
	}
	return b
}

// TestKeyOrder checks that encoded keys sort like the values they encode, in
// both directions, and decode back to the same values.
func TestKeyOrder(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, dt := range []datatype.DataType{datatype.Int, datatype.Bigint, datatype.Timestamp, datatype.Date, datatype.Double, datatype.Float, datatype.Timeuuid, datatype.Varchar, datatype.Blob} {
		for _, desc := range []bool{false, true} {
			vals := make([][]byte, 300)
			for i := range vals {
				vals[i] = randomValue(r, dt)
			}
			type enc struct{ v, k []byte }
			encs := make([]enc, len(vals))
			for i, v := range vals {
				// A trailing component makes sure a shorter key is not a
				// prefix that sorts wrongly.
				k := appendKey(nil, dt, v, desc)
				k = appendKey(k, datatype.Int, []byte{0xff, 0xff, 0xff, 0xff}, false)
				encs[i] = enc{v, k}
				got, rest, err := decodeKey(nil, dt, k, desc)
				if err != nil || !bytes.Equal(got, v) || len(rest) != 4 {
					t.Fatalf("%s desc=%v: decode(encode(%x)) = %x, rest %x, %v", dt, desc, v, got, rest, err)
				}
			}
			sort.Slice(encs, func(i, j int) bool { return bytes.Compare(encs[i].k, encs[j].k) < 0 })
			for i := 1; i < len(encs); i++ {
				a, b := encs[i-1].v, encs[i].v
				if desc {
					a, b = b, a
				}
				if valueLess(dt, b, a) {
					t.Fatalf("%s desc=%v: %x sorts before %x", dt, desc, encs[i-1].v, encs[i].v)
				}
			}
		}
	}
}

func TestDecodeKeyRejectsGarbage(t *testing.T) {
	for _, k := range [][]byte{{}, {1, 2}, {'a', 0}, {'a', 0, 7}} {
		if _, _, err := decodeKey(nil, datatype.Varchar, k, false); err == nil {
			t.Errorf("decodeKey(%x) accepted garbage", k)
		}
	}
	if _, _, err := decodeKey(nil, datatype.Bigint, []byte{1, 2, 3}, false); err == nil {
		t.Errorf("decodeKey accepted a short bigint")
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, c := range []struct{ in, want []byte }{
		{[]byte{1, 2}, []byte{1, 3}},
		{[]byte{1, 0xff}, []byte{2}},
		{[]byte{0xff, 0xff}, nil},
	} {
		if got := prefixEnd(c.in); !bytes.Equal(got, c.want) {
			t.Errorf("prefixEnd(%x) = %x, want %x", c.in, got, c.want)
		}
	}
}
