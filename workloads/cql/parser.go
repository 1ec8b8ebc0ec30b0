package cql

import (
	"fmt"
	"strings"
)

// The CQL statement parser: a small recursive descent over the tokens of
// lexer.go, covering the statements listed in doc.go. Statements it
// recognises but the server does not implement are rejected here with an
// Invalid error naming them; anything else malformed is a Syntax error.

// maxNesting bounds nested collection literals and types.
const maxNesting = 16

// parsed is a parsed statement and the bind markers it contains.
type parsed struct {
	stmt  statement
	binds []string // one entry per marker, in order; "" for ?
}

// parse parses one CQL statement (an optional trailing ';' is allowed).
func parse(src string) (*parsed, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks}
	stmt, err := p.statement()
	if err != nil {
		return nil, err
	}
	p.acceptPunct(";")
	if p.peek().kind != tokEOF {
		return nil, p.unexpected("end of statement")
	}
	return &parsed{stmt: stmt, binds: p.binds}, nil
}

// reserved are CQL's reserved keywords: they are not identifiers unless
// double-quoted.
var reserved = map[string]bool{
	"add": true, "allow": true, "alter": true, "and": true, "apply": true, "asc": true,
	"authorize": true, "batch": true, "begin": true, "by": true, "columnfamily": true,
	"create": true, "delete": true, "desc": true, "describe": true, "drop": true,
	"entries": true, "execute": true, "from": true, "full": true, "grant": true, "if": true,
	"in": true, "index": true, "infinity": true, "insert": true, "into": true, "is": true,
	"keyspace": true, "limit": true, "materialized": true, "mbean": true, "mbeans": true,
	"modify": true, "nan": true, "norecursive": true, "not": true, "null": true, "of": true,
	"on": true, "or": true, "order": true, "primary": true, "rename": true, "replace": true,
	"revoke": true, "schema": true, "select": true, "set": true, "table": true, "to": true,
	"token": true, "truncate": true, "unlogged": true, "unset": true, "update": true,
	"use": true, "using": true, "view": true, "where": true, "with": true,
}

type parser struct {
	src   string
	toks  []token
	i     int
	binds []string
	depth int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) peekAt(n int) token {
	if p.i+n < len(p.toks) {
		return p.toks[p.i+n]
	}
	return p.toks[len(p.toks)-1]
}

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *parser) isKeyword(t token, word string) bool {
	return t.kind == tokIdent && strings.EqualFold(t.text, word)
}

func (p *parser) atKeyword(word string) bool { return p.isKeyword(p.peek(), word) }

func (p *parser) acceptKeyword(word string) bool {
	if p.atKeyword(word) {
		p.i++
		return true
	}
	return false
}

func (p *parser) expectKeyword(words ...string) error {
	for _, w := range words {
		if !p.acceptKeyword(w) {
			return p.unexpected(strings.ToUpper(w))
		}
	}
	return nil
}

func (p *parser) atPunct(s string) bool {
	t := p.peek()
	return t.kind == tokPunct && t.text == s
}

func (p *parser) acceptPunct(s string) bool {
	if p.atPunct(s) {
		p.i++
		return true
	}
	return false
}

func (p *parser) expectPunct(s string) error {
	if !p.acceptPunct(s) {
		return p.unexpected("'" + s + "'")
	}
	return nil
}

// unexpected reports the current token as a syntax error.
func (p *parser) unexpected(expecting string) error {
	t := p.peek()
	if t.kind == tokEOF {
		return syntaxErrorAt(p.src, t.pos, "mismatched input at end of statement, expecting "+expecting)
	}
	return syntaxErrorAt(p.src, t.pos, fmt.Sprintf("mismatched input '%s' expecting %s", tokenText(t), expecting))
}

func tokenText(t token) string {
	switch t.kind {
	case tokString:
		return "'" + t.text + "'"
	case tokQuoted:
		return `"` + t.text + `"`
	case tokHex:
		return "0x" + t.text
	case tokNamedBind:
		return ":" + t.text
	}
	return t.text
}

// unsupported rejects a recognised statement or clause the server does not
// implement.
func unsupported(what string) error {
	return invalidf("%s is not supported by this server (Ballast's embedded CQL stand-in serves a subset of CQL)", what)
}

