package cql

import (
	"github.com/datastax/go-cassandra-native-protocol/datatype"
	"github.com/datastax/go-cassandra-native-protocol/message"
)

// SELECT, planning: which restrictions become key ranges and which are
// filters. The execution, pebble range scans with paging, is in scan.go.

// maxPartitions bounds the partitions an IN restriction may name.
const maxPartitions = 1000

const filteringMsg = "Cannot execute this query as it might involve data filtering and thus may have unpredictable performance. If you want to execute this query despite the performance unpredictability, use ALLOW FILTERING"

type selectPlan struct {
	t        *table
	out      []*column // projected columns (count: nil)
	result   []*message.ColumnMetadata
	count    bool
	countCol *column // count(col): rows where col is not null
	distinct bool

	// Key restrictions (real tables). pk is nil for a full table scan.
	pk       []inList // per partition key column: its values (= is one value)
	ckEq     []valueRef
	rangeCol *column
	lower    *bound
	upper    *bound
	reversed bool

	filters []filter
	limit   *valueRef
}

// filter is a restriction checked on each row (virtual tables, ALLOW
// FILTERING).
type filter struct {
	col   *column
	op    string
	ref   valueRef
	in    *inList
	lower *bound
	upper *bound
}

func (pl *planner) planSelect(s *selectStmt) (*selectPlan, error) {
	t, err := pl.table(s.table)
	if err != nil {
		return nil, err
	}
	p := &selectPlan{t: t, distinct: s.distinct}
	if err := pl.selection(p, s); err != nil {
		return nil, err
	}
	r, err := pl.restrictions(t, s.where)
	if err != nil {
		return nil, err
	}
	if p.limit, err = pl.limitRef(t, s.limit); err != nil {
		return nil, err
	}
	if t.virtual != nil {
		if len(s.orderBy) > 0 {
			return nil, invalidf("ORDER BY is not supported on system table %s.%s", t.keyspace, t.name)
		}
		p.filters = allFilters(r)
		return p, pl.checkVars()
	}

	// Partition key: every component restricted by = or IN, or none.
	restrictedPK := 0
	for _, c := range t.pk {
		_, eq := r.eq[c]
		_, in := r.in[c]
		if eq || in {
			restrictedPK++
		}
	}
	var filters []filter
	needFiltering := false
	switch {
	case restrictedPK == len(t.pk):
		for _, c := range t.pk {
			if ref, ok := r.eq[c]; ok {
				p.pk = append(p.pk, inList{refs: []valueRef{ref}})
			} else {
				p.pk = append(p.pk, r.in[c])
			}
			if r.lower[c] != nil || r.upper[c] != nil {
				return nil, invalidf("Only EQ and IN relation are supported on the partition key (unless you use the token() function or allow filtering)")
			}
		}
	default:
		var missing []*column
		for _, c := range t.pk {
			_, eq := r.eq[c]
			_, in := r.in[c]
			if !eq && !in {
				missing = append(missing, c)
			}
		}
		if restrictedPK > 0 && !s.allowFiltering {
			return nil, invalidf("Partition key parts: %s must be restricted as other parts are", columnNames(missing))
		}
		for _, c := range t.pk {
			filters = append(filters, columnFilters(r, c)...)
		}
		needFiltering = len(filters) > 0
	}

	// Clustering: leading = restrictions, then at most one range, when the
	// partition is known; everything else is filtering.
	keyed := p.pk != nil
	ranged := false // a preceding clustering column has a range
	for i, c := range t.ck {
		ref, eq := r.eq[c]
		lower, upper := r.lower[c], r.upper[c]
		_, in := r.in[c]
		switch {
		case keyed && eq:
			p.ckEq = append(p.ckEq, ref)
			continue
		case keyed && (lower != nil || upper != nil):
			p.rangeCol, p.lower, p.upper = c, lower, upper
			keyed, ranged = false, true
			continue
		}
		if eq || in || lower != nil || upper != nil {
			if !s.allowFiltering {
				if in {
					return nil, unsupported("IN on a clustering column without ALLOW FILTERING")
				}
				if p.pk != nil && ranged {
					return nil, invalidf("Clustering column \"%s\" cannot be restricted (preceding column \"%s\" is restricted by a non-EQ relation)", c.name, t.ck[i-1].name)
				}
				if p.pk != nil && i > 0 {
					return nil, invalidf("PRIMARY KEY column \"%s\" cannot be restricted as preceding column \"%s\" is not restricted", c.name, t.ck[i-1].name)
				}
			}
			filters = append(filters, columnFilters(r, c)...)
			needFiltering = true
		}
		keyed = false
	}
	for _, c := range t.reg {
		if f := columnFilters(r, c); len(f) > 0 {
			filters = append(filters, f...)
			needFiltering = true
		}
	}
	if needFiltering && !s.allowFiltering {
		return nil, invalidf(filteringMsg)
	}
	p.filters = filters

	if err := pl.ordering(p, s.orderBy); err != nil {
		return nil, err
	}
	if p.distinct && p.pk == nil && len(p.filters) > 0 {
		return nil, unsupported("SELECT DISTINCT with filtering")
	}
	return p, pl.checkVars()
}

