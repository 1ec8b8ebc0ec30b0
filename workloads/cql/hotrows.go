package cql

import (
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// Partial writes (UPDATE, INSERT of some columns, DELETE of columns) are
// pebble merge operands, and reading a row folds every operand of it still
// in the memtable; a flush folds them into one. hotRows counts merges per
// row (approximately, in hashed buckets) and flushes the memtable when one
// row has gathered hotRowLimit of them, so a row updated in a tight loop
// does not make its reads ever slower.

const (
	hotRowLimit   = 4096
	hotRowBuckets = 1 << 14
)

var hotSeed = maphash.MakeSeed()

func rowHash(key []byte) uint64 { return maphash.Bytes(hotSeed, key) }

type hotRows struct {
	counts  [hotRowBuckets]atomic.Uint32
	mu      sync.Mutex
	pending <-chan struct{} // the flush under way, if any
	flushes atomic.Int64    // flushes asked for
}

// note records committed merges (row key hashes) and asks for a flush when
// a row has too many.
func (h *hotRows) note(db *pebble.DB, merged []uint64, log *slog.Logger) {
	hot := false
	for _, kh := range merged {
		if h.counts[kh%hotRowBuckets].Add(1) >= hotRowLimit {
			hot = true
		}
	}
	if !hot {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pending != nil {
		select {
		case <-h.pending:
		default:
			return // the flush asked for before is still running
		}
	}
	for i := range h.counts {
		h.counts[i].Store(0)
	}
	ch, err := db.AsyncFlush()
	if err != nil {
		log.Warn("flushing the memtable for a hot row failed", "err", err)
		return
	}
	h.pending = ch
	h.flushes.Add(1)
	log.Debug("flushing the memtable: a row gathered many partial writes", "limit", hotRowLimit)
}
