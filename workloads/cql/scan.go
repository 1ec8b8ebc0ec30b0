package cql

import (
	"bytes"
	"encoding/binary"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	"github.com/datastax/go-cassandra-native-protocol/message"
	"github.com/datastax/go-cassandra-native-protocol/primitive"
)

// SELECT, execution: a plan (select.go) run as pebble range scans, with
// filters and paging.

// pageRequest is what a client asked for besides the bound values.
type pageRequest struct {
	pageSize    int32 // <= 0: no paging
	pagingState []byte
}

// resolvedFilter is a filter with its values bound.
type resolvedFilter struct {
	f            *filter
	vals         [][]byte
	lower, upper []byte
}

func (rf *resolvedFilter) match(row [][]byte) bool {
	v := row[rf.f.col.idx]
	if v == nil {
		return false
	}
	typ := rf.f.col.typ
	switch rf.f.op {
	case "=":
		return compareValues(typ, v, rf.vals[0]) == 0
	case "IN":
		for _, x := range rf.vals {
			if compareValues(typ, v, x) == 0 {
				return true
			}
		}
		return false
	}
	if rf.lower != nil {
		c := compareValues(typ, v, rf.lower)
		if c < 0 || c == 0 && !rf.f.lower.inclusive {
			return false
		}
	}
	if rf.upper != nil {
		c := compareValues(typ, v, rf.upper)
		if c > 0 || c == 0 && !rf.f.upper.inclusive {
			return false
		}
	}
	return true
}

func resolveFilters(fs []filter, vals []*primitive.Value) ([]resolvedFilter, error) {
	out := make([]resolvedFilter, len(fs))
	for i := range fs {
		f := &fs[i]
		rf := resolvedFilter{f: f}
		var err error
		switch f.op {
		case "=":
			var v []byte
			v, err = f.ref.keyValue(vals)
			rf.vals = [][]byte{v}
		case "IN":
			rf.vals, err = f.in.resolve(vals)
		default:
			if f.lower != nil {
				if rf.lower, err = f.lower.ref.keyValue(vals); err != nil {
					return nil, err
				}
			}
			if f.upper != nil {
				rf.upper, err = f.upper.ref.keyValue(vals)
			}
		}
		if err != nil {
			return nil, err
		}
		out[i] = rf
	}
	return out, nil
}

// span is a key range scanned in one direction.
type span struct{ lo, hi []byte }

// spans computes the key ranges of a keyed select, sorted by key.
func (p *selectPlan) spans(vals []*primitive.Value) ([]span, error) {
	t := p.t
	if p.pk == nil {
		return []span{{t.prefix, prefixEnd(t.prefix)}}, nil
	}
	parts := [][]byte{t.prefix}
	for i, c := range t.pk {
		vs, err := p.pk[i].resolve(vals)
		if err != nil {
			return nil, err
		}
		if len(parts)*len(vs) > maxPartitions {
			return nil, invalidf("IN restrictions select more than %d partitions", maxPartitions)
		}
		next := make([][]byte, 0, len(parts)*len(vs))
		for _, part := range parts {
			for _, v := range vs {
				if len(t.pk) == 1 && len(v) == 0 {
					return nil, invalidf("Key may not be empty")
				}
				next = append(next, appendKey(bytes.Clone(part), c.typ, v, false))
			}
		}
		parts = next
	}
	sort.Slice(parts, func(i, j int) bool { return bytes.Compare(parts[i], parts[j]) < 0 })
	var ck []byte
	for i := range p.ckEq {
		v, err := p.ckEq[i].keyValue(vals)
		if err != nil {
			return nil, err
		}
		ck = appendKey(ck, t.ck[i].typ, v, t.ck[i].desc)
	}
	var lower, upper []byte
	var err error
	if p.lower != nil {
		if lower, err = p.lower.ref.keyValue(vals); err != nil {
			return nil, err
		}
	}
	if p.upper != nil {
		if upper, err = p.upper.ref.keyValue(vals); err != nil {
			return nil, err
		}
	}
	out := make([]span, 0, len(parts))
	for i, part := range parts {
		if i > 0 && bytes.Equal(part, parts[i-1]) {
			continue
		}
		base := append(part, ck...)
		sp := clusteringSpan(base, p.rangeCol, p.lower, lower, p.upper, upper)
		if bytes.Compare(sp.lo, sp.hi) < 0 {
			out = append(out, sp)
		}
	}
	if len(out) > 1 && p.reversed {
		return nil, invalidf("Cannot page queries with both ORDER BY and a IN restriction on the partition key; you must either remove the ORDER BY or the IN and sort client side")
	}
	return out, nil
}

