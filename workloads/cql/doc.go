// Package cql is an embedded CQL server: it stands in for Apache Cassandra
// in demos and tests. It speaks the CQL native protocol v4 (frames, messages
// and types from github.com/datastax/go-cassandra-native-protocol), so
// unmodified drivers such as gocql connect to it, and it keeps rows in a
// real embedded storage engine, github.com/cockroachdb/pebble/v2, one
// database under Config.Dir. A write is acknowledged only after its pebble
// batch (one per INSERT/UPDATE/DELETE or per BATCH message) is committed
// with fsync; the schema lives in the same store, so a restart keeps
// keyspaces, tables and rows. Production points the same clients at Apache
// Cassandra or ScyllaDB instead.
//
// It is one node owning the whole Murmur3 token ring: system.local (with
// the partitioner and a token), empty system.peers and system.peers_v2, and
// system_schema.keyspaces, tables, columns (plus empty types, functions,
// aggregates, views, indexes, triggers, dropped_columns) describing its own
// catalog, which is what drivers read to set up sessions, check schema
// agreement and route by token.
//
// The CQL it serves:
//
//   - CREATE KEYSPACE [IF NOT EXISTS] ... WITH replication = {...}
//     (SimpleStrategy or NetworkTopologyStrategy; one copy is kept anyway);
//     DROP KEYSPACE [IF EXISTS]; USE.
//   - CREATE TABLE [IF NOT EXISTS] with single or composite partition keys,
//     any number of clustering columns, WITH CLUSTERING ORDER BY (... ASC|DESC)
//     and a comment (Cassandra's tuning options are accepted and ignored);
//     DROP TABLE [IF EXISTS]; TRUNCATE.
//   - INSERT (an upsert), UPDATE ... SET col = value (full primary key),
//     DELETE of a row, of some columns of a row, of a partition or of a
//     clustering range.
//   - SELECT of columns (with AS aliases), *, count(*) / count(1) /
//     count(col), DISTINCT partition keys; WHERE with = or IN on the
//     partition key, = on leading clustering columns and a range (<, <=, >,
//     >=) on the next one; ORDER BY clustering order or its reverse; LIMIT;
//     result paging. A SELECT without partition key scans the whole table
//     (paged). ALLOW FILTERING turns any other restriction into a filter.
//   - BEGIN [UNLOGGED|LOGGED] BATCH ... APPLY BATCH and BATCH messages of
//     INSERT, UPDATE and DELETE; both are applied atomically.
//   - PREPARE/EXECUTE with ? and :name markers (also in LIMIT and IN ?);
//     prepared results carry the partition key indices for token-aware
//     routing. Unknown ids answer Unprepared so clients re-prepare, e.g.
//     after a restart.
//   - Types: ascii, text/varchar, int, bigint, smallint, tinyint, varint,
//     float, double, decimal, boolean, timestamp, date, time, uuid,
//     timeuuid, blob, inet, and list/set/map (stored whole, frozen or not)
//     as regular columns. Any consistency level is accepted.
//
// Not served, answered with an ERROR frame naming the problem (Invalid
// 0x2200 for recognised but unsupported statements, Syntax 0x2000 for
// malformed ones, Protocol 0x000A for bad frames): secondary indexes,
// materialized views, user-defined types, functions and aggregates, ALTER,
// roles and permissions, lightweight transactions (IF on DML), USING TTL and
// USING TIMESTAMP, counters, static columns, tuples, durations, collection
// element updates, GROUP BY, PER PARTITION LIMIT, token() restrictions, SELECT
// JSON, INSERT JSON, compression and authentication. Write timestamps are
// the order of arrival (client timestamps are ignored).
package cql
