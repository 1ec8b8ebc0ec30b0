package cql

import (
	"fmt"
	"strings"
)

func (p *parser) selectStmt() (statement, error) {
	s := &selectStmt{}
	if p.atKeyword("json") && !p.isKeyword(p.peekAt(1), "from") && !(p.peekAt(1).kind == tokPunct && p.peekAt(1).text == ",") {
		return nil, unsupported("SELECT JSON")
	}
	if p.atKeyword("distinct") && !p.isKeyword(p.peekAt(1), "from") && !(p.peekAt(1).kind == tokPunct && p.peekAt(1).text == ",") {
		p.i++
		s.distinct = true
	}
	if p.acceptPunct("*") {
		s.star = true
	} else {
		for {
			sel, err := p.selector()
			if err != nil {
				return nil, err
			}
			s.selectors = append(s.selectors, sel)
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
	if p.acceptKeyword("where") {
		if s.where, err = p.relations(); err != nil {
			return nil, err
		}
	}
	if p.atKeyword("group") {
		return nil, unsupported("GROUP BY")
	}
	if p.acceptKeyword("order") {
		if err := p.expectKeyword("by"); err != nil {
			return nil, err
		}
		for {
			col, err := p.ident("column name")
			if err != nil {
				return nil, err
			}
			o := ordering{column: col}
			if p.acceptKeyword("desc") {
				o.desc = true
			} else {
				p.acceptKeyword("asc")
			}
			s.orderBy = append(s.orderBy, o)
			if !p.acceptPunct(",") {
				break
			}
		}
	}
	if p.atKeyword("per") {
		return nil, unsupported("PER PARTITION LIMIT")
	}
	if p.acceptKeyword("limit") {
		t, err := p.term()
		if err != nil {
			return nil, err
		}
		if !t.bind && t.kind != litInteger {
			return nil, syntaxErrorAt(p.src, t.pos, "LIMIT needs an integer or a bind marker")
		}
		s.limit = &t
	}
	if p.acceptKeyword("allow") {
		if err := p.expectKeyword("filtering"); err != nil {
			return nil, err
		}
		s.allowFiltering = true
	}
	return s, nil
}

func (p *parser) selector() (selector, error) {
	var sel selector
	t := p.peek()
	if t.kind == tokIdent && p.peekAt(1).kind == tokPunct && p.peekAt(1).text == "(" {
		fn := strings.ToLower(t.text)
		if fn != "count" {
			return sel, unsupported(fmt.Sprintf("the function %s() in a selection", fn))
		}
		p.i += 2
		sel.count = true
		switch a := p.peek(); {
		case a.kind == tokPunct && a.text == "*":
			p.i++
		case a.kind == tokInteger && a.text == "1":
			p.i++
		default:
			col, err := p.ident("*, 1 or a column name")
			if err != nil {
				return sel, err
			}
			sel.column = col
		}
		if err := p.expectPunct(")"); err != nil {
			return sel, err
		}
	} else {
		col, err := p.ident("column name")
		if err != nil {
			return sel, err
		}
		sel.column = col
	}
	if p.acceptKeyword("as") {
		alias, err := p.ident("alias")
		if err != nil {
			return sel, err
		}
		sel.alias = alias
	}
	return sel, nil
}
