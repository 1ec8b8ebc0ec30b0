package cql

import (
	"crypto/md5"
	"encoding/binary"
	"math"
	"net"
	"sort"

	"github.com/datastax/go-cassandra-native-protocol/datatype"
)

// The system and system_schema keyspaces: virtual tables computed from the
// catalog and the connection, with the columns drivers read (gocql reads
// system.local, system.peers_v2/peers and system_schema.keyspaces, tables,
// columns, types, functions, aggregates and views).

const (
	clusterName     = "Ballast"
	releaseVersion  = "4.0.0"
	cqlVersion      = "3.4.5"
	dataCenter      = "datacenter1"
	rack            = "rack1"
	partitionerName = "org.apache.cassandra.dht.Murmur3Partitioner"
	singleToken     = "-9223372036854775808" // one node owns the whole ring
)

// virtualCtx is what a virtual table's rows depend on.
type virtualCtx struct {
	cat   *catalog
	local net.Addr // the connection's local address: the node's address
}

type vcol struct {
	name string
	typ  datatype.DataType
	kind columnKind
}

var (
	mapTextText = datatype.NewMap(datatype.Varchar, datatype.Varchar)
	mapTextBlob = datatype.NewMap(datatype.Varchar, datatype.Blob)
	setText     = datatype.NewSet(datatype.Varchar)
	listText    = datatype.NewList(datatype.Varchar)
)

func pkc(name string, t datatype.DataType) vcol { return vcol{name, t, kindPartition} }
func ckc(name string, t datatype.DataType) vcol { return vcol{name, t, kindClustering} }
func rc(name string, t datatype.DataType) vcol  { return vcol{name, t, kindRegular} }

func newVirtualTable(ks, name string, cols []vcol, rows func(*virtualCtx) []map[string][]byte) *table {
	t := &table{keyspace: ks, name: name, virtual: rows, uuid: nameUUID(ks + "." + name)}
	var all []*column
	npk, nck := 0, 0
	for i, c := range cols {
		col := &column{name: c.name, typ: c.typ, id: i, kind: c.kind, pos: -1}
		switch c.kind {
		case kindPartition:
			col.pos = npk
			npk++
		case kindClustering:
			col.pos = nck
			nck++
		}
		all = append(all, col)
	}
	if err := t.setColumns(all); err != nil {
		panic("cql: bad virtual table " + ks + "." + name + ": " + err.Error())
	}
	return t
}

