package cql

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/datastax/go-cassandra-native-protocol/datatype"
)

// The catalog is the schema: keyspaces, their tables and columns. It is an
// immutable snapshot; DDL builds a modified copy, persists it in the same
// pebble store as the rows (catalogKey) and swaps it in.

type columnKind int

const (
	kindPartition columnKind = iota
	kindClustering
	kindRegular
)

func (k columnKind) String() string {
	switch k {
	case kindPartition:
		return "partition_key"
	case kindClustering:
		return "clustering"
	}
	return "regular"
}

type column struct {
	name string
	typ  datatype.DataType
	id   int // stable cell id in row values
	kind columnKind
	pos  int  // position in the partition or clustering key; -1 for regular
	desc bool // clustering column in descending order
	idx  int  // index in table.columns
}

type table struct {
	keyspace, name string
	id             uint64   // storage id: rows live under dataPrefix(id)
	uuid           [16]byte // the id system_schema shows
	comment        string
	columns        []*column // SELECT * order: partition key, clustering, regular by name
	byName         map[string]*column
	pk, ck, reg    []*column // reg in id order
	cells          []*column // regular columns by cell id
	prefix         []byte    // storage key prefix of the rows
	// virtual tables (system, system_schema) compute their rows.
	virtual func(v *virtualCtx) []map[string][]byte
}

type keyspace struct {
	name          string
	replication   map[string]string
	durableWrites bool
	tables        map[string]*table
	virtual       bool
}

type catalog struct {
	keyspaces     map[string]*keyspace
	schemaVersion [16]byte
	hostID        [16]byte
	nextTableID   uint64
}

// Storage keys: the catalog under 0x00, rows under 0x01 + table id.
const (
	catalogPrefix = 0x00
	dataPrefix    = 0x01
)

func keyspaceKey(name string) []byte { return append([]byte{catalogPrefix, 'k'}, name...) }

func tableKey(ks, name string) []byte {
	k := append([]byte{catalogPrefix, 't'}, ks...)
	return append(append(k, 0), name...)
}

var metaKey = []byte{catalogPrefix, 'm'}

func tablePrefix(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{dataPrefix}, id)
}

// Persisted forms.

type keyspaceRecord struct {
	Name          string            `json:"name"`
	Replication   map[string]string `json:"replication"`
	DurableWrites bool              `json:"durable_writes"`
}

type columnRecord struct {
	Name string `json:"name"`
	Type string `json:"type"`
	ID   int    `json:"id"`
	Kind string `json:"kind"`
	Pos  int    `json:"position"`
	Desc bool   `json:"desc,omitempty"`
}

type tableRecord struct {
	Keyspace string         `json:"keyspace"`
	Name     string         `json:"name"`
	ID       uint64         `json:"id"`
	UUID     [16]byte       `json:"uuid"`
	Comment  string         `json:"comment,omitempty"`
	Columns  []columnRecord `json:"columns"`
}

type metaRecord struct {
	NextTableID   uint64   `json:"next_table_id"`
	SchemaVersion [16]byte `json:"schema_version"`
	HostID        [16]byte `json:"host_id"`
}

func (ks *keyspace) record() keyspaceRecord {
	return keyspaceRecord{Name: ks.name, Replication: ks.replication, DurableWrites: ks.durableWrites}
}

func (t *table) record() tableRecord {
	r := tableRecord{Keyspace: t.keyspace, Name: t.name, ID: t.id, UUID: t.uuid, Comment: t.comment}
	for _, c := range t.columns {
		r.Columns = append(r.Columns, columnRecord{Name: c.name, Type: typeName(c.typ), ID: c.id, Kind: c.kind.String(), Pos: c.pos, Desc: c.desc})
	}
	return r
}

func (c *catalog) meta() metaRecord {
	return metaRecord{NextTableID: c.nextTableID, SchemaVersion: c.schemaVersion, HostID: c.hostID}
}

