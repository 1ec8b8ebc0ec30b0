package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/ballast-io/ballast/pool/block"
)

// rebuildChunk is how much the copier moves per step. Foreground writes
// to a chunk wait only while that chunk is copied.
const rebuildChunk = 1 << 20

// rebuildWorkers is how many chunks are copied at once, so that reading
// the source, the network and writing the target overlap.
const rebuildWorkers = 4

// Rebuild is a replica being filled from an in-sync one while the volume
// stays in use.
type Rebuild struct {
	target Member
	kind   string // "rebuild", "locality" (the target joins as the first member: reads go to it) or "catch-up"
	total  int64
	done   atomic.Int64
	failed atomic.Pointer[error] // set when the target fails a foreground write
	locks  *chunkLocks
	start  time.Time
	took   time.Duration
	err    error
	over   chan struct{}
}

// Progress is how far a rebuild is.
type Progress struct {
	Replica string
	Kind    string // "rebuild" or "locality": a full copy; "catch-up": only what it missed
	Over    bool   // the rebuild ended, with Err
	Err     error
	Done    int64 // bytes copied or skipped
	Total   int64
	Elapsed time.Duration
}

// Progress says how far the rebuild is.
func (r *Rebuild) Progress() Progress {
	p := Progress{Replica: r.target.ID, Kind: r.kind, Done: r.done.Load(), Total: r.total, Elapsed: time.Since(r.start)}
	select {
	case <-r.over:
		p.Over, p.Err, p.Elapsed = true, r.err, r.took
	default:
	}
	return p
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
	return e.rebuildAs(ctx, "rebuild", target, bps, promote)
}

// Relocate is Rebuild of a replica on this node that will take the place
// of a remote one (data locality): once in sync it becomes the first
// member, which serves reads, and its progress says "locality".
func (e *Engine) Relocate(ctx context.Context, target Member, bps int64, promote func() error) (*Rebuild, error) {
	return e.rebuildAs(ctx, "locality", target, bps, promote)
}

func (e *Engine) rebuildAs(ctx context.Context, kind string, target Member, bps int64, promote func() error) (*Rebuild, error) {
	if target.Dev.Size() != e.size.Load() {
		return nil, fmt.Errorf("%s %s: replica %s has size %d, the volume %d", kind, e.name, target.ID, target.Dev.Size(), e.size.Load())
	}
	rb := &Rebuild{target: target, kind: kind, total: e.size.Load(), start: time.Now(), over: make(chan struct{}), locks: newChunkLocks()}
	// Set with no I/O in flight: every write from now on sees the target
	// (and takes its chunk locks), from start to end.
	e.gate.Lock()
	ok := e.rebuild.CompareAndSwap(nil, rb)
	e.gate.Unlock()
	if !ok {
		return nil, fmt.Errorf("rebuild %s: replica %s is being rebuilt already", e.name, e.rebuild.Load().target.ID)
	}
	all := func(yield func(int64) bool) {
		for off := int64(0); off < e.size.Load(); off += rebuildChunk {
			if !yield(off) {
				return
			}
		}
	}
	go e.run(ctx, rb, all, true, bps, promote)
	return rb, nil
}

// ErrNoDelta is the error of CatchUp for a replica whose missed writes the
// engine does not know (it was not in sync when the volume was attached):
// it needs a full rebuild.
var ErrNoDelta = errors.New("what the replica missed is not known")

// CatchUp brings target, a replica that left the in-sync set while this
// engine ran (Missed), back in sync by copying only the chunks it missed,
// like Rebuild otherwise: writes go to it from now on, promote is called
// when the copy is complete, and it becomes a member.
func (e *Engine) CatchUp(ctx context.Context, target Member, bps int64, promote func() error) (*Rebuild, error) {
	if target.Dev.Size() != e.size.Load() {
		return nil, fmt.Errorf("catch up %s: replica %s has size %d, the volume %d", e.name, target.ID, target.Dev.Size(), e.size.Load())
	}
	rb := &Rebuild{target: target, kind: "catch-up", start: time.Now(), over: make(chan struct{}), locks: newChunkLocks()}
	// With no I/O in flight, the chunks missed so far are taken and the
	// target starts receiving writes: each write is in one or the other.
	e.gate.Lock()
	e.mu.Lock()
	missed, ok := e.missed[target.ID]
	if ok {
		missed = missed.Clone()
	}
	e.mu.Unlock()
	if !ok {
		e.gate.Unlock()
		return nil, fmt.Errorf("catch up %s onto %s: %w", e.name, target.ID, ErrNoDelta)
	}
	if !e.rebuild.CompareAndSwap(nil, rb) {
		e.gate.Unlock()
		return nil, fmt.Errorf("catch up %s: replica %s is being rebuilt already", e.name, e.rebuild.Load().target.ID)
	}
	e.gate.Unlock()
	rb.total = min(missed.Count()*rebuildChunk, e.size.Load())
	chunks := func(yield func(int64) bool) {
		for c := int64(0); c*rebuildChunk < e.size.Load(); c++ {
			if missed.Has(c) && !yield(c*rebuildChunk) {
				return
			}
		}
	}
	go e.run(ctx, rb, chunks, false, bps, promote)
	return rb, nil
}

