package cql

import (
	"sort"

	"github.com/cockroachdb/pebble/v2"
	"github.com/datastax/go-cassandra-native-protocol/primitive"
)

// INSERT, UPDATE and DELETE: planning to a mutation, and applying a
// mutation with bound values to a pebble batch.

type mutationKind int

const (
	mutInsert mutationKind = iota
	mutUpdate
	mutDelete
)

type cellRef struct {
	col *column
	ref valueRef
}

type mutation struct {
	t    *table
	kind mutationKind
	pk   []valueRef // one per partition key column
	ck   []valueRef // insert/update: every clustering column; delete: a prefix
	// delete: a range on the clustering column after the ck prefix
	rangeCol     *column
	lower, upper *bound
	cells        []cellRef // insert/update, in cell id order
	full         bool      // an INSERT naming every regular column
	delCols      []*column // DELETE col, ... FROM
}

func (pl *planner) planInsert(s *insertStmt) (*mutation, error) {
	t, err := pl.table(s.table)
	if err != nil {
		return nil, err
	}
	if t.virtual != nil {
		return nil, invalidf("Modification to table %s.%s is not allowed: system tables are read-only", t.keyspace, t.name)
	}
	m := &mutation{t: t, kind: mutInsert, pk: make([]valueRef, len(t.pk)), ck: make([]valueRef, len(t.ck))}
	set := map[*column]bool{}
	for i, name := range s.columns {
		c, err := pl.column(t, name)
		if err != nil {
			return nil, err
		}
		if set[c] {
			return nil, invalidf("Multiple definitions found for column %s", c.name)
		}
		set[c] = true
		ref, err := pl.ref(t, c.name, c.typ, s.values[i])
		if err != nil {
			return nil, err
		}
		switch c.kind {
		case kindPartition:
			m.pk[c.pos] = ref
		case kindClustering:
			m.ck[c.pos] = ref
		default:
			m.cells = append(m.cells, cellRef{c, ref})
		}
	}
	if missing := missingColumns(t.pk, set); missing != "" {
		return nil, invalidf("Some partition key parts are missing: %s", missing)
	}
	if missing := missingColumns(t.ck, set); missing != "" {
		return nil, invalidf("Some clustering keys are missing: %s", missing)
	}
	sort.Slice(m.cells, func(i, j int) bool { return m.cells[i].col.id < m.cells[j].col.id })
	m.full = len(m.cells) == len(t.reg)
	return m, pl.checkVars()
}

func missingColumns(cols []*column, set map[*column]bool) string {
	var missing []*column
	for _, c := range cols {
		if !set[c] {
			missing = append(missing, c)
		}
	}
	return columnNames(missing)
}

func (pl *planner) planUpdate(s *updateStmt) (*mutation, error) {
	t, err := pl.table(s.table)
	if err != nil {
		return nil, err
	}
	if t.virtual != nil {
		return nil, invalidf("Modification to table %s.%s is not allowed: system tables are read-only", t.keyspace, t.name)
	}
	m := &mutation{t: t, kind: mutUpdate}
	set := map[*column]bool{}
	for _, a := range s.set {
		c, err := pl.column(t, a.column)
		if err != nil {
			return nil, err
		}
		if c.kind != kindRegular {
			return nil, invalidf("PRIMARY KEY part %s found in SET part", c.name)
		}
		if set[c] {
			return nil, invalidf("Multiple definitions found for column %s", c.name)
		}
		set[c] = true
		ref, err := pl.ref(t, c.name, c.typ, a.value)
		if err != nil {
			return nil, err
		}
		m.cells = append(m.cells, cellRef{c, ref})
	}
	sort.Slice(m.cells, func(i, j int) bool { return m.cells[i].col.id < m.cells[j].col.id })
	if err := pl.mutationKey(m, s.where, false); err != nil {
		return nil, err
	}
	return m, pl.checkVars()
}

func (pl *planner) planDelete(s *deleteStmt) (*mutation, error) {
	t, err := pl.table(s.table)
	if err != nil {
		return nil, err
	}
	if t.virtual != nil {
		return nil, invalidf("Modification to table %s.%s is not allowed: system tables are read-only", t.keyspace, t.name)
	}
	m := &mutation{t: t, kind: mutDelete}
	for _, name := range s.columns {
		c, err := pl.column(t, name)
		if err != nil {
			return nil, err
		}
		if c.kind != kindRegular {
			return nil, invalidf("Invalid identifier %s for deletion (should not be a PRIMARY KEY part)", c.name)
		}
		m.delCols = append(m.delCols, c)
	}
	sort.Slice(m.delCols, func(i, j int) bool { return m.delCols[i].id < m.delCols[j].id })
	if err := pl.mutationKey(m, s.where, len(m.delCols) == 0); err != nil {
		return nil, err
	}
	return m, pl.checkVars()
}

