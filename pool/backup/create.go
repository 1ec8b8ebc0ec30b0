package backup

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/ballast-io/ballast/pool/block"
)

// Progress is how far an operation is, in bytes of the volume.
type Progress struct {
	Done  int64 `json:"done"`  // bytes read (backup) or restored
	Total int64 `json:"total"` // bytes to read or restore
	// Uploaded is what went to the target so far, compressed; chunks it
	// already held are not sent again.
	Uploaded int64 `json:"uploaded"`
}

// Options tune Create.
type Options struct {
	ID       string
	Volume   string
	Snapshot string
	Created  time.Time
	// Parent is the volume's previous backup in the same target, if any,
	// and Changed says which of its chunks may differ now (from the
	// snapshot layers). Chunks Changed answers false for are not read:
	// their address is the parent's.
	Parent  *Manifest
	Changed func(chunk int) bool
	// VolumeSpec is kept in the manifest for the restore.
	VolumeSpec json.RawMessage
	// RateLimit bounds the upload in bytes per second; 0: none.
	RateLimit int64
	// Progress, if set, is called after each chunk, one call at a time.
	Progress func(Progress)
	// Workers is how many chunks are read, compressed and uploaded at
	// once; 0: 4.
	Workers int
}

// Create backs up the size bytes of src (a snapshot) to t: each chunk
// the parent does not cover is read, and, unless all zeros or already in
// t (an earlier backup, or an interrupted run of this one), compressed
// and uploaded. The manifest is written last: a backup interrupted before
// it does not exist, and its run again uploads only what is missing.
func Create(ctx context.Context, t Target, src io.ReaderAt, size int64, opt Options) (*Manifest, error) {
	if !ValidID(opt.ID) {
		return nil, fmt.Errorf("backup %q: %w: not a backup ID", opt.ID, ErrInvalid)
	}
	if size <= 0 || size%4096 != 0 {
		return nil, fmt.Errorf("backup %s: %w: size %d", opt.ID, ErrInvalid, size)
	}
	m := &Manifest{Format: manifestFormat, ID: opt.ID, Volume: opt.Volume, Snapshot: opt.Snapshot, Created: opt.Created,
		Size: size, ChunkSize: ChunkSize, VolumeSpec: opt.VolumeSpec}
	if m.Created.IsZero() {
		m.Created = time.Now().UTC()
	}
	m.Chunks = make([]string, (size+ChunkSize-1)/ChunkSize)
	var todo []int
	var total int64
	for i := range m.Chunks {
		if p := opt.Parent; p != nil && p.ChunkSize == m.ChunkSize && i < len(p.Chunks) && p.chunkLen(i) == m.chunkLen(i) && opt.Changed != nil && !opt.Changed(i) {
			m.Chunks[i] = p.Chunks[i]
			continue
		}
		todo = append(todo, i)
		total += m.chunkLen(i)
	}
	if opt.Parent != nil {
		m.Parent = opt.Parent.ID
	}
	have, err := storedChunks(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", opt.ID, err)
	}
	up := &uploader{t: t, have: have, limit: newLimiter(opt.RateLimit)}
	var done atomic.Int64
	var progMu sync.Mutex
	err = forEach(ctx, todo, cmp.Or(opt.Workers, 4), func(ctx context.Context, i int) error {
		buf := make([]byte, m.chunkLen(i))
		if _, err := src.ReadAt(buf, int64(i)*m.ChunkSize); err != nil {
			return fmt.Errorf("read chunk %d: %w", i, err)
		}
		if !block.AllZero(buf) {
			addr, err := up.put(ctx, buf)
			if err != nil {
				return fmt.Errorf("chunk %d: %w", i, err)
			}
			m.Chunks[i] = addr
		}
		d := done.Add(int64(len(buf)))
		if opt.Progress != nil {
			progMu.Lock()
			opt.Progress(Progress{Done: d, Total: total, Uploaded: up.sent.Load()})
			progMu.Unlock()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("backup %s of %s to %s: %w", opt.ID, opt.Volume, t, err)
	}
	// Every chunk the manifest names must be there as it is written: a
	// collection that ran meanwhile (which callers keep from running)
	// must not leave a backup that cannot be restored.
	if have, err = storedChunks(ctx, t); err != nil {
		return nil, fmt.Errorf("backup %s: %w", opt.ID, err)
	}
	for i, a := range m.Chunks {
		if a != "" && !have[a] {
			return nil, fmt.Errorf("backup %s: chunk %d (%s) left the target during the backup; take it again: %w", opt.ID, i, a, ErrNotExist)
		}
	}
	m.Uploaded = up.sent.Load()
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if err := t.Put(ctx, manifestKey(m.ID), b); err != nil {
		return nil, fmt.Errorf("backup %s: write manifest: %w", m.ID, err)
	}
	return m, nil
}

// storedChunks lists the addresses of the chunks t holds.
func storedChunks(ctx context.Context, t Target) (map[string]bool, error) {
	keys, err := t.List(ctx, "chunks/")
	if err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(keys))
	for _, k := range keys {
		if a := addrOfKey(k); a != "" {
			have[a] = true
		}
	}
	return have, nil
}

// uploader puts chunks that the target does not hold yet, once each.
type uploader struct {
	t     Target
	limit *rate.Limiter
	sent  atomic.Int64

	mu      sync.Mutex
	have    map[string]bool
	pending map[string]chan struct{} // chunks being uploaded, closed when done
}

func (u *uploader) put(ctx context.Context, data []byte) (string, error) {
	addr := Address(data)
	u.mu.Lock()
	if u.have[addr] {
		u.mu.Unlock()
		return addr, nil
	}
	if ch, ok := u.pending[addr]; ok {
		// The same content in another chunk, being uploaded: wait for it.
		u.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return u.put(ctx, data)
	}
	if u.pending == nil {
		u.pending = map[string]chan struct{}{}
	}
	ch := make(chan struct{})
	u.pending[addr] = ch
	u.mu.Unlock()

	stored := encodeChunk(data)
	err := wait(ctx, u.limit, len(stored))
	if err == nil {
		err = u.t.Put(ctx, chunkKey(addr), stored)
	}
	u.mu.Lock()
	delete(u.pending, addr)
	if err == nil {
		u.have[addr] = true
		u.sent.Add(int64(len(stored)))
	}
	close(ch)
	u.mu.Unlock()
	return addr, err
}

// newLimiter makes a limiter of bps bytes per second, nil for no limit.
func newLimiter(bps int64) *rate.Limiter {
	if bps <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(bps), int(max(bps, ChunkSize)))
}

// wait takes n bytes from l, in pieces no larger than its burst.
func wait(ctx context.Context, l *rate.Limiter, n int) error {
	if l == nil {
		return nil
	}
	for n > 0 {
		k := min(n, l.Burst())
		if err := l.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// forEach runs fn on each item with up to workers at once; the first
// error cancels the rest and is returned.
func forEach(parent context.Context, items []int, workers int, fn func(context.Context, int) error) error {
	g, ctx := errgroup.WithContext(parent)
	g.SetLimit(workers)
	for _, i := range items {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error { return fn(ctx, i) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return parent.Err() // Wait cancels ctx, whatever happened
}
