package cql

import (
	"fmt"
	"strings"

	"github.com/datastax/go-cassandra-native-protocol/datatype"
)

func (p *parser) ifNotExists() (bool, error) {
	if !p.acceptKeyword("if") {
		return false, nil
	}
	return true, p.expectKeyword("not", "exists")
}

func (p *parser) ifExists() (bool, error) {
	if !p.acceptKeyword("if") {
		return false, nil
	}
	return true, p.expectKeyword("exists")
}

func (p *parser) createStmt() (statement, error) {
	t := p.next()
	switch {
	case p.isKeyword(t, "keyspace"), p.isKeyword(t, "schema"):
		return p.createKeyspace()
	case p.isKeyword(t, "table"), p.isKeyword(t, "columnfamily"):
		return p.createTable()
	case p.isKeyword(t, "or"):
		return nil, unsupported("CREATE OR REPLACE")
	case t.kind == tokIdent:
		what := strings.ToUpper(t.text)
		if what == "CUSTOM" || what == "MATERIALIZED" {
			what += " " + strings.ToUpper(p.peek().text)
		}
		return nil, unsupported("CREATE " + what)
	}
	if t.kind != tokEOF {
		p.i--
	}
	return nil, p.unexpected("KEYSPACE or TABLE")
}

func (p *parser) createKeyspace() (statement, error) {
	s := &createKeyspaceStmt{durableWrites: true}
	var err error
	if s.ifNotExists, err = p.ifNotExists(); err != nil {
		return nil, err
	}
	if s.name, err = p.ident("keyspace name"); err != nil {
		return nil, err
	}
	if err := p.expectKeyword("with"); err != nil {
		return nil, err
	}
	for {
		prop, err := p.ident("a keyspace property")
		if err != nil {
			return nil, err
		}
		if err := p.expectPunct("="); err != nil {
			return nil, err
		}
		v, err := p.term()
		if err != nil {
			return nil, err
		}
		switch prop {
		case "replication":
			if v.kind != litMap {
				return nil, invalidf("replication must be a map, like {'class': 'SimpleStrategy', 'replication_factor': 1}")
			}
			s.replication = map[string]string{}
			for i, k := range v.elems {
				s.replication[k.text] = v.vals[i].text
			}
		case "durable_writes":
			if v.kind != litBool {
				return nil, invalidf("durable_writes must be true or false")
			}
			s.durableWrites = v.text == "true"
		default:
			return nil, invalidf("Unknown keyspace property '%s'", prop)
		}
		if !p.acceptKeyword("and") {
			break
		}
	}
	if s.replication == nil {
		return nil, invalidf("missing mandatory replication strategy class")
	}
	if s.replication["class"] == "" {
		return nil, invalidf("missing replication strategy class")
	}
	return s, nil
}

func (p *parser) createTable() (statement, error) {
	s := &createTableStmt{}
	var err error
	if s.ifNotExists, err = p.ifNotExists(); err != nil {
		return nil, err
	}
	if s.table, err = p.tableName(); err != nil {
		return nil, err
	}
	if err := p.expectPunct("("); err != nil {
		return nil, err
	}
	for {
		if p.acceptKeyword("primary") {
			if err := p.expectKeyword("key"); err != nil {
				return nil, err
			}
			if s.partition != nil {
				return nil, invalidf("multiple PRIMARY KEY definitions")
			}
			if err := p.primaryKey(s); err != nil {
				return nil, err
			}
		} else {
			name, err := p.ident("column name or PRIMARY KEY")
			if err != nil {
				return nil, err
			}
			typ, err := p.dataType()
			if err != nil {
				return nil, err
			}
			s.columns = append(s.columns, columnDef{name: name, typ: typ})
			if p.atKeyword("static") {
				return nil, unsupported("a static column")
			}
			if p.acceptKeyword("primary") {
				if err := p.expectKeyword("key"); err != nil {
					return nil, err
				}
				if s.partition != nil {
					return nil, invalidf("multiple PRIMARY KEY definitions")
				}
				s.partition = []string{name}
			}
		}
		if !p.acceptPunct(",") {
			break
		}
		if p.atPunct(")") { // trailing comma
			break
		}
	}
	if err := p.expectPunct(")"); err != nil {
		return nil, err
	}
	if s.partition == nil {
		return nil, invalidf("no PRIMARY KEY specified for table %s (exactly one required)", s.table.name)
	}
	if p.acceptKeyword("with") {
		for {
			if err := p.tableOption(s); err != nil {
				return nil, err
			}
			if !p.acceptKeyword("and") {
				break
			}
		}
	}
	return s, nil
}

func (p *parser) primaryKey(s *createTableStmt) error {
	if err := p.expectPunct("("); err != nil {
		return err
	}
	if p.acceptPunct("(") {
		for {
			col, err := p.ident("column name")
			if err != nil {
				return err
			}
			s.partition = append(s.partition, col)
			if !p.acceptPunct(",") {
				break
			}
		}
		if err := p.expectPunct(")"); err != nil {
			return err
		}
	} else {
		col, err := p.ident("column name")
		if err != nil {
			return err
		}
		s.partition = []string{col}
	}
	for p.acceptPunct(",") {
		col, err := p.ident("column name")
		if err != nil {
			return err
		}
		s.clustering = append(s.clustering, col)
	}
	return p.expectPunct(")")
}

