package cql

import (
	"strings"
)

func (p *parser) insertStmt() (statement, error) {
	if err := p.expectKeyword("into"); err != nil {
		return nil, err
	}
	tn, err := p.tableName()
	if err != nil {
		return nil, err
	}
	if p.atKeyword("json") {
		return nil, unsupported("INSERT JSON")
	}
	s := &insertStmt{table: tn}
	if err := p.expectPunct("("); err != nil {
		return nil, err
	}
	for {
		col, err := p.ident("column name")
		if err != nil {
			return nil, err
		}
		s.columns = append(s.columns, col)
		if !p.acceptPunct(",") {
			break
		}
	}
	if err := p.expectPunct(")"); err != nil {
		return nil, err
	}
	if err := p.expectKeyword("values"); err != nil {
		return nil, err
	}
	if err := p.expectPunct("("); err != nil {
		return nil, err
	}
	for {
		v, err := p.term()
		if err != nil {
			return nil, err
		}
		s.values = append(s.values, v)
		if !p.acceptPunct(",") {
			break
		}
	}
	if err := p.expectPunct(")"); err != nil {
		return nil, err
	}
	if len(s.values) != len(s.columns) {
		return nil, invalidf("unmatched column names/values: %d columns but %d values", len(s.columns), len(s.values))
	}
	if err := p.rejectConditionsAndUsing(); err != nil {
		return nil, err
	}
	return s, nil
}

// rejectConditionsAndUsing refuses lightweight transactions (IF ...) and
// USING TTL/TIMESTAMP, which this server does not implement.
func (p *parser) rejectConditionsAndUsing() error {
	if p.atKeyword("if") {
		return unsupported("a lightweight transaction (IF condition)")
	}
	if p.atKeyword("using") {
		return unsupported("USING " + strings.ToUpper(p.peekAt(1).text))
	}
	return nil
}

func (p *parser) updateStmt() (statement, error) {
	tn, err := p.tableName()
	if err != nil {
		return nil, err
	}
	if err := p.rejectConditionsAndUsing(); err != nil {
		return nil, err
	}
	if err := p.expectKeyword("set"); err != nil {
		return nil, err
	}
	s := &updateStmt{table: tn}
	for {
		col, err := p.ident("column name")
		if err != nil {
			return nil, err
		}
		if p.atPunct("[") || p.atPunct(".") {
			return nil, unsupported("updating a collection element or a field")
		}
		if err := p.expectPunct("="); err != nil {
			return nil, err
		}
		if t := p.peek(); (t.kind == tokIdent || t.kind == tokQuoted) && !p.isKeyword(t, "true") && !p.isKeyword(t, "false") && !p.isKeyword(t, "null") {
			if nt := p.peekAt(1); nt.kind == tokPunct && (nt.text == "+" || nt.text == "-") || nt.kind == tokInteger && strings.HasPrefix(nt.text, "-") {
				return nil, unsupported("a counter or collection update (col = col + ...)")
			}
		}
		v, err := p.term()
		if err != nil {
			return nil, err
		}
		if p.atPunct("+") || p.atPunct("-") {
			return nil, unsupported("a collection update (col = ... + col)")
		}
		s.set = append(s.set, assignment{column: col, value: v})
		if !p.acceptPunct(",") {
			break
		}
	}
	if err := p.expectKeyword("where"); err != nil {
		return nil, err
	}
	if s.where, err = p.relations(); err != nil {
		return nil, err
	}
	if err := p.rejectConditionsAndUsing(); err != nil {
		return nil, err
	}
	return s, nil
}

func (p *parser) deleteStmt() (statement, error) {
	s := &deleteStmt{}
	if !p.atKeyword("from") {
		for {
			col, err := p.ident("column name or FROM")
			if err != nil {
				return nil, err
			}
			if p.atPunct("[") || p.atPunct(".") {
				return nil, unsupported("deleting a collection element or a field")
			}
			s.columns = append(s.columns, col)
			if !p.acceptPunct(",") {
				break
			}
		}
	}
	if err := p.expectKeyword("from"); err != nil {
		return nil, err
	}
	tn, err := p.tableName()
	if err != nil {
		return nil, err
	}
	s.table = tn
	if err := p.rejectConditionsAndUsing(); err != nil {
		return nil, err
	}
	if err := p.expectKeyword("where"); err != nil {
		return nil, err
	}
	if s.where, err = p.relations(); err != nil {
		return nil, err
	}
	if err := p.rejectConditionsAndUsing(); err != nil {
		return nil, err
	}
	return s, nil
}

func (p *parser) batchStmt() (statement, error) {
	b := &batchStmt{}
	switch {
	case p.acceptKeyword("unlogged"):
		b.unlogged = true
	case p.acceptKeyword("logged"):
	case p.atKeyword("counter"):
		return nil, unsupported("a COUNTER BATCH")
	}
	if err := p.expectKeyword("batch"); err != nil {
		return nil, err
	}
	if p.atKeyword("using") {
		return nil, unsupported("USING " + strings.ToUpper(p.peekAt(1).text))
	}
	for !p.atKeyword("apply") {
		t := p.peek()
		var (
			s   statement
			err error
		)
		switch {
		case p.isKeyword(t, "insert"):
			p.i++
			s, err = p.insertStmt()
		case p.isKeyword(t, "update"):
			p.i++
			s, err = p.updateStmt()
		case p.isKeyword(t, "delete"):
			p.i++
			s, err = p.deleteStmt()
		default:
			return nil, p.unexpected("INSERT, UPDATE, DELETE or APPLY BATCH")
		}
		if err != nil {
			return nil, err
		}
		b.stmts = append(b.stmts, s)
		p.acceptPunct(";")
	}
	if err := p.expectKeyword("apply", "batch"); err != nil {
		return nil, err
	}
	return b, nil
}

// ---- DDL ----
