package cql

import "github.com/datastax/go-cassandra-native-protocol/datatype"

// The statements the parser produces. They are plain syntax: names are not
// resolved and literals are not typed until a statement is planned against
// the catalog (plan.go).

type statement interface{ stmtName() string }

// tableName is an optionally keyspace-qualified table name.
type tableName struct {
	keyspace string // "" when not qualified
	name     string
}

// keyspaceIn is the table's keyspace: its own, or, unqualified, the
// session's current one.
func (tn tableName) keyspaceIn(current string) string {
	if tn.keyspace == "" {
		return current
	}
	return tn.keyspace
}

// literalKind classifies constants as written.
type literalKind int

const (
	litString literalKind = iota
	litInteger
	litFloat
	litBool
	litUUID
	litHex
	litNull
	litList
	litSet // also the empty {} that can be a map
	litMap
)

// term is a value in a statement: a constant or a bind marker.
type term struct {
	bind  bool   // a bind marker (? or :name)
	index int    // bind marker index, in order of appearance
	name  string // name of a named marker
	kind  literalKind
	text  string // constant text (strings unescaped, hex without 0x)
	elems []term // list/set elements, map keys
	vals  []term // map values
	pos   int
}

// relation is one WHERE condition: col op value.
type relation struct {
	column string
	op     string // = < <= > >= IN
	value  term   // the value, or a single bind marker for IN ?
	in     []term // IN (v1, v2, ...)
	pos    int
}

type selector struct {
	column string // "" for count(*)
	count  bool   // count(*), count(1) or count(column)
	alias  string
}

type ordering struct {
	column string
	desc   bool
}

type selectStmt struct {
	table          tableName
	distinct       bool
	star           bool
	selectors      []selector
	where          []relation
	orderBy        []ordering
	limit          *term
	allowFiltering bool
}

type insertStmt struct {
	table   tableName
	columns []string
	values  []term
}

type assignment struct {
	column string
	value  term
}

type updateStmt struct {
	table tableName
	set   []assignment
	where []relation
}

type deleteStmt struct {
	table   tableName
	columns []string // empty: delete whole rows
	where   []relation
}

type batchStmt struct {
	unlogged bool
	stmts    []statement // insert, update or delete
}

type createKeyspaceStmt struct {
	name          string
	ifNotExists   bool
	replication   map[string]string
	durableWrites bool
}

type columnDef struct {
	name string
	typ  datatype.DataType
}

type createTableStmt struct {
	table       tableName
	ifNotExists bool
	columns     []columnDef
	partition   []string
	clustering  []string
	order       []ordering // CLUSTERING ORDER BY
	comment     string
}

type dropKeyspaceStmt struct {
	name     string
	ifExists bool
}

type dropTableStmt struct {
	table    tableName
	ifExists bool
}

type truncateStmt struct{ table tableName }

type useStmt struct{ keyspace string }

func (*selectStmt) stmtName() string         { return "SELECT" }
func (*insertStmt) stmtName() string         { return "INSERT" }
func (*updateStmt) stmtName() string         { return "UPDATE" }
func (*deleteStmt) stmtName() string         { return "DELETE" }
func (*batchStmt) stmtName() string          { return "BATCH" }
func (*createKeyspaceStmt) stmtName() string { return "CREATE KEYSPACE" }
func (*createTableStmt) stmtName() string    { return "CREATE TABLE" }
func (*dropKeyspaceStmt) stmtName() string   { return "DROP KEYSPACE" }
func (*dropTableStmt) stmtName() string      { return "DROP TABLE" }
func (*truncateStmt) stmtName() string       { return "TRUNCATE" }
func (*useStmt) stmtName() string            { return "USE" }
