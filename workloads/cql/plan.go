package cql

import (
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/datastax/go-cassandra-native-protocol/datatype"
	"github.com/datastax/go-cassandra-native-protocol/message"
	"github.com/datastax/go-cassandra-native-protocol/primitive"
)

// Planning resolves a parsed statement against a catalog snapshot: names
// become columns, constants become serialised values of the receiving
// column's type, and bind markers become typed variables. A plan is then
// executed many times with different bound values (select.go, write.go).

// valueRef is a value in a plan: a constant or a bind marker, with the
// column that receives it.
type valueRef struct {
	bind  int    // bind marker index, -1 for a constant
	value []byte // the constant (nil: null)
	typ   datatype.DataType
	name  string // what the value is for, in error messages
}

type valueState int

const (
	valueSet valueState = iota
	valueNull
	valueUnset
)

// resolve returns the value of a reference given the bound values, checking
// bound values against the expected type.
func (r *valueRef) resolve(vals []*primitive.Value) ([]byte, valueState, error) {
	if r.bind < 0 {
		if r.value == nil {
			return nil, valueNull, nil
		}
		return r.value, valueSet, nil
	}
	if r.bind >= len(vals) || vals[r.bind] == nil {
		return nil, valueUnset, invalidf("no value bound for %s", r.name)
	}
	v := vals[r.bind]
	switch v.Type {
	case primitive.ValueTypeNull:
		return nil, valueNull, nil
	case primitive.ValueTypeUnset:
		return nil, valueUnset, nil
	}
	b := v.Contents
	if b == nil {
		b = []byte{}
	}
	if err := validateValue(r.typ, b); err != nil {
		e := err.(*Error)
		return nil, valueSet, invalidf("invalid value for %s: %s", r.name, e.Message)
	}
	return b, valueSet, nil
}

// keyValue resolves a value that must be set (key components, bounds).
func (r *valueRef) keyValue(vals []*primitive.Value) ([]byte, error) {
	v, st, err := r.resolve(vals)
	if err != nil {
		return nil, err
	}
	switch st {
	case valueNull:
		return nil, invalidf("Invalid null value for %s", r.name)
	case valueUnset:
		return nil, invalidf("Invalid unset value for %s", r.name)
	}
	return v, nil
}

// planner carries what planning one statement needs.
type planner struct {
	cat      *catalog
	keyspace string                    // the session's keyspace
	vars     []*message.ColumnMetadata // bind variables, by index
	binds    []string                  // marker names from the parser
}

func newPlanner(cat *catalog, keyspace string, p *parsed) *planner {
	return &planner{cat: cat, keyspace: keyspace, vars: make([]*message.ColumnMetadata, len(p.binds)), binds: p.binds}
}

func (pl *planner) table(tn tableName) (*table, error) {
	return pl.cat.lookup(tn.keyspaceIn(pl.keyspace), tn.name)
}

// ref turns a term received by a value of type typ (for column col of t)
// into a valueRef, declaring the bind variable if it is a marker.
func (pl *planner) ref(t *table, name string, typ datatype.DataType, tm term) (valueRef, error) {
	if tm.bind {
		varName := name
		if tm.name != "" {
			varName = tm.name
		}
		pl.vars[tm.index] = &message.ColumnMetadata{Keyspace: t.keyspace, Table: t.name, Name: varName, Index: int32(tm.index), Type: typ}
		return valueRef{bind: tm.index, typ: typ, name: name}, nil
	}
	v, err := literalValue(typ, tm)
	if err != nil {
		e := err.(*Error)
		return valueRef{}, invalidf("invalid value for %s: %s", name, e.Message)
	}
	return valueRef{bind: -1, value: v, typ: typ, name: name}, nil
}

func (pl *planner) column(t *table, name string) (*column, error) {
	c := t.byName[name]
	if c == nil {
		return nil, invalidf("Undefined column name %s in table %s.%s", name, t.keyspace, t.name)
	}
	return c, nil
}

// checkVars makes sure every bind marker got a type.
func (pl *planner) checkVars() error {
	for i, v := range pl.vars {
		if v == nil {
			return invalidf("bind marker %d is in a position this server cannot type", i)
		}
	}
	return nil
}

// pkIndices are the bind indexes of the partition key columns, in key order,
// when every partition key column is bound by a marker (token-aware routing
// needs them); nil otherwise.
func pkIndices(t *table, pk []valueRef) []uint16 {
	if len(pk) != len(t.pk) {
		return nil
	}
	var out []uint16
	for _, r := range pk {
		if r.bind < 0 {
			return nil
		}
		out = append(out, uint16(r.bind))
	}
	return out
}

