package engine

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/ballast-io/ballast/pool/block"
)

// rebuildChunk is how much the copier moves per step. Foreground I/O is
// held back only for the copy of one chunk.
const rebuildChunk = 1 << 20

// Rebuild is a replica being filled from an in-sync one while the volume
// stays in use.
type Rebuild struct {
	target Member
	total  int64
	done   atomic.Int64
	failed atomic.Pointer[error] // set when the target fails a foreground write
	start  time.Time
	err    error
	over   chan struct{}
}

// Progress is how far a rebuild is.
type Progress struct {
	Replica string
	Done    int64 // bytes copied or skipped
	Total   int64
	Elapsed time.Duration
}

// Progress says how far the rebuild is.
func (r *Rebuild) Progress() Progress {
	return Progress{Replica: r.target.ID, Done: r.done.Load(), Total: r.total, Elapsed: time.Since(r.start)}
}

// Wait returns when the rebuild ended, with its error.
func (r *Rebuild) Wait() error {
	<-r.over
	return r.err
}

// Rebuild starts filling target, a new empty replica of the same size,
// from an in-sync replica, copying at most bps bytes per second (0: no
// limit). From now on every write and discard also goes to target, so that
// nothing written during the copy is missed; a failure of target ends the
// rebuild, never a foreground write. When the copy is complete, promote is
// called (it must add target to the in-sync set durably); on success target
// becomes an in-sync member. One rebuild at a time.
func (e *Engine) Rebuild(ctx context.Context, target Member, bps int64, promote func() error) (*Rebuild, error) {
	if target.Dev.Size() != e.size {
		return nil, fmt.Errorf("rebuild %s: replica %s has size %d, the volume %d", e.name, target.ID, target.Dev.Size(), e.size)
	}
	rb := &Rebuild{target: target, total: e.size, start: time.Now(), over: make(chan struct{})}
	if !e.rebuild.CompareAndSwap(nil, rb) {
		return nil, fmt.Errorf("rebuild %s: replica %s is being rebuilt already", e.name, e.rebuild.Load().target.ID)
	}
	go func() {
		rb.err = e.copyAll(ctx, rb, bps, promote)
		if rb.err != nil {
			e.rebuild.Store(nil) // the target is abandoned
		}
		close(rb.over)
	}()
	return rb, nil
}

// Rebuilding returns the rebuild under way, or nil.
func (e *Engine) Rebuilding() *Rebuild { return e.rebuild.Load() }

func (e *Engine) copyAll(ctx context.Context, rb *Rebuild, bps int64, promote func() error) error {
	var lim *rate.Limiter
	if bps > 0 {
		lim = rate.NewLimiter(rate.Limit(bps), rebuildChunk)
	}
	buf := make([]byte, rebuildChunk)
	zero := make([]byte, rebuildChunk)
	for off := int64(0); off < e.size; off += rebuildChunk {
		n := min(int64(rebuildChunk), e.size-off)
		if lim != nil {
			if err := lim.WaitN(ctx, int(n)); err != nil {
				return fmt.Errorf("rebuild %s: %w", e.name, err)
			}
		}
		if f := rb.failed.Load(); f != nil {
			return fmt.Errorf("rebuild %s onto %s: %w", e.name, rb.target.ID, *f)
		}
		if err := e.copyChunk(rb, buf[:n], zero[:n], off); err != nil {
			return fmt.Errorf("rebuild %s onto %s at %d: %w", e.name, rb.target.ID, off, err)
		}
		rb.done.Add(n)
	}
	e.gate.Lock() // nothing in flight while the target joins
	defer e.gate.Unlock()
	if f := rb.failed.Load(); f != nil {
		return fmt.Errorf("rebuild %s onto %s: %w", e.name, rb.target.ID, *f)
	}
	if err := rb.target.Dev.Flush(); err != nil {
		return fmt.Errorf("rebuild %s: flush %s: %w", e.name, rb.target.ID, err)
	}
	if err := promote(); err != nil {
		return fmt.Errorf("rebuild %s: promote %s: %w", e.name, rb.target.ID, err)
	}
	// The target turns from rebuild target into member while no I/O is in
	// flight: a write sees it as one or the other, never neither.
	e.mu.Lock()
	e.members = append(e.members, rb.target)
	e.mu.Unlock()
	e.rebuild.Store(nil)
	return nil
}

// copyChunk copies one chunk with foreground I/O held back, so that no
// write can land between reading the chunk and writing it to the target.
// All-zero chunks are skipped: the target is new and empty, so they read as
// zeros already, and stay thin.
func (e *Engine) copyChunk(rb *Rebuild, buf, zero []byte, off int64) error {
	e.gate.Lock()
	defer e.gate.Unlock()
	var err error
	for _, m := range e.snapshot() {
		if _, err = m.Dev.ReadAt(buf, off); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("read from every in-sync replica failed: %w", err)
	}
	if bytes.Equal(buf, zero) {
		return nil
	}
	_, err = rb.target.Dev.WriteAt(buf, off)
	return err
}

// toTarget applies a foreground write or discard to the replica being
// rebuilt, if any. Its failure ends the rebuild but not the write.
func (e *Engine) toTarget(op func(block.Device) error) {
	rb := e.rebuild.Load()
	if rb == nil {
		return
	}
	if err := op(rb.target.Dev); err != nil {
		e.log.Error("rebuild target failed a write; the rebuild will stop", "volume", e.name, "replica", rb.target.ID, "err", err)
		err := fmt.Errorf("target failed a foreground write: %w", err)
		rb.failed.Store(&err)
	}
}