// clusteringSpan is the key range of the rows under base whose column c
// (the next clustering column) lies within the bounds.
func clusteringSpan(base []byte, c *column, lb *bound, lower []byte, ub *bound, upper []byte) span {
	sp := span{lo: base, hi: prefixEnd(base)}
	if c == nil {
		return sp
	}
	// In a descending column, a lower bound on the value bounds the keys
	// from above.
	apply := func(v []byte, inclusive, isLower bool) {
		enc := appendKey(bytes.Clone(base), c.typ, v, c.desc)
		if isLower != c.desc { // a start key
			lo := enc
			if !inclusive {
				lo = prefixEnd(enc)
			}
			if bytes.Compare(lo, sp.lo) > 0 {
				sp.lo = lo
			}
		} else {
			hi := prefixEnd(enc)
			if !inclusive {
				hi = enc
			}
			if bytes.Compare(hi, sp.hi) < 0 {
				sp.hi = hi
			}
		}
	}
	if lb != nil {
		apply(lower, lb.inclusive, true)
	}
	if ub != nil {
		apply(upper, ub.inclusive, false)
	}
	return sp
}

// pagingState is the opaque resume point handed to clients:
// version, span index, limit left + 1 (0: no limit), resume key.
type pagingState struct {
	span      int
	remaining int64 // -1: no limit
	resume    []byte
}

func (ps *pagingState) encode() []byte {
	b := []byte{pagingVersion}
	b = binary.AppendUvarint(b, uint64(ps.span))
	b = binary.AppendUvarint(b, uint64(ps.remaining+1))
	return append(b, ps.resume...)
}

func decodePagingState(b []byte, spans []span) (*pagingState, error) {
	bad := invalidf("invalid paging state: it does not belong to this query")
	if len(b) < 1 || b[0] != pagingVersion {
		return nil, bad
	}
	b = b[1:]
	sp, n := binary.Uvarint(b)
	if n <= 0 || sp >= uint64(len(spans)) {
		return nil, bad
	}
	b = b[n:]
	rem, n := binary.Uvarint(b)
	if n <= 0 || rem > 1<<31 {
		return nil, bad
	}
	ps := &pagingState{span: int(sp), remaining: int64(rem) - 1, resume: b[n:]}
	s := spans[ps.span]
	if bytes.Compare(ps.resume, s.lo) < 0 || bytes.Compare(ps.resume, s.hi) > 0 {
		return nil, bad
	}
	return ps, nil
}

// rowsResult builds the RESULT of a select.
func (e *engine) runSelect(p *selectPlan, vals []*primitive.Value, req pageRequest, vctx *virtualCtx) (*message.RowsResult, error) {
	limit := int64(-1)
	if p.limit != nil {
		v, err := p.limit.keyValue(vals)
		if err != nil {
			return nil, err
		}
		limit = int64(int32(binary.BigEndian.Uint32(v)))
		if limit <= 0 {
			return nil, invalidf("LIMIT must be strictly positive")
		}
	}
	filters, err := resolveFilters(p.filters, vals)
	if err != nil {
		return nil, err
	}
	res := &message.RowsResult{Metadata: &message.RowsMetadata{ColumnCount: int32(len(p.result)), Columns: p.result}}
	if p.t.virtual != nil {
		return e.selectVirtual(p, filters, limit, vctx, res)
	}
	spans, err := p.spans(vals)
	if err != nil {
		return nil, err
	}
	sc := &scan{e: e, p: p, filters: filters, spans: spans, remaining: limit}
	if p.count {
		sc.pageSize = -1
		sc.remaining = -1
		n, err := sc.countRows()
		if err != nil {
			return nil, err
		}
		res.Data = [][][]byte{{binary.BigEndian.AppendUint64(nil, uint64(n))}}
		return res, nil
	}
	sc.pageSize = int64(req.pageSize)
	if req.pagingState != nil {
		ps, err := decodePagingState(req.pagingState, spans)
		if err != nil {
			return nil, err
		}
		sc.spanIdx, sc.resume, sc.remaining = ps.span, ps.resume, ps.remaining
	}
	if err := sc.run(res); err != nil {
		return nil, err
	}
	return res, nil
}