// run copies the chunks at offsets onto rb's target (fresh: it is new and
// empty) and ends rb.
func (e *Engine) run(ctx context.Context, rb *Rebuild, offsets iter.Seq[int64], fresh bool, bps int64, promote func() error) {
	rb.err = e.copyAll(ctx, rb, offsets, fresh, bps, promote)
	if rb.err != nil {
		e.rebuild.Store(nil) // the target is abandoned
	}
	rb.took = time.Since(rb.start)
	close(rb.over)
}

// Rebuilding returns the rebuild under way, or nil.
func (e *Engine) Rebuilding() *Rebuild { return e.rebuild.Load() }

func (e *Engine) copyAll(ctx context.Context, rb *Rebuild, offsets iter.Seq[int64], fresh bool, bps int64, promote func() error) error {
	var lim *rate.Limiter
	if bps > 0 {
		lim = rate.NewLimiter(rate.Limit(bps), rebuildChunk)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	todo := make(chan int64)
	errs := make(chan error, rebuildWorkers)
	var wg sync.WaitGroup
	for range rebuildWorkers {
		wg.Go(func() {
			buf, zero := make([]byte, rebuildChunk), make([]byte, rebuildChunk)
			for off := range todo {
				n := min(int64(rebuildChunk), e.size.Load()-off)
				wrote, err := e.copyChunk(rb, buf[:n], zero[:n], off, fresh)
				if err == nil && wrote && lim != nil {
					// Only what is written counts against the limit:
					// skipping empty chunks costs the disk nothing.
					err = lim.WaitN(ctx, int(n))
				}
				if err != nil {
					errs <- fmt.Errorf("%s %s onto %s at %d: %w", rb.kind, e.name, rb.target.ID, off, err)
					cancel()
					return
				}
				rb.done.Add(n)
			}
		})
	}
	var err error
	for off := range offsets {
		if f := rb.failed.Load(); f != nil {
			err = *f
			break
		}
		select {
		case todo <- off:
			continue
		case <-ctx.Done():
			err = ctx.Err()
		}
		break
	}
	close(todo)
	wg.Wait()
	select {
	case werr := <-errs:
		return werr
	default:
	}
	if err != nil {
		return fmt.Errorf("%s %s onto %s: %w", rb.kind, e.name, rb.target.ID, err)
	}
	e.gate.Lock() // nothing in flight while the target joins
	defer e.gate.Unlock()
	if f := rb.failed.Load(); f != nil {
		return fmt.Errorf("%s %s onto %s: %w", rb.kind, e.name, rb.target.ID, *f)
	}
	if err := rb.target.Dev.Flush(); err != nil {
		return fmt.Errorf("%s %s: flush %s: %w", rb.kind, e.name, rb.target.ID, err)
	}
	if err := promote(); err != nil {
		return fmt.Errorf("%s %s: promote %s: %w", rb.kind, e.name, rb.target.ID, err)
	}
	// The target turns from rebuild target into member while no I/O is in
	// flight: a write sees it as one or the other, never neither.
	e.mu.Lock()
	if rb.kind == "locality" {
		e.members = append([]Member{rb.target}, e.members...) // reads go to it
	} else {
		e.members = append(slices.Clone(e.members), rb.target)
	}
	delete(e.missed, rb.target.ID)
	e.mu.Unlock()
	e.rebuild.Store(nil)
	return nil
}

// copyChunk copies one chunk with the writes to it held back, so that no
// write can land between reading the chunk and writing it to the target.
// All-zero chunks are discarded on a target that is not fresh, and skipped
// on a fresh one: it is new and empty, so they read as zeros already. Both
// stay thin.
func (e *Engine) copyChunk(rb *Rebuild, buf, zero []byte, off int64, fresh bool) (wrote bool, err error) {
	rb.locks.lock(chunkOf(off))
	defer rb.locks.unlock(chunkOf(off))
	for _, m := range e.snapshot() {
		if _, err = m.Dev.ReadAt(buf, off); err == nil {
			break
		}
	}
	if err != nil {
		return false, fmt.Errorf("read from every in-sync replica failed: %w", err)
	}
	if bytes.Equal(buf, zero) {
		if fresh {
			return false, nil
		}
		return false, rb.target.Dev.Discard(off, int64(len(buf)))
	}
	_, err = rb.target.Dev.WriteAt(buf, off)
	return true, err
}

// toTarget applies a foreground write or discard to rb's target (rb may be
// nil: no rebuild). Its failure ends the rebuild but not the write.
func (e *Engine) toTarget(rb *Rebuild, op func(block.Device) error) {
	if rb == nil {
		return
	}
	if err := op(rb.target.Dev); err != nil {
		e.log.Error("rebuild target failed a write; the rebuild will stop", "volume", e.name, "replica", rb.target.ID, "err", err)
		err := fmt.Errorf("target failed a foreground write: %w", err)
		rb.failed.Store(&err)
	}
}