// ident reads an identifier: unquoted ones are case-insensitive (lower-cased),
// quoted ones are kept as written.
func (p *parser) ident(what string) (string, error) {
	t := p.peek()
	switch {
	case t.kind == tokQuoted:
		p.i++
		return t.text, nil
	case t.kind == tokIdent && !reserved[strings.ToLower(t.text)]:
		p.i++
		return strings.ToLower(t.text), nil
	}
	return "", p.unexpected(what)
}

// tableName reads [keyspace.]table.
func (p *parser) tableName() (tableName, error) {
	first, err := p.ident("table name")
	if err != nil {
		return tableName{}, err
	}
	if !p.acceptPunct(".") {
		return tableName{name: first}, nil
	}
	second, err := p.ident("table name")
	if err != nil {
		return tableName{}, err
	}
	return tableName{keyspace: first, name: second}, nil
}

func (p *parser) statement() (statement, error) {
	t := p.peek()
	if t.kind != tokIdent {
		return nil, p.unexpected("a statement")
	}
	switch strings.ToLower(t.text) {
	case "select":
		p.i++
		return p.selectStmt()
	case "insert":
		p.i++
		return p.insertStmt()
	case "update":
		p.i++
		return p.updateStmt()
	case "delete":
		p.i++
		return p.deleteStmt()
	case "begin":
		p.i++
		return p.batchStmt()
	case "create":
		p.i++
		return p.createStmt()
	case "drop":
		p.i++
		return p.dropStmt()
	case "truncate":
		p.i++
		p.acceptKeyword("table")
		p.acceptKeyword("columnfamily")
		tn, err := p.tableName()
		if err != nil {
			return nil, err
		}
		return &truncateStmt{table: tn}, nil
	case "use":
		p.i++
		ks, err := p.ident("keyspace name")
		if err != nil {
			return nil, err
		}
		return &useStmt{keyspace: ks}, nil
	case "alter":
		return nil, unsupported("ALTER " + strings.ToUpper(p.peekAt(1).text))
	case "grant", "revoke", "list", "describe", "desc":
		return nil, unsupported(strings.ToUpper(t.text))
	}
	return nil, p.unexpected("a statement")
}

// ---- SELECT ----

func (p *parser) relations() ([]relation, error) {
	var rels []relation
	for {
		r, err := p.relation()
		if err != nil {
			return nil, err
		}
		rels = append(rels, r)
		if !p.acceptKeyword("and") {
			return rels, nil
		}
	}
}

func (p *parser) relation() (relation, error) {
	start := p.peek()
	if p.atPunct("(") {
		return relation{}, unsupported("a multi-column (tuple) relation")
	}
	if p.atKeyword("token") && p.peekAt(1).kind == tokPunct && p.peekAt(1).text == "(" {
		return relation{}, unsupported("a token() relation")
	}
	col, err := p.ident("column name")
	if err != nil {
		return relation{}, err
	}
	r := relation{column: col, pos: start.pos}
	t := p.peek()
	switch {
	case t.kind == tokPunct && (t.text == "=" || t.text == "<" || t.text == "<=" || t.text == ">" || t.text == ">="):
		p.i++
		r.op = t.text
	case t.kind == tokPunct && t.text == "!=":
		return r, unsupported("the != operator")
	case p.isKeyword(t, "in"):
		p.i++
		r.op = "IN"
		if p.acceptPunct("(") {
			if !p.atPunct(")") {
				for {
					v, err := p.term()
					if err != nil {
						return r, err
					}
					r.in = append(r.in, v)
					if !p.acceptPunct(",") {
						break
					}
				}
			}
			if err := p.expectPunct(")"); err != nil {
				return r, err
			}
			return r, nil
		}
		if p.peek().kind != tokBind && p.peek().kind != tokNamedBind {
			return r, p.unexpected("'(' or a bind marker")
		}
		v, err := p.term()
		if err != nil {
			return r, err
		}
		r.value = v
		return r, nil
	case p.isKeyword(t, "contains"):
		return r, unsupported("CONTAINS")
	case p.isKeyword(t, "like"):
		return r, unsupported("LIKE")
	case p.isKeyword(t, "is"):
		return r, unsupported("IS NOT NULL")
	default:
		return r, p.unexpected("an operator")
	}
	v, err := p.term()
	if err != nil {
		return r, err
	}
	r.value = v
	return r, nil
}