// tableFromRecord rebuilds a table from its persisted form.
func tableFromRecord(r tableRecord) (*table, error) {
	cols := make([]*column, 0, len(r.Columns))
	for _, cr := range r.Columns {
		dt, err := parseTypeName(cr.Type)
		if err != nil {
			return nil, fmt.Errorf("table %s.%s column %s: type %q: %w", r.Keyspace, r.Name, cr.Name, cr.Type, err)
		}
		c := &column{name: cr.Name, typ: dt, id: cr.ID, pos: cr.Pos, desc: cr.Desc}
		switch cr.Kind {
		case "partition_key":
			c.kind = kindPartition
		case "clustering":
			c.kind = kindClustering
		case "regular":
			c.kind = kindRegular
		default:
			return nil, fmt.Errorf("table %s.%s column %s: unknown kind %q", r.Keyspace, r.Name, cr.Name, cr.Kind)
		}
		cols = append(cols, c)
	}
	t := &table{keyspace: r.Keyspace, name: r.Name, id: r.ID, uuid: r.UUID, comment: r.Comment}
	if err := t.setColumns(cols); err != nil {
		return nil, fmt.Errorf("table %s.%s: %w", r.Keyspace, r.Name, err)
	}
	t.prefix = tablePrefix(t.id)
	return t, nil
}

// setColumns fills the column indexes of a table from its columns (kind,
// pos and id set).
func (t *table) setColumns(cols []*column) error {
	t.byName = make(map[string]*column, len(cols))
	t.pk, t.ck, t.reg = nil, nil, nil
	for _, c := range cols {
		if t.byName[c.name] != nil {
			return fmt.Errorf("duplicate column %s", c.name)
		}
		t.byName[c.name] = c
		switch c.kind {
		case kindPartition:
			t.pk = append(t.pk, c)
		case kindClustering:
			t.ck = append(t.ck, c)
		default:
			t.reg = append(t.reg, c)
		}
	}
	sort.Slice(t.pk, func(i, j int) bool { return t.pk[i].pos < t.pk[j].pos })
	sort.Slice(t.ck, func(i, j int) bool { return t.ck[i].pos < t.ck[j].pos })
	sort.Slice(t.reg, func(i, j int) bool { return t.reg[i].id < t.reg[j].id })
	for i, c := range t.pk {
		if c.pos != i {
			return fmt.Errorf("partition key positions are not 0..%d", len(t.pk)-1)
		}
	}
	for i, c := range t.ck {
		if c.pos != i {
			return fmt.Errorf("clustering positions are not 0..%d", len(t.ck)-1)
		}
	}
	if len(t.pk) == 0 {
		return fmt.Errorf("no partition key")
	}
	byName := append([]*column(nil), t.reg...)
	sort.Slice(byName, func(i, j int) bool { return byName[i].name < byName[j].name })
	t.columns = append(append(append([]*column(nil), t.pk...), t.ck...), byName...)
	for i, c := range t.columns {
		c.idx = i
	}
	t.cells = nil
	for _, c := range t.reg {
		if c.id < 0 || c.id > 1<<16 {
			return fmt.Errorf("column %s has a bad id %d", c.name, c.id)
		}
		for len(t.cells) <= c.id {
			t.cells = append(t.cells, nil)
		}
		t.cells[c.id] = c
	}
	return nil
}

// clone copies the catalog's maps so a DDL can modify the copy.
func (c *catalog) clone() *catalog {
	n := *c
	n.keyspaces = make(map[string]*keyspace, len(c.keyspaces))
	for name, ks := range c.keyspaces {
		k := *ks
		k.tables = make(map[string]*table, len(ks.tables))
		for tn, t := range ks.tables {
			k.tables[tn] = t
		}
		n.keyspaces[name] = &k
	}
	return &n
}

// lookup finds a table; the errors are the ones Cassandra gives.
func (c *catalog) lookup(ksName, name string) (*table, error) {
	if ksName == "" {
		return nil, invalidf("No keyspace has been specified. USE a keyspace, or explicitly specify keyspace.tablename")
	}
	ks := c.keyspaces[ksName]
	if ks == nil {
		return nil, invalidf("Keyspace '%s' does not exist", ksName)
	}
	t := ks.tables[name]
	if t == nil {
		return nil, invalidf("unconfigured table %s", name)
	}
	return t, nil
}

func randomUUID() [16]byte {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

func marshalRecord(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("cql catalog: marshal %T: %v", v, err)) // plain structs: cannot fail
	}
	return b
}
