package cql

import (
	"github.com/cockroachdb/pebble/v2"
	"github.com/datastax/go-cassandra-native-protocol/datatype"
	"github.com/datastax/go-cassandra-native-protocol/message"
	"github.com/datastax/go-cassandra-native-protocol/primitive"
)

// Schema statements. Each one builds a new catalog, writes the changed
// records and a new schema version in one synced pebble batch, then swaps
// the catalog in. Writes hold e.schemaMu shared, DDL exclusively, so no
// row is committed under a table that is being dropped.

const maxNameLen = 48

func validName(what, name string) error {
	ok := len(name) > 0 && len(name) <= maxNameLen
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = isIdentPart(c)
	}
	if !ok {
		return invalidf("%s name must not be empty, more than %d characters long, or contain non-alphanumeric-underscore characters (got %q)", what, maxNameLen, shortText(name))
	}
	return nil
}

func (e *engine) execDDL(sess *session, stmt statement) (message.Message, error) {
	e.schemaMu.Lock()
	defer e.schemaMu.Unlock()
	cur := e.cat.Load()
	next := cur.clone()
	b := e.db.NewBatch()
	defer b.Close()

	var change *message.SchemaChangeResult
	var err error
	switch s := stmt.(type) {
	case *createKeyspaceStmt:
		change, err = createKeyspace(next, b, s)
	case *createTableStmt:
		change, err = createTable(next, b, s, sess.currentKeyspace())
	case *dropKeyspaceStmt:
		change, err = dropKeyspace(next, b, s)
	case *dropTableStmt:
		change, err = dropTable(next, b, s, sess.currentKeyspace())
	case *truncateStmt:
		err = truncate(next, b, s, sess.currentKeyspace())
	}
	if err != nil {
		return nil, err
	}
	if change == nil && b.Empty() {
		return &message.VoidResult{}, nil // IF [NOT] EXISTS: nothing to do
	}
	if change != nil {
		next.schemaVersion = randomUUID()
		if err := b.Set(metaKey, marshalRecord(next.meta()), nil); err != nil {
			return nil, err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, newError(codeServer, "commit schema change: %v", err)
	}
	if change == nil {
		return &message.VoidResult{}, nil // TRUNCATE
	}
	e.cat.Store(next)
	e.log.Info("schema changed", "change", change.ChangeType, "target", change.Target, "keyspace", change.Keyspace, "object", change.Object)
	if e.notify != nil {
		e.notify(&message.SchemaChangeEvent{ChangeType: change.ChangeType, Target: change.Target, Keyspace: change.Keyspace, Object: change.Object})
	}
	return change, nil
}

func createKeyspace(c *catalog, b *pebble.Batch, s *createKeyspaceStmt) (*message.SchemaChangeResult, error) {
	if err := validName("Keyspace", s.name); err != nil {
		return nil, err
	}
	if ks := c.keyspaces[s.name]; ks != nil {
		if s.ifNotExists {
			return nil, nil
		}
		return nil, &Error{Code: codeAlreadyExists, Message: "Keyspace " + s.name + " already exists", Keyspace: s.name}
	}
	switch s.replication["class"] {
	case "SimpleStrategy", "org.apache.cassandra.locator.SimpleStrategy",
		"NetworkTopologyStrategy", "org.apache.cassandra.locator.NetworkTopologyStrategy":
	default:
		return nil, newError(primitive.ErrorCodeConfigError, "Unable to find replication strategy class '%s'", shortText(s.replication["class"]))
	}
	ks := &keyspace{name: s.name, replication: s.replication, durableWrites: s.durableWrites, tables: map[string]*table{}}
	c.keyspaces[s.name] = ks
	if err := b.Set(keyspaceKey(s.name), marshalRecord(ks.record()), nil); err != nil {
		return nil, err
	}
	return &message.SchemaChangeResult{ChangeType: primitive.SchemaChangeTypeCreated, Target: primitive.SchemaChangeTargetKeyspace, Keyspace: s.name}, nil
}

func userKeyspace(c *catalog, name string) (*keyspace, error) {
	if name == "" {
		return nil, invalidf("No keyspace has been specified. USE a keyspace, or explicitly specify keyspace.tablename")
	}
	ks := c.keyspaces[name]
	if ks == nil {
		return nil, invalidf("Keyspace '%s' does not exist", name)
	}
	if ks.virtual {
		return nil, invalidf("%s keyspace is not user-modifiable", name)
	}
	return ks, nil
}

func createTable(c *catalog, b *pebble.Batch, s *createTableStmt, sessKS string) (*message.SchemaChangeResult, error) {
	ksName := s.table.keyspaceIn(sessKS)
	ks, err := userKeyspace(c, ksName)
	if err != nil {
		return nil, err
	}
	if err := validName("Table", s.table.name); err != nil {
		return nil, err
	}
	if ks.tables[s.table.name] != nil {
		if s.ifNotExists {
			return nil, nil
		}
		return nil, &Error{Code: codeAlreadyExists, Message: "Table " + ksName + "." + s.table.name + " already exists", Keyspace: ksName, Table: s.table.name}
	}
	cols := make([]*column, 0, len(s.columns))
	byName := map[string]*column{}
	for i, d := range s.columns {
		if byName[d.name] != nil {
			return nil, invalidf("Multiple definition of identifier %s", d.name)
		}
		col := &column{name: d.name, typ: d.typ, id: i, kind: kindRegular, pos: -1}
		byName[d.name] = col
		cols = append(cols, col)
	}
	keyCol := func(name string) (*column, error) {
		col := byName[name]
		if col == nil {
			return nil, invalidf("Unknown definition %s referenced in PRIMARY KEY", name)
		}
		if col.kind != kindRegular {
			return nil, invalidf("Column %s appears twice in the PRIMARY KEY", name)
		}
		if isCollection(col.typ) {
			return nil, unsupported("a collection in the PRIMARY KEY (" + name + ")")
		}
		return col, nil
	}
	for i, name := range s.partition {
		col, err := keyCol(name)
		if err != nil {
			return nil, err
		}
		col.kind, col.pos = kindPartition, i
	}
	for i, name := range s.clustering {
		col, err := keyCol(name)
		if err != nil {
			return nil, err
		}
		if !orderable(col.typ) {
			return nil, unsupported("a clustering column of type " + typeName(col.typ) + " (" + name + ")")
		}
		col.kind, col.pos = kindClustering, i
	}
	for i, o := range s.order {
		col := byName[o.column]
		if col == nil || col.kind != kindClustering {
			return nil, invalidf("Only clustering key columns can be defined in CLUSTERING ORDER directive (got %s)", o.column)
		}
		if col.pos != i {
			return nil, invalidf("The order of columns in the CLUSTERING ORDER directive must be the one of the clustering key (%s must appear before %s)", s.clustering[i], o.column)
		}
		col.desc = o.desc
	}
	t := &table{keyspace: ksName, name: s.table.name, id: c.nextTableID, uuid: randomUUID(), comment: s.comment}
	c.nextTableID++
	if err := t.setColumns(cols); err != nil {
		return nil, invalidf("%v", err)
	}
	t.prefix = tablePrefix(t.id)
	ks.tables[t.name] = t
	if err := b.Set(tableKey(ksName, t.name), marshalRecord(t.record()), nil); err != nil {
		return nil, err
	}
	return &message.SchemaChangeResult{ChangeType: primitive.SchemaChangeTypeCreated, Target: primitive.SchemaChangeTargetTable, Keyspace: ksName, Object: t.name}, nil
}

func dropKeyspace(c *catalog, b *pebble.Batch, s *dropKeyspaceStmt) (*message.SchemaChangeResult, error) {
	ks := c.keyspaces[s.name]
	if ks == nil {
		if s.ifExists {
			return nil, nil
		}
		return nil, newError(primitive.ErrorCodeConfigError, "Cannot drop non existing keyspace '%s'.", s.name)
	}
	if ks.virtual {
		return nil, invalidf("%s keyspace is not user-modifiable", s.name)
	}
	for _, t := range ks.tables {
		if err := dropTableData(b, t); err != nil {
			return nil, err
		}
	}
	delete(c.keyspaces, s.name)
	if err := b.Delete(keyspaceKey(s.name), nil); err != nil {
		return nil, err
	}
	return &message.SchemaChangeResult{ChangeType: primitive.SchemaChangeTypeDropped, Target: primitive.SchemaChangeTargetKeyspace, Keyspace: s.name}, nil
}

func dropTableData(b *pebble.Batch, t *table) error {
	if err := b.Delete(tableKey(t.keyspace, t.name), nil); err != nil {
		return err
	}
	return b.DeleteRange(t.prefix, prefixEnd(t.prefix), nil)
}

func dropTable(c *catalog, b *pebble.Batch, s *dropTableStmt, sessKS string) (*message.SchemaChangeResult, error) {
	ksName := s.table.keyspaceIn(sessKS)
	ks, err := userKeyspace(c, ksName)
	if err != nil {
		return nil, err
	}
	t := ks.tables[s.table.name]
	if t == nil {
		if s.ifExists {
			return nil, nil
		}
		return nil, newError(primitive.ErrorCodeConfigError, "Cannot drop non existing table '%s' in keyspace '%s'.", s.table.name, ksName)
	}
	if err := dropTableData(b, t); err != nil {
		return nil, err
	}
	delete(ks.tables, t.name)
	return &message.SchemaChangeResult{ChangeType: primitive.SchemaChangeTypeDropped, Target: primitive.SchemaChangeTargetTable, Keyspace: ksName, Object: t.name}, nil
}

func truncate(c *catalog, b *pebble.Batch, s *truncateStmt, sessKS string) error {
	ksName := s.table.keyspaceIn(sessKS)
	ks, err := userKeyspace(c, ksName)
	if err != nil {
		return err
	}
	t := ks.tables[s.table.name]
	if t == nil {
		return invalidf("unconfigured table %s", s.table.name)
	}
	return b.DeleteRange(t.prefix, prefixEnd(t.prefix), nil)
}

func isCollection(dt datatype.DataType) bool {
	switch dt.Code() {
	case primitive.DataTypeCodeList, primitive.DataTypeCodeSet, primitive.DataTypeCodeMap:
		return true
	}
	return false
}