func (e *engine) selectVirtual(p *selectPlan, filters []resolvedFilter, limit int64, vctx *virtualCtx, res *message.RowsResult) (*message.RowsResult, error) {
	var count int64
	for _, m := range p.t.virtual(vctx) {
		row := make([][]byte, len(p.t.columns))
		for i, c := range p.t.columns {
			row[i] = m[c.name]
		}
		ok := true
		for i := range filters {
			if !filters[i].match(row) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		if p.count {
			if p.countCol == nil || row[p.countCol.idx] != nil {
				count++
			}
			continue
		}
		out := make([][]byte, len(p.out))
		for i, c := range p.out {
			out[i] = row[c.idx]
		}
		res.Data = append(res.Data, out)
		if limit > 0 && int64(len(res.Data)) >= limit {
			break
		}
	}
	if p.count {
		res.Data = [][][]byte{{binary.BigEndian.AppendUint64(nil, uint64(count))}}
	}
	return res, nil
}

// scan iterates the rows of a keyed or full-table select.
type scan struct {
	e         *engine
	p         *selectPlan
	filters   []resolvedFilter
	spans     []span
	spanIdx   int
	resume    []byte // where to continue in spans[spanIdx]
	remaining int64  // LIMIT left, -1 none
	pageSize  int64  // <= 0: all

	arena []byte
	row   [][]byte
}

// decodeRow fills s.row (indexed like table.columns) from a stored row; the
// values are copied into the arena. pkLen is the length of the key up to
// the end of the partition key.
func (s *scan) decodeRow(key, val []byte) (pkLen int, err error) {
	t := s.p.t
	if s.row == nil {
		s.row = make([][]byte, len(t.columns))
	}
	for i := range s.row {
		s.row[i] = nil
	}
	rest := key[len(t.prefix):]
	for _, c := range t.pk {
		var v []byte
		if v, rest, err = decodeKey(s.arena, c.typ, rest, false); err != nil {
			return 0, err
		}
		s.arena = v[len(v):]
		s.row[c.idx] = v
	}
	pkLen = len(key) - len(rest)
	for _, c := range t.ck {
		var v []byte
		if v, rest, err = decodeKey(s.arena, c.typ, rest, c.desc); err != nil {
			return 0, err
		}
		s.arena = v[len(v):]
		s.row[c.idx] = v
	}
	if len(rest) != 0 {
		return 0, errBadKey
	}
	if len(val) > 1 {
		start := len(s.arena)
		s.arena = append(s.arena, val[1:]...)
		r := cellReader{b: s.arena[start:len(s.arena):len(s.arena)]}
		s.arena = s.arena[len(s.arena):]
		for {
			id, v, null, ok := r.next()
			if !ok {
				break
			}
			if id < len(t.cells) && t.cells[id] != nil && !null {
				s.row[t.cells[id].idx] = v
			}
		}
		if r.err != nil {
			return 0, r.err
		}
	}
	return pkLen, nil
}

func (s *scan) matches() bool {
	for i := range s.filters {
		if !s.filters[i].match(s.row) {
			return false
		}
	}
	return true
}

// iterate calls fn for each live row from the current position; fn returns
// false to stop, after which s.resume holds the position after that row.
func (s *scan) iterate(needRow bool, fn func(pkLen int) bool) error {
	reversed := s.p.reversed
	for ; s.spanIdx < len(s.spans); s.spanIdx, s.resume = s.spanIdx+1, nil {
		sp := s.spans[s.spanIdx]
		it, err := s.e.db.NewIter(&pebble.IterOptions{LowerBound: sp.lo, UpperBound: sp.hi})
		if err != nil {
			return err
		}
		var valid bool
		switch {
		case s.resume != nil && reversed:
			valid = it.SeekLT(s.resume)
		case s.resume != nil:
			valid = it.SeekGE(s.resume)
		case reversed:
			valid = it.Last()
		default:
			valid = it.First()
		}
		for valid {
			key := it.Key()
			val, err := it.ValueAndErr()
			if err != nil {
				it.Close()
				return err
			}
			if !rowLive(val) {
				valid = s.advance(it, key, -1, reversed)
				continue
			}
			pkLen := -1
			if needRow || len(s.filters) > 0 || s.p.distinct {
				if s.arena == nil || cap(s.arena)-len(s.arena) < len(key)+len(val) {
					s.arena = make([]byte, 0, max(64<<10, 2*(len(key)+len(val))))
				}
				if pkLen, err = s.decodeRow(key, val); err != nil {
					it.Close()
					return err
				}
				if !s.matches() {
					valid = s.advance(it, key, pkLen, reversed)
					continue
				}
			}
			if !fn(pkLen) {
				s.resume = s.resumeAfter(key, pkLen, reversed)
				return it.Close()
			}
			valid = s.advance(it, key, pkLen, reversed)
		}
		if err := it.Close(); err != nil {
			return err
		}
	}
	return nil
}

// advance moves past the current row (past its partition for DISTINCT).
func (s *scan) advance(it *pebble.Iterator, key []byte, pkLen int, reversed bool) bool {
	if s.p.distinct && pkLen > 0 {
		if reversed {
			return it.SeekLT(bytes.Clone(key[:pkLen]))
		}
		if end := prefixEnd(key[:pkLen]); end != nil {
			return it.SeekGE(end)
		}
		return false
	}
	if reversed {
		return it.Prev()
	}
	return it.Next()
}

// resumeAfter is the resume key that continues after the row at key,
// within the current span.
func (s *scan) resumeAfter(key []byte, pkLen int, reversed bool) []byte {
	sp := s.spans[s.spanIdx]
	var r []byte
	switch {
	case s.p.distinct && pkLen > 0 && reversed:
		r = bytes.Clone(key[:pkLen])
	case s.p.distinct && pkLen > 0:
		r = prefixEnd(key[:pkLen])
	case reversed:
		r = bytes.Clone(key)
	default:
		r = append(bytes.Clone(key), 0)
	}
	if r == nil || bytes.Compare(r, sp.hi) > 0 {
		r = bytes.Clone(sp.hi)
	}
	if bytes.Compare(r, sp.lo) < 0 {
		r = bytes.Clone(sp.lo)
	}
	return r
}

func (s *scan) countRows() (int64, error) {
	var n int64
	err := s.iterate(s.p.countCol != nil, func(int) bool {
		if s.p.countCol == nil || s.row[s.p.countCol.idx] != nil {
			n++
		}
		return true
	})
	return n, err
}

// run fills one page of rows and sets the paging state when more may follow.
func (s *scan) run(res *message.RowsResult) error {
	out := s.p.out
	var slab [][]byte
	stoppedEarly := false
	err := s.iterate(true, func(int) bool {
		if len(slab) < len(out) {
			slab = make([][]byte, len(out)*256)
		}
		row := slab[:len(out):len(out)]
		slab = slab[len(out):]
		for i, c := range out {
			row[i] = s.row[c.idx]
		}
		res.Data = append(res.Data, row)
		if s.remaining > 0 {
			s.remaining--
			if s.remaining == 0 {
				return false
			}
		}
		if s.pageSize > 0 && int64(len(res.Data)) >= s.pageSize {
			stoppedEarly = true
			return false
		}
		return true
	})
	if err != nil {
		return err
	}
	if stoppedEarly {
		ps := pagingState{span: s.spanIdx, remaining: s.remaining, resume: s.resume}
		res.Metadata.PagingState = ps.encode()
	}
	return nil
}