// bound is one side of a clustering range.
type bound struct {
	ref       valueRef
	inclusive bool
}

// restrictions groups the WHERE relations of a statement by column.
type restrictions struct {
	eq    map[*column]valueRef
	in    map[*column]inList
	lower map[*column]*bound
	upper map[*column]*bound
	order []*column // columns in order of first appearance
}

// inList is an IN restriction: listed values, or one marker bound to a list.
type inList struct {
	refs []valueRef
	list *valueRef // IN ?: a list<type> value
}

func (pl *planner) restrictions(t *table, rels []relation) (*restrictions, error) {
	r := &restrictions{eq: map[*column]valueRef{}, in: map[*column]inList{}, lower: map[*column]*bound{}, upper: map[*column]*bound{}}
	seen := map[*column]bool{}
	for _, rel := range rels {
		c, err := pl.column(t, rel.column)
		if err != nil {
			return nil, err
		}
		if !seen[c] {
			seen[c] = true
			r.order = append(r.order, c)
		}
		_, hasEq := r.eq[c]
		_, hasIn := r.in[c]
		if hasEq || hasIn || (rel.op == "=" || rel.op == "IN") && (r.lower[c] != nil || r.upper[c] != nil) {
			return nil, invalidf("%s cannot be restricted by more than one relation if it includes an Equal", c.name)
		}
		switch rel.op {
		case "=":
			ref, err := pl.ref(t, c.name, c.typ, rel.value)
			if err != nil {
				return nil, err
			}
			r.eq[c] = ref
		case "IN":
			var in inList
			if rel.in == nil {
				lt := datatype.NewList(c.typ)
				ref, err := pl.ref(t, "in("+c.name+")", lt, rel.value)
				if err != nil {
					return nil, err
				}
				in.list = &ref
			}
			for _, tm := range rel.in {
				ref, err := pl.ref(t, c.name, c.typ, tm)
				if err != nil {
					return nil, err
				}
				in.refs = append(in.refs, ref)
			}
			r.in[c] = in
		default:
			ref, err := pl.ref(t, c.name, c.typ, rel.value)
			if err != nil {
				return nil, err
			}
			b := &bound{ref: ref, inclusive: strings.HasSuffix(rel.op, "=")}
			side := r.lower
			if strings.HasPrefix(rel.op, "<") {
				side = r.upper
			}
			if side[c] != nil {
				return nil, invalidf("More than one restriction was found for the %s bound on %s", boundName(rel.op), c.name)
			}
			side[c] = b
		}
	}
	return r, nil
}

func boundName(op string) string {
	if strings.HasPrefix(op, "<") {
		return "end"
	}
	return "start"
}

// resolveIn returns the values of an IN restriction.
func (in *inList) resolve(vals []*primitive.Value) ([][]byte, error) {
	if in.list == nil {
		out := make([][]byte, 0, len(in.refs))
		for i := range in.refs {
			v, err := in.refs[i].keyValue(vals)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	b, err := in.list.keyValue(vals)
	if err != nil {
		return nil, err
	}
	n := int(int32(binary.BigEndian.Uint32(b))) // validated as a list
	out := make([][]byte, 0, n)
	b = b[4:]
	for i := 0; i < n; i++ {
		l := int(int32(binary.BigEndian.Uint32(b)))
		out = append(out, b[4:4+l])
		b = b[4+l:]
	}
	return out, nil
}

// limitRef plans a LIMIT term.
func (pl *planner) limitRef(t *table, tm *term) (*valueRef, error) {
	if tm == nil {
		return nil, nil
	}
	if tm.bind {
		name := "[limit]"
		if tm.name != "" {
			name = tm.name
		}
		pl.vars[tm.index] = &message.ColumnMetadata{Keyspace: t.keyspace, Table: t.name, Name: name, Index: int32(tm.index), Type: datatype.Int}
		return &valueRef{bind: tm.index, typ: datatype.Int, name: "LIMIT"}, nil
	}
	n, err := strconv.ParseInt(tm.text, 10, 32)
	if err != nil || n <= 0 {
		return nil, invalidf("LIMIT must be strictly positive (got %s)", shortText(tm.text))
	}
	return &valueRef{bind: -1, value: int32Value(int32(n)), typ: datatype.Int, name: "LIMIT"}, nil
}

func columnNames(cols []*column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}