// systemKeyspaces builds the system and system_schema keyspaces.
func systemKeyspaces() []*keyspace {
	local := &keyspace{name: "system", replication: map[string]string{"class": "org.apache.cassandra.locator.LocalStrategy"}, durableWrites: true, virtual: true, tables: map[string]*table{}}
	schema := &keyspace{name: "system_schema", replication: map[string]string{"class": "org.apache.cassandra.locator.LocalStrategy"}, durableWrites: true, virtual: true, tables: map[string]*table{}}
	add := func(ks *keyspace, t *table) { ks.tables[t.name] = t }

	add(local, newVirtualTable("system", "local", []vcol{
		pkc("key", datatype.Varchar), rc("bootstrapped", datatype.Varchar), rc("broadcast_address", datatype.Inet),
		rc("broadcast_port", datatype.Int), rc("cluster_name", datatype.Varchar), rc("cql_version", datatype.Varchar),
		rc("data_center", datatype.Varchar), rc("gossip_generation", datatype.Int), rc("host_id", datatype.Uuid),
		rc("listen_address", datatype.Inet), rc("listen_port", datatype.Int), rc("native_protocol_version", datatype.Varchar),
		rc("partitioner", datatype.Varchar), rc("rack", datatype.Varchar), rc("release_version", datatype.Varchar),
		rc("rpc_address", datatype.Inet), rc("rpc_port", datatype.Int), rc("schema_version", datatype.Uuid),
		rc("tokens", setText), rc("truncated_at", datatype.NewMap(datatype.Uuid, datatype.Blob)),
	}, func(v *virtualCtx) []map[string][]byte {
		ip, port := hostPort(v.local)
		return []map[string][]byte{{
			"key": text("local"), "bootstrapped": text("COMPLETED"), "broadcast_address": ip,
			"broadcast_port": int32Value(7000), "cluster_name": text(clusterName), "cql_version": text(cqlVersion),
			"data_center": text(dataCenter), "gossip_generation": int32Value(1), "host_id": v.cat.hostID[:],
			"listen_address": ip, "listen_port": int32Value(7000), "native_protocol_version": text("4"),
			"partitioner": text(partitionerName), "rack": text(rack), "release_version": text(releaseVersion),
			"rpc_address": ip, "rpc_port": int32Value(int32(port)), "schema_version": v.cat.schemaVersion[:],
			"tokens": textCollection([]string{singleToken}),
		}}
	}))
	noRows := func(*virtualCtx) []map[string][]byte { return nil }
	add(local, newVirtualTable("system", "peers", []vcol{
		pkc("peer", datatype.Inet), rc("data_center", datatype.Varchar), rc("host_id", datatype.Uuid),
		rc("preferred_ip", datatype.Inet), rc("rack", datatype.Varchar), rc("release_version", datatype.Varchar),
		rc("rpc_address", datatype.Inet), rc("schema_version", datatype.Uuid), rc("tokens", setText),
	}, noRows))
	add(local, newVirtualTable("system", "peers_v2", []vcol{
		pkc("peer", datatype.Inet), ckc("peer_port", datatype.Int), rc("data_center", datatype.Varchar),
		rc("host_id", datatype.Uuid), rc("native_address", datatype.Inet), rc("native_port", datatype.Int),
		rc("preferred_ip", datatype.Inet), rc("preferred_port", datatype.Int), rc("rack", datatype.Varchar),
		rc("release_version", datatype.Varchar), rc("schema_version", datatype.Uuid), rc("tokens", setText),
	}, noRows))

	add(schema, newVirtualTable("system_schema", "keyspaces", []vcol{
		pkc("keyspace_name", datatype.Varchar), rc("durable_writes", datatype.Boolean), rc("replication", mapTextText),
	}, func(v *virtualCtx) []map[string][]byte {
		var rows []map[string][]byte
		for _, ks := range sortedKeyspaces(v.cat) {
			rows = append(rows, map[string][]byte{
				"keyspace_name": text(ks.name), "durable_writes": boolValue(ks.durableWrites),
				"replication": textMap(ks.replication),
			})
		}
		return rows
	}))
	tableOpts := []vcol{
		rc("bloom_filter_fp_chance", datatype.Double), rc("caching", mapTextText), rc("cdc", datatype.Boolean),
		rc("comment", datatype.Varchar), rc("compaction", mapTextText), rc("compression", mapTextText),
		rc("crc_check_chance", datatype.Double), rc("dclocal_read_repair_chance", datatype.Double),
		rc("default_time_to_live", datatype.Int), rc("extensions", mapTextBlob), rc("gc_grace_seconds", datatype.Int),
		rc("id", datatype.Uuid), rc("max_index_interval", datatype.Int), rc("memtable_flush_period_in_ms", datatype.Int),
		rc("min_index_interval", datatype.Int), rc("read_repair_chance", datatype.Double), rc("speculative_retry", datatype.Varchar),
	}
	optionValues := func(t *table) map[string][]byte {
		return map[string][]byte{
			"bloom_filter_fp_chance": doubleValue(0.01), "caching": textMap(map[string]string{"keys": "ALL", "rows_per_partition": "NONE"}),
			"cdc": boolValue(false), "comment": text(t.comment), "compaction": textMap(map[string]string{"class": "org.apache.cassandra.db.compaction.SizeTieredCompactionStrategy"}),
			"compression": textMap(map[string]string{}), "crc_check_chance": doubleValue(1), "dclocal_read_repair_chance": doubleValue(0),
			"default_time_to_live": int32Value(0), "extensions": textMap(map[string]string{}), "gc_grace_seconds": int32Value(864000),
			"id": t.uuid[:], "max_index_interval": int32Value(2048), "memtable_flush_period_in_ms": int32Value(0),
			"min_index_interval": int32Value(128), "read_repair_chance": doubleValue(0), "speculative_retry": text("99PERCENTILE"),
		}
	}
	add(schema, newVirtualTable("system_schema", "tables", append([]vcol{
		pkc("keyspace_name", datatype.Varchar), ckc("table_name", datatype.Varchar), rc("flags", setText),
	}, tableOpts...), func(v *virtualCtx) []map[string][]byte {
		var rows []map[string][]byte
		for _, ks := range sortedKeyspaces(v.cat) {
			for _, t := range sortedTables(ks) {
				row := optionValues(t)
				row["keyspace_name"], row["table_name"] = text(ks.name), text(t.name)
				row["flags"] = textCollection([]string{"compound"})
				rows = append(rows, row)
			}
		}
		return rows
	}))
	add(schema, newVirtualTable("system_schema", "columns", []vcol{
		pkc("keyspace_name", datatype.Varchar), ckc("table_name", datatype.Varchar), ckc("column_name", datatype.Varchar),
		rc("clustering_order", datatype.Varchar), rc("column_name_bytes", datatype.Blob), rc("kind", datatype.Varchar),
		rc("position", datatype.Int), rc("type", datatype.Varchar),
	}, func(v *virtualCtx) []map[string][]byte {
		var rows []map[string][]byte
		for _, ks := range sortedKeyspaces(v.cat) {
			for _, t := range sortedTables(ks) {
				cols := append([]*column(nil), t.columns...)
				sort.Slice(cols, func(i, j int) bool { return cols[i].name < cols[j].name })
				for _, c := range cols {
					order := "none"
					if c.kind == kindClustering {
						order = "asc"
						if c.desc {
							order = "desc"
						}
					}
					rows = append(rows, map[string][]byte{
						"keyspace_name": text(ks.name), "table_name": text(t.name), "column_name": text(c.name),
						"clustering_order": text(order), "column_name_bytes": []byte(c.name), "kind": text(c.kind.String()),
						"position": int32Value(int32(c.pos)), "type": text(typeName(c.typ)),
					})
				}
			}
		}
		return rows
	}))
	add(schema, newVirtualTable("system_schema", "types", []vcol{
		pkc("keyspace_name", datatype.Varchar), ckc("type_name", datatype.Varchar),
		rc("field_names", listText), rc("field_types", listText),
	}, noRows))
	add(schema, newVirtualTable("system_schema", "functions", []vcol{
		pkc("keyspace_name", datatype.Varchar), ckc("function_name", datatype.Varchar), ckc("argument_types", listText),
		rc("argument_names", listText), rc("body", datatype.Varchar), rc("called_on_null_input", datatype.Boolean),
		rc("language", datatype.Varchar), rc("return_type", datatype.Varchar),
	}, noRows))
	add(schema, newVirtualTable("system_schema", "aggregates", []vcol{
		pkc("keyspace_name", datatype.Varchar), ckc("aggregate_name", datatype.Varchar), ckc("argument_types", listText),
		rc("final_func", datatype.Varchar), rc("initcond", datatype.Varchar), rc("return_type", datatype.Varchar),
		rc("state_func", datatype.Varchar), rc("state_type", datatype.Varchar),
	}, noRows))
	add(schema, newVirtualTable("system_schema", "views", append([]vcol{
		pkc("keyspace_name", datatype.Varchar), ckc("view_name", datatype.Varchar), rc("base_table_id", datatype.Uuid),
		rc("base_table_name", datatype.Varchar), rc("include_all_columns", datatype.Boolean), rc("where_clause", datatype.Varchar),
	}, tableOpts...), noRows))
	add(schema, newVirtualTable("system_schema", "indexes", []vcol{
		pkc("keyspace_name", datatype.Varchar), ckc("table_name", datatype.Varchar), ckc("index_name", datatype.Varchar),
		rc("kind", datatype.Varchar), rc("options", mapTextText),
	}, noRows))
	add(schema, newVirtualTable("system_schema", "triggers", []vcol{
		pkc("keyspace_name", datatype.Varchar), ckc("table_name", datatype.Varchar), ckc("trigger_name", datatype.Varchar),
		rc("options", mapTextText),
	}, noRows))
	add(schema, newVirtualTable("system_schema", "dropped_columns", []vcol{
		pkc("keyspace_name", datatype.Varchar), ckc("table_name", datatype.Varchar), ckc("column_name", datatype.Varchar),
		rc("dropped_time", datatype.Timestamp), rc("kind", datatype.Varchar), rc("type", datatype.Varchar),
	}, noRows))
	return []*keyspace{local, schema}
}

