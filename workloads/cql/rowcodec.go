package cql

import (
	"encoding/binary"
	"errors"
	"io"

	"github.com/cockroachdb/pebble/v2"
)

// A row's regular columns are stored as one pebble value:
//
//	flags byte (rowMarker: the row was written by INSERT and exists even
//	with every regular column null)
//	then cells in column-id order: uvarint id, uvarint len+1 (0: null), bytes
//
// An INSERT that sets every regular column Sets the value; a partial write
// (UPDATE, INSERT of some columns, DELETE of columns) Merges it: rowMerger
// lets newer cells override older ones, so partial writes need no
// read-modify-write.

const rowMarker = 1

var errBadRow = errors.New("malformed row value")

// appendCell appends one cell; v == nil is a null (a deleted cell).
func appendCell(dst []byte, id int, v []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(id))
	if v == nil {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(v))+1)
	return append(dst, v...)
}

// cellReader walks the cells of a row value.
type cellReader struct {
	b   []byte
	err error
}

// next returns the next cell; ok is false at the end or on error.
func (r *cellReader) next() (id int, v []byte, null, ok bool) {
	if len(r.b) == 0 {
		return 0, nil, false, false
	}
	cid, n := binary.Uvarint(r.b)
	if n <= 0 || cid > 1<<16 {
		r.err = errBadRow
		return 0, nil, false, false
	}
	r.b = r.b[n:]
	l, n := binary.Uvarint(r.b)
	if n <= 0 || l > uint64(len(r.b)-n)+1 {
		r.err = errBadRow
		return 0, nil, false, false
	}
	r.b = r.b[n:]
	if l == 0 {
		return int(cid), nil, true, true
	}
	v = r.b[: l-1 : l-1]
	r.b = r.b[l-1:]
	return int(cid), v, false, true
}

// mergeRowValues folds a newer row value over an older one into a new
// slice.
func mergeRowValues(older, newer []byte) ([]byte, error) {
	if len(older) == 0 || len(newer) == 0 {
		return append(append([]byte(nil), older...), newer...), nil
	}
	out := make([]byte, 1, len(older)+len(newer))
	out[0] = older[0] | newer[0]
	a, b := cellReader{b: older[1:]}, cellReader{b: newer[1:]}
	aid, av, anull, aok := a.next()
	bid, bv, bnull, bok := b.next()
	for aok || bok {
		switch {
		case aok && (!bok || aid < bid):
			out = appendMergedCell(out, aid, av, anull)
			aid, av, anull, aok = a.next()
		case bok && (!aok || bid < aid):
			out = appendMergedCell(out, bid, bv, bnull)
			bid, bv, bnull, bok = b.next()
		default: // same column: the newer wins
			out = appendMergedCell(out, bid, bv, bnull)
			aid, av, anull, aok = a.next()
			bid, bv, bnull, bok = b.next()
		}
	}
	if a.err != nil || b.err != nil {
		return nil, errBadRow
	}
	return out, nil
}

func appendMergedCell(dst []byte, id int, v []byte, null bool) []byte {
	if null {
		return appendCell(dst, id, nil)
	}
	if v == nil {
		v = []byte{}
	}
	return appendCell(dst, id, v)
}

// rowMerger is the pebble merge operator for row values. Its name is
// recorded in the store: changing the encoding needs a new name.
var rowMerger = &pebble.Merger{
	Name: "ballast.cql.row.v1",
	Merge: func(key, value []byte) (pebble.ValueMerger, error) {
		return &rowValueMerger{acc: append([]byte(nil), value...)}, nil
	},
}

// rowValueMerger folds operands as they come, so a key with many operands
// costs one pass per operand.
type rowValueMerger struct{ acc []byte }

func (m *rowValueMerger) MergeNewer(value []byte) (err error) {
	m.acc, err = mergeRowValues(m.acc, value)
	return err
}

func (m *rowValueMerger) MergeOlder(value []byte) (err error) {
	m.acc, err = mergeRowValues(value, m.acc)
	return err
}

func (m *rowValueMerger) Finish(includesBase bool) ([]byte, io.Closer, error) {
	return m.acc, nil, nil
}

// rowLive reports whether a row value holds a live row: written by INSERT,
// or with at least one non-null cell.
func rowLive(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	if v[0]&rowMarker != 0 {
		return true
	}
	r := cellReader{b: v[1:]}
	for {
		_, _, null, ok := r.next()
		if !ok {
			return false
		}
		if !null {
			return true
		}
	}
}
