package cql

import (
	"fmt"
	"strings"

	"github.com/datastax/go-cassandra-native-protocol/datatype"
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

// tableOptions are the CREATE TABLE options accepted and ignored (they tune
// Cassandra's storage, which this server does not have).
var tableOptions = map[string]bool{
	"bloom_filter_fp_chance": true, "caching": true, "compaction": true, "compression": true,
	"crc_check_chance": true, "dclocal_read_repair_chance": true, "gc_grace_seconds": true,
	"max_index_interval": true, "memtable_flush_period_in_ms": true, "min_index_interval": true,
	"read_repair_chance": true, "speculative_retry": true, "additional_write_policy": true,
	"cdc": true, "extensions": true, "read_repair": true, "memtable": true,
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