// ---- terms ----

func (p *parser) term() (term, error) {
	t := p.peek()
	tm := term{pos: t.pos}
	switch t.kind {
	case tokBind:
		p.i++
		tm.bind, tm.index = true, len(p.binds)
		p.binds = append(p.binds, "")
		return tm, nil
	case tokNamedBind:
		p.i++
		tm.bind, tm.index, tm.name = true, len(p.binds), t.text
		p.binds = append(p.binds, t.text)
		return tm, nil
	case tokString:
		p.i++
		tm.kind, tm.text = litString, t.text
		return tm, nil
	case tokInteger:
		p.i++
		tm.kind, tm.text = litInteger, t.text
		return tm, nil
	case tokFloat:
		p.i++
		tm.kind, tm.text = litFloat, t.text
		return tm, nil
	case tokHex:
		p.i++
		tm.kind, tm.text = litHex, t.text
		return tm, nil
	case tokUUID:
		p.i++
		tm.kind, tm.text = litUUID, t.text
		return tm, nil
	case tokDuration:
		return tm, unsupported("a duration literal")
	case tokIdent:
		if nt := p.peekAt(1); nt.kind == tokPunct && nt.text == "(" {
			return tm, unsupported(fmt.Sprintf("the function %s()", strings.ToLower(t.text)))
		}
		switch strings.ToLower(t.text) {
		case "true", "false":
			p.i++
			tm.kind, tm.text = litBool, strings.ToLower(t.text)
			return tm, nil
		case "null":
			p.i++
			tm.kind = litNull
			return tm, nil
		}
	case tokPunct:
		switch t.text {
		case "[":
			return p.collection(tm, "[", "]", litList)
		case "{":
			return p.collection(tm, "{", "}", litSet)
		case "(":
			return tm, unsupported("a tuple literal")
		case "-":
			if nt := p.peekAt(1); p.isKeyword(nt, "nan") || p.isKeyword(nt, "infinity") || nt.kind == tokFloat {
				p.i += 2
				tm.kind, tm.text = litFloat, "-"+nt.text
				return tm, nil
			}
		}
	}
	return tm, p.unexpected("a constant or a bind marker")
}

// collection reads [a, b], {a, b} or {k: v, ...}.
func (p *parser) collection(tm term, open, close string, kind literalKind) (term, error) {
	if p.depth >= maxNesting {
		return tm, syntaxErrorAt(p.src, tm.pos, "collection literal nested too deeply")
	}
	p.depth++
	defer func() { p.depth-- }()
	p.i++ // open
	tm.kind = kind
	if p.acceptPunct(close) {
		return tm, nil
	}
	for {
		v, err := p.term()
		if err != nil {
			return tm, err
		}
		if v.bind {
			return tm, unsupported("a bind marker inside a collection literal")
		}
		tm.elems = append(tm.elems, v)
		if kind != litList && (tm.kind == litMap || len(tm.elems) == 1) && p.acceptPunct(":") {
			if len(tm.elems) != len(tm.vals)+1 {
				return tm, syntaxErrorAt(p.src, v.pos, "mixed set and map literal")
			}
			tm.kind = litMap
			mv, err := p.term()
			if err != nil {
				return tm, err
			}
			if mv.bind {
				return tm, unsupported("a bind marker inside a collection literal")
			}
			tm.vals = append(tm.vals, mv)
		} else if tm.kind == litMap {
			return tm, p.unexpected("':'")
		}
		if !p.acceptPunct(",") {
			break
		}
	}
	if err := p.expectPunct(close); err != nil {
		return tm, err
	}
	return tm, nil
}

// ---- INSERT / UPDATE / DELETE ----

// tableOptions are the CREATE TABLE options accepted and ignored (they tune
// Cassandra's storage, which this server does not have).
var tableOptions = map[string]bool{
	"bloom_filter_fp_chance": true, "caching": true, "compaction": true, "compression": true,
	"crc_check_chance": true, "dclocal_read_repair_chance": true, "gc_grace_seconds": true,
	"max_index_interval": true, "memtable_flush_period_in_ms": true, "min_index_interval": true,
	"read_repair_chance": true, "speculative_retry": true, "additional_write_policy": true,
	"cdc": true, "extensions": true, "read_repair": true, "memtable": true,
}