// mutationKey plans the WHERE of an UPDATE or DELETE: the whole primary key
// by =, or for a row DELETE a clustering prefix and an optional range.
func (pl *planner) mutationKey(m *mutation, where []relation, allowRange bool) error {
	t := m.t
	r, err := pl.restrictions(t, where)
	if err != nil {
		return err
	}
	for c := range r.in {
		return unsupported("IN in the WHERE clause of " + mutationName(m.kind) + " (on " + c.name + ")")
	}
	for _, c := range r.order {
		if c.kind == kindRegular {
			return invalidf("Non PRIMARY KEY columns found in where clause: %s", c.name)
		}
	}
	for _, c := range t.pk {
		ref, ok := r.eq[c]
		if !ok {
			if r.lower[c] != nil || r.upper[c] != nil {
				return invalidf("Only EQ and IN relation are supported on the partition key (unless you use the token() function)")
			}
			return invalidf("Some partition key parts are missing: %s", c.name)
		}
		m.pk = append(m.pk, ref)
	}
	stopped := false // the clustering prefix has ended
	for i, c := range t.ck {
		ref, eq := r.eq[c]
		lower, upper := r.lower[c], r.upper[c]
		ranged := lower != nil || upper != nil
		switch {
		case !allowRange && eq:
			m.ck = append(m.ck, ref)
		case !allowRange && ranged:
			return invalidf("Invalid operator for PRIMARY KEY part %s: %s needs the full primary key with =", c.name, mutationName(m.kind))
		case !allowRange:
			return invalidf("Some clustering keys are missing: %s", c.name)
		case stopped && (eq || ranged):
			return invalidf("PRIMARY KEY column \"%s\" cannot be restricted as preceding column \"%s\" is not restricted by an equality", c.name, t.ck[i-1].name)
		case stopped:
		case eq:
			m.ck = append(m.ck, ref)
		case ranged:
			m.rangeCol, m.lower, m.upper = c, lower, upper
			stopped = true
		default:
			stopped = true
		}
	}
	return nil
}

func mutationName(k mutationKind) string {
	switch k {
	case mutInsert:
		return "INSERT"
	case mutUpdate:
		return "UPDATE"
	}
	return "DELETE"
}

// mutationBuf holds the scratch buffers a writer reuses across mutations,
// and the hashes of the rows it merged (see hotRows).
type mutationBuf struct {
	key, val []byte
	merged   []uint64
}

// apply adds the mutation, with its bound values, to a pebble batch.
func (m *mutation) apply(b *pebble.Batch, vals []*primitive.Value, buf *mutationBuf) error {
	t := m.t
	key := append(buf.key[:0], t.prefix...)
	for i, c := range t.pk {
		v, err := m.pk[i].keyValue(vals)
		if err != nil {
			return err
		}
		if len(t.pk) == 1 && len(v) == 0 {
			return invalidf("Key may not be empty")
		}
		key = appendKey(key, c.typ, v, false)
	}
	for i := range m.ck {
		c := t.ck[i]
		v, err := m.ck[i].keyValue(vals)
		if err != nil {
			return err
		}
		key = appendKey(key, c.typ, v, c.desc)
	}
	buf.key = key

	switch m.kind {
	case mutInsert, mutUpdate:
		val := buf.val[:0]
		if m.kind == mutInsert {
			val = append(val, rowMarker)
		} else {
			val = append(val, 0)
		}
		partial := !m.full
		for i := range m.cells {
			cr := &m.cells[i]
			v, st, err := cr.ref.resolve(vals)
			if err != nil {
				return err
			}
			switch st {
			case valueUnset:
				partial = true
				continue
			case valueNull:
				v = nil
			}
			val = appendCell(val, cr.col.id, v)
		}
		buf.val = val
		if m.kind == mutUpdate && len(val) == 1 {
			return nil // every value unset: nothing to write
		}
		if partial {
			buf.merged = append(buf.merged, rowHash(key))
			return b.Merge(key, val, nil)
		}
		return b.Set(key, val, nil)
	}

	// DELETE
	if len(m.delCols) > 0 {
		val := append(buf.val[:0], 0)
		for _, c := range m.delCols {
			val = appendCell(val, c.id, nil)
		}
		buf.val = val
		buf.merged = append(buf.merged, rowHash(key))
		return b.Merge(key, val, nil)
	}
	if len(m.ck) == len(t.ck) {
		return b.Delete(key, nil)
	}
	var lower, upper []byte
	var err error
	if m.lower != nil {
		if lower, err = m.lower.ref.keyValue(vals); err != nil {
			return err
		}
	}
	if m.upper != nil {
		if upper, err = m.upper.ref.keyValue(vals); err != nil {
			return err
		}
	}
	sp := clusteringSpan(key, m.rangeCol, m.lower, lower, m.upper, upper)
	if string(sp.lo) >= string(sp.hi) {
		return nil
	}
	return b.DeleteRange(sp.lo, sp.hi, nil)
}
