package cql

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"

	"github.com/cockroachdb/pebble/v2"
)

// openStore opens (or creates) the pebble database under dir with the row
// merge operator, and loads the catalog persisted in it.
func openStore(dir string, log *slog.Logger) (*pebble.DB, *catalog, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("create data dir %s: %w", dir, err)
	}
	opts := &pebble.Options{
		Merger:       rowMerger,
		MemTableSize: 64 << 20,
		Logger:       pebbleLogger{log},
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("open pebble store in %s: %w", dir, err)
	}
	cat, err := loadCatalog(db)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("load catalog from %s: %w", dir, err)
	}
	return db, cat, nil
}

// loadCatalog reads the persisted keyspaces and tables; a new store gets a
// host id and schema version, written durably.
func loadCatalog(db *pebble.DB) (*catalog, error) {
	cat := &catalog{keyspaces: map[string]*keyspace{}, nextTableID: 1}
	v, closer, err := db.Get(metaKey)
	switch {
	case err == pebble.ErrNotFound:
		cat.hostID = randomUUID()
		cat.schemaVersion = randomUUID()
		b := db.NewBatch()
		defer b.Close()
		if err := b.Set(metaKey, marshalRecord(cat.meta()), nil); err != nil {
			return nil, err
		}
		if err := b.Commit(pebble.Sync); err != nil {
			return nil, fmt.Errorf("write catalog meta: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("read catalog meta: %w", err)
	default:
		var m metaRecord
		err := json.Unmarshal(v, &m)
		closer.Close()
		if err != nil {
			return nil, fmt.Errorf("decode catalog meta: %w", err)
		}
		cat.hostID, cat.schemaVersion, cat.nextTableID = m.HostID, m.SchemaVersion, m.NextTableID
	}

	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{catalogPrefix, 'k'}, UpperBound: []byte{catalogPrefix, 'l'}})
	if err != nil {
		return nil, err
	}
	for it.First(); it.Valid(); it.Next() {
		var r keyspaceRecord
		if err := json.Unmarshal(it.Value(), &r); err != nil {
			it.Close()
			return nil, fmt.Errorf("decode keyspace %q: %w", it.Key()[2:], err)
		}
		cat.keyspaces[r.Name] = &keyspace{name: r.Name, replication: r.Replication, durableWrites: r.DurableWrites, tables: map[string]*table{}}
	}
	if err := it.Close(); err != nil {
		return nil, err
	}

	it, err = db.NewIter(&pebble.IterOptions{LowerBound: []byte{catalogPrefix, 't'}, UpperBound: []byte{catalogPrefix, 'u'}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		var r tableRecord
		if err := json.Unmarshal(it.Value(), &r); err != nil {
			return nil, fmt.Errorf("decode table %q: %w", it.Key()[2:], err)
		}
		t, err := tableFromRecord(r)
		if err != nil {
			return nil, err
		}
		ks := cat.keyspaces[t.keyspace]
		if ks == nil {
			return nil, fmt.Errorf("table %s.%s belongs to no keyspace", t.keyspace, t.name)
		}
		ks.tables[t.name] = t
	}
	return cat, it.Error()
}

// pebbleLogger sends pebble's logging to slog (informational messages at
// debug level: pebble is chatty about flushes and compactions).
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...), "component", "pebble")
	os.Exit(1)
}