func (p *parser) tableOption(s *createTableStmt) error {
	if p.acceptKeyword("clustering") {
		if err := p.expectKeyword("order", "by"); err != nil {
			return err
		}
		if err := p.expectPunct("("); err != nil {
			return err
		}
		for {
			col, err := p.ident("column name")
			if err != nil {
				return err
			}
			for _, o := range s.order {
				if o.column == col {
					return invalidf("column %s appears twice in CLUSTERING ORDER BY", col)
				}
			}
			switch {
			case p.acceptKeyword("desc"):
				s.order = append(s.order, ordering{column: col, desc: true})
			case p.acceptKeyword("asc"):
				s.order = append(s.order, ordering{column: col})
			default:
				return p.unexpected("ASC or DESC")
			}
			if !p.acceptPunct(",") {
				break
			}
		}
		return p.expectPunct(")")
	}
	if p.atKeyword("compact") {
		return unsupported("COMPACT STORAGE")
	}
	name, err := p.ident("a table property")
	if err != nil {
		return err
	}
	if err := p.expectPunct("="); err != nil {
		return err
	}
	v, err := p.term()
	if err != nil {
		return err
	}
	if v.bind {
		return syntaxErrorAt(p.src, v.pos, "bind markers are not allowed in table properties")
	}
	switch {
	case name == "comment":
		if v.kind != litString {
			return invalidf("comment must be a string")
		}
		s.comment = v.text
	case name == "default_time_to_live":
		if v.kind != litInteger || v.text != "0" {
			return unsupported("a non-zero default_time_to_live (TTL)")
		}
	case tableOptions[name]:
	default:
		return invalidf("Unknown property '%s'", name)
	}
	return nil
}

// dataType reads a CQL type.
func (p *parser) dataType() (datatype.DataType, error) {
	if p.depth >= maxNesting {
		return nil, p.unexpected("a simpler type (nested too deeply)")
	}
	p.depth++
	defer func() { p.depth-- }()
	t := p.peek()
	if t.kind == tokString {
		return nil, unsupported("a custom type")
	}
	if t.kind != tokIdent && t.kind != tokQuoted {
		return nil, p.unexpected("a type")
	}
	p.i++
	name := strings.ToLower(t.text)
	if t.kind == tokIdent {
		if dt, ok := primitiveTypes[name]; ok {
			return dt, nil
		}
	}
	switch name {
	case "list", "set", "frozen":
		if err := p.expectPunct("<"); err != nil {
			return nil, err
		}
		elem, err := p.dataType()
		if err != nil {
			return nil, err
		}
		if err := p.expectPunct(">"); err != nil {
			return nil, err
		}
		switch name {
		case "list":
			return datatype.NewList(elem), nil
		case "set":
			return datatype.NewSet(elem), nil
		}
		return elem, nil // all collections here are stored whole, frozen or not
	case "map":
		if err := p.expectPunct("<"); err != nil {
			return nil, err
		}
		k, err := p.dataType()
		if err != nil {
			return nil, err
		}
		if err := p.expectPunct(","); err != nil {
			return nil, err
		}
		v, err := p.dataType()
		if err != nil {
			return nil, err
		}
		if err := p.expectPunct(">"); err != nil {
			return nil, err
		}
		return datatype.NewMap(k, v), nil
	case "tuple":
		return nil, unsupported("the tuple type")
	case "counter":
		return nil, unsupported("the counter type")
	case "duration":
		return nil, unsupported("the duration type")
	}
	return nil, unsupported(fmt.Sprintf("the type %q (user-defined types)", t.text))
}

func (p *parser) dropStmt() (statement, error) {
	t := p.next()
	switch {
	case p.isKeyword(t, "keyspace"), p.isKeyword(t, "schema"):
		s := &dropKeyspaceStmt{}
		var err error
		if s.ifExists, err = p.ifExists(); err != nil {
			return nil, err
		}
		if s.name, err = p.ident("keyspace name"); err != nil {
			return nil, err
		}
		return s, nil
	case p.isKeyword(t, "table"), p.isKeyword(t, "columnfamily"):
		s := &dropTableStmt{}
		var err error
		if s.ifExists, err = p.ifExists(); err != nil {
			return nil, err
		}
		if s.table, err = p.tableName(); err != nil {
			return nil, err
		}
		return s, nil
	case t.kind == tokIdent:
		what := strings.ToUpper(t.text)
		if what == "MATERIALIZED" {
			what += " " + strings.ToUpper(p.peek().text)
		}
		return nil, unsupported("DROP " + what)
	}
	if t.kind != tokEOF {
		p.i--
	}
	return nil, p.unexpected("KEYSPACE or TABLE")
}