func sortedKeyspaces(c *catalog) []*keyspace {
	out := make([]*keyspace, 0, len(c.keyspaces))
	for _, ks := range c.keyspaces {
		out = append(out, ks)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func sortedTables(ks *keyspace) []*table {
	out := make([]*table, 0, len(ks.tables))
	for _, t := range ks.tables {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// hostPort is the node's address as an inet value, and its port.
func hostPort(a net.Addr) ([]byte, int) {
	if ta, ok := a.(*net.TCPAddr); ok {
		if v4 := ta.IP.To4(); v4 != nil {
			return v4, ta.Port
		}
		if len(ta.IP) == net.IPv6len {
			return ta.IP, ta.Port
		}
	}
	return net.IPv4(127, 0, 0, 1).To4(), 9042
}

func nameUUID(s string) [16]byte {
	u := md5.Sum([]byte(s))
	u[6] = u[6]&0x0f | 0x30
	u[8] = u[8]&0x3f | 0x80
	return u
}

func text(s string) []byte { return []byte(s) }

func int32Value(v int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }

func doubleValue(f float64) []byte {
	return binary.BigEndian.AppendUint64(nil, math.Float64bits(f))
}

func boolValue(v bool) []byte {
	if v {
		return []byte{1}
	}
	return []byte{0}
}

func textCollection(ss []string) []byte {
	elems := make([][]byte, len(ss))
	for i, s := range ss {
		elems[i] = []byte(s)
	}
	return collectionBytes(elems)
}

func textMap(m map[string]string) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	flat := make([][]byte, 0, 2*len(keys))
	for _, k := range keys {
		flat = append(flat, []byte(k), []byte(m[k]))
	}
	b := collectionBytes(flat)
	binary.BigEndian.PutUint32(b, uint32(len(keys)))
	return b
}