// selection resolves the selected columns and the result metadata.
func (pl *planner) selection(p *selectPlan, s *selectStmt) error {
	t := p.t
	meta := func(name string, typ datatype.DataType) *message.ColumnMetadata {
		return &message.ColumnMetadata{Keyspace: t.keyspace, Table: t.name, Name: name, Index: int32(len(p.result)), Type: typ}
	}
	if s.star {
		if s.distinct {
			return unsupported("SELECT DISTINCT *")
		}
		p.out = t.columns
		for _, c := range t.columns {
			p.result = append(p.result, meta(c.name, c.typ))
		}
		return nil
	}
	for _, sel := range s.selectors {
		if sel.count {
			if len(s.selectors) != 1 {
				return unsupported("mixing count() with other selectors")
			}
			if s.distinct {
				return unsupported("SELECT DISTINCT count()")
			}
			if sel.column != "" {
				c, err := pl.column(t, sel.column)
				if err != nil {
					return err
				}
				p.countCol = c
			}
			name := sel.alias
			if name == "" {
				name = "count"
			}
			p.count = true
			p.result = append(p.result, meta(name, datatype.Bigint))
			return nil
		}
		c, err := pl.column(t, sel.column)
		if err != nil {
			return err
		}
		name := c.name
		if sel.alias != "" {
			name = sel.alias
		}
		p.out = append(p.out, c)
		p.result = append(p.result, meta(name, c.typ))
	}
	if s.distinct {
		if t.virtual != nil {
			return unsupported("SELECT DISTINCT on a system table")
		}
		selected := map[*column]bool{}
		for _, c := range p.out {
			if c.kind != kindPartition {
				return invalidf("SELECT DISTINCT queries must only request partition key columns and/or static columns (not %s)", c.name)
			}
			selected[c] = true
		}
		for _, c := range t.pk {
			if !selected[c] {
				return invalidf("SELECT DISTINCT queries must request all the partition key columns (missing %s)", c.name)
			}
		}
	}
	return nil
}

// ordering checks ORDER BY and decides the scan direction.
func (pl *planner) ordering(p *selectPlan, orderBy []ordering) error {
	if len(orderBy) == 0 {
		return nil
	}
	if p.pk == nil {
		return invalidf("ORDER BY is only supported when the partition key is restricted by an EQ or an IN.")
	}
	t := p.t
	for i, o := range orderBy {
		c := t.byName[o.column]
		if c == nil {
			return invalidf("Undefined column name %s in table %s.%s", o.column, t.keyspace, t.name)
		}
		if c.kind != kindClustering {
			return invalidf("Order by is currently only supported on the clustered columns of the PRIMARY KEY, got %s", c.name)
		}
		if c.pos != i {
			return invalidf("Order by currently only supports the ordering of columns following their declared order in the PRIMARY KEY")
		}
		rev := o.desc != c.desc
		if i == 0 {
			p.reversed = rev
		} else if rev != p.reversed {
			return invalidf("Unsupported order by relation")
		}
	}
	return nil
}

func allFilters(r *restrictions) []filter {
	var out []filter
	for _, c := range r.order {
		out = append(out, columnFilters(r, c)...)
	}
	return out
}

func columnFilters(r *restrictions, c *column) []filter {
	var out []filter
	if ref, ok := r.eq[c]; ok {
		out = append(out, filter{col: c, op: "=", ref: ref})
	}
	if in, ok := r.in[c]; ok {
		out = append(out, filter{col: c, op: "IN", in: &in})
	}
	if r.lower[c] != nil || r.upper[c] != nil {
		out = append(out, filter{col: c, op: "range", lower: r.lower[c], upper: r.upper[c]})
	}
	return out
}

// ---- execution ----

const pagingVersion = 1
