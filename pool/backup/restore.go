package backup

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// RestoreOptions tune Restore.
type RestoreOptions struct {
	// RateLimit bounds the download in bytes per second; 0: none.
	RateLimit int64
	// Progress, if set, is called after each chunk, one call at a time.
	Progress func(Progress)
	// Workers is how many chunks are fetched and written at once; 0: 4.
	Workers int
}

// Restore writes backup m from t to dst, which must read as zeros (a new
// volume): chunks of zeros are not written. Every chunk is checked
// against its checksum and address before it is written; a corrupt or
// missing one stops the restore with an error that names it.
func Restore(ctx context.Context, t Target, m *Manifest, dst io.WriterAt, opt RestoreOptions) error {
	if err := m.check(); err != nil {
		return fmt.Errorf("restore backup %s: %w: %w", m.ID, ErrInvalid, err)
	}
	var todo []int
	var total int64
	for i, a := range m.Chunks {
		if a != "" {
			todo = append(todo, i)
		}
		total += m.chunkLen(i)
	}
	limit := newLimiter(opt.RateLimit)
	var done atomic.Int64
	done.Store(total - int64(len(todo))*m.ChunkSize)
	var progMu sync.Mutex
	err := forEach(ctx, todo, cmp.Or(opt.Workers, 4), func(ctx context.Context, i int) error {
		addr := m.Chunks[i]
		stored, err := t.Get(ctx, chunkKey(addr))
		if err != nil {
			return fmt.Errorf("chunk %d: %w", i, err)
		}
		if err := wait(ctx, limit, len(stored)); err != nil {
			return err
		}
		data, err := decodeChunk(stored, addr)
		if err != nil {
			return fmt.Errorf("chunk %d (offset %d): %w", i, int64(i)*m.ChunkSize, err)
		}
		if int64(len(data)) != m.chunkLen(i) {
			return fmt.Errorf("chunk %d: %w: %d bytes, want %d", i, ErrCorrupt, len(data), m.chunkLen(i))
		}
		if _, err := dst.WriteAt(data, int64(i)*m.ChunkSize); err != nil {
			return fmt.Errorf("write chunk %d: %w", i, err)
		}
		d := done.Add(int64(len(data)))
		if opt.Progress != nil {
			progMu.Lock()
			opt.Progress(Progress{Done: d, Total: total})
			progMu.Unlock()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("restore backup %s from %s: %w", m.ID, t, err)
	}
	return nil
}

// Delete deletes backup id from t, then every chunk that no remaining
// backup names. It answers how many chunks went. The manifest goes
// first: a crash after it leaves unreferenced chunks, which the next
// Delete collects, never a backup with missing chunks. The caller keeps
// Create from running on t meanwhile: a chunk Create found in t and
// counts on must not be collected under it.
func Delete(ctx context.Context, t Target, id string) (int, error) {
	if _, err := Get(ctx, t, id); err != nil {
		return 0, err
	}
	if err := t.Delete(ctx, manifestKey(id)); err != nil {
		return 0, fmt.Errorf("delete backup %s: %w", id, err)
	}
	n, err := Collect(ctx, t)
	if err != nil {
		return n, fmt.Errorf("delete backup %s: %w", id, err)
	}
	return n, nil
}

// Collect deletes the chunks of t that no backup names, and answers how
// many went.
func Collect(ctx context.Context, t Target) (int, error) {
	ms, err := List(ctx, t)
	if err != nil {
		return 0, err
	}
	used := map[string]bool{}
	for _, m := range ms {
		for _, a := range m.Chunks {
			used[a] = true
		}
	}
	have, err := storedChunks(ctx, t)
	if err != nil {
		return 0, err
	}
	n := 0
	for a := range have {
		if used[a] {
			continue
		}
		if err := t.Delete(ctx, chunkKey(a)); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
