// Package engine is a replicated volume: it fans every write out to each
// in-sync replica and acknowledges it only when all of them have it, returns
// from Flush only after every in-sync replica flushed, reads from the first
// in-sync replica (the node puts a local one first) falling back to the
// others, and repairs a block that fails its checksum from another replica.
// It also fills a new or returning replica while I/O goes on (Rebuild,
// CatchUp), scrubs (Scrub), and grows (Grow). See docs/architecture.md,
// "The block layer".
//
// The engine decides nothing about the cluster itself: when a replica fails,
// it calls Drop, which must remove that replica from the in-sync set in the
// metadata store before returning. Only then is the write acknowledged, so an
// acknowledged write is on every replica that is still in sync.
package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/ballast-io/ballast/pool/bitset"
	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/replica"
)

// ErrFenced is wrapped by the errors of a volume that another node took
// over. The engine learns it when a replica refuses I/O as fenced at a
// newer epoch (an error wrapping replica.ErrFenced, from a local
// replica.Owner or from a replica server), or when the DropFunc returns it
// (it found the attachment gone); from then on every I/O fails at once with
// it, touching no replica.
var ErrFenced = errors.New("fenced: the volume was taken over by another node")

// Member is one replica of the volume.
type Member struct {
	ID  string
	Dev block.Replica
}

// DropFunc removes a failed replica from the in-sync set durably. It returns
// an error when it cannot (the set would fall below its minimum, or the
// metadata store is unreachable); the failed I/O then fails too.
type DropFunc func(id string, cause error) error

// Engine is a volume made of replicas. It implements block.Device.
type Engine struct {
	name string
	size atomic.Int64 // grows by Grow
	drop DropFunc
	log  *slog.Logger

	// gate is held shared by every I/O and exclusively by Quiesce.
	gate sync.RWMutex

	mu      sync.Mutex // guards members
	members []Member   // in-sync replicas; members[0] serves reads
	// rebuild is a replica being filled, or nil. It is set and cleared
	// with gate held exclusively once copying starts, so an I/O (holding
	// gate shared) sees the members and the target of one moment.
	rebuild atomic.Pointer[Rebuild]

	// Delta tracking, guarded by mu, so that a replica that left the
	// in-sync set can catch up by copying only what it missed (CatchUp).
	// unflushed holds the chunks written since the last flush began, and
	// flushes those of each flush under way: a replica that fails may have
	// lost them from its cache. missed holds, per replica out of the
	// in-sync set, every chunk it may lack.
	unflushed chunkSet
	flushes   map[int]chunkSet
	flushSeq  int
	missed    map[string]bitset.Set
	// dropping holds the failed replicas being dropped from the in-sync
	// set (fail), still members until the store has dropped them.
	dropping map[string]*dropping

	repairs atomic.Int64
	fenced  atomic.Bool
}

// New returns an engine over in-sync members, the local replica first.
func New(name string, members []Member, drop DropFunc, log *slog.Logger) (*Engine, error) {
	if len(members) == 0 {
		return nil, fmt.Errorf("volume %s: no in-sync replica", name)
	}
	size := members[0].Dev.Size()
	for _, m := range members[1:] {
		if m.Dev.Size() != size {
			return nil, fmt.Errorf("volume %s: replica %s has size %d, replica %s has %d", name, m.ID, m.Dev.Size(), members[0].ID, size)
		}
	}
	e := &Engine{name: name, drop: drop, log: log, members: members,
		unflushed: chunkSet{}, flushes: map[int]chunkSet{}, missed: map[string]bitset.Set{}, dropping: map[string]*dropping{}}
	e.size.Store(size)
	return e, nil
}

// Size is the volume's size in bytes.
func (e *Engine) Size() int64 { return e.size.Load() }

// Repairs is how many blocks were repaired from another replica.
func (e *Engine) Repairs() int64 { return e.repairs.Load() }

// InSync returns the IDs of the replicas currently in sync.
func (e *Engine) InSync() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	ids := make([]string, len(e.members))
	for i, m := range e.members {
		ids[i] = m.ID
	}
	return ids
}

func (e *Engine) snapshot() []Member {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.members
}

// ReadAt reads from the first in-sync replica that answers. Blocks failing
// their checksum are read from another replica, rewritten and counted.
func (e *Engine) ReadAt(p []byte, off int64) (int, error) {
	if err := e.check("read", off, int64(len(p))); err != nil {
		return 0, err
	}
	e.gate.RLock()
	defer e.gate.RUnlock()
	var lastErr error
	for _, m := range e.snapshot() {
		_, err := m.Dev.ReadAt(p, off)
		var ce *block.ChecksumError
		if errors.As(err, &ce) {
			err = e.repair(m, ce, p, off)
		}
		if err == nil {
			return len(p), nil
		}
		lastErr = err
		if derr := e.fail(m, err); derr != nil {
			return 0, derr
		}
	}
	return 0, fmt.Errorf("read %s at %d: no replica could serve it: %w", e.name, off, lastErr)
}

// repair fills the bad blocks of p (read from bad) from another replica and
// rewrites them on bad.
func (e *Engine) repair(bad Member, ce *block.ChecksumError, p []byte, off int64) error {
	for _, o := range ce.Offsets {
		i := o - off
		buf := p[i : i+block.Size]
		if err := e.readFromPeer(bad.ID, buf, o); err != nil {
			return fmt.Errorf("repair %s block at %d: %w", e.name, o, err)
		}
		if err := bad.Dev.Repair(o, buf); err != nil {
			return fmt.Errorf("repair %s block at %d on replica %s: %w", e.name, o, bad.ID, err)
		}
		e.repairs.Add(1)
		e.log.Warn("repaired block from peer", "volume", e.name, "replica", bad.ID, "offset", o)
	}
	return nil
}

func (e *Engine) readFromPeer(except string, buf []byte, off int64) error {
	var lastErr error = errors.New("no other in-sync replica")
	for _, m := range e.snapshot() {
		if m.ID == except {
			continue
		}
		if _, err := m.Dev.ReadAt(buf, off); err != nil {
			lastErr = err
			continue
		}
		return nil
	}
	return lastErr
}

// fanOut runs op on every in-sync replica in parallel. A replica that fails
// is dropped from the in-sync set before fanOut returns; fanOut fails only
// when dropping is refused.
func (e *Engine) fanOut(what string, op func(block.Device) error) error {
	members := e.snapshot()
	errs := make([]error, len(members))
	if len(members) == 1 {
		errs[0] = op(members[0].Dev)
	} else {
		var wg sync.WaitGroup
		for i := range members[1:] {
			wg.Go(func() { errs[i+1] = op(members[i+1].Dev) })
		}
		errs[0] = op(members[0].Dev)
		wg.Wait()
	}
	// Every member that failed misses what is written from now on, and
	// may have lost what it had not flushed: noted for all of them at
	// once, before any drop lets the lock go and a flush completes.
	if slices.ContainsFunc(errs, func(err error) bool { return err != nil }) { // not on the hot path
		e.mu.Lock()
		for i, err := range errs {
			if err != nil && !errors.Is(err, replica.ErrFenced) {
				e.startMissed(members[i].ID)
			}
		}
		e.mu.Unlock()
	}
	for i, err := range errs {
		if err == nil {
			continue
		}
		if derr := e.fail(members[i], err); derr != nil {
			return fmt.Errorf("%s %s: %w", what, e.name, derr)
		}
	}
	return nil
}

// fail removes m from the in-sync set, durably, because of cause. A
// replica that refused as fenced stays: the volume is fenced instead, even
// when m is its last in-sync replica.
//
// It decides under e.mu and talks to the metadata store outside it, so the
// other I/O's bookkeeping goes on during the drop. m's missed set starts
// before the lock is let go, with what m may have lost from its cache, and
// every write marked from then on is added to it: nothing written during
// the drop can be missing from it, whatever flushes run meanwhile. Callers
// that see m fail while it is being dropped wait for that drop's outcome.
func (e *Engine) fail(m Member, cause error) error {
	if errors.Is(cause, replica.ErrFenced) {
		e.setFenced(cause)
		return fmt.Errorf("replica %s refused (%v): %w", m.ID, cause, ErrFenced)
	}
	var d *dropping
	for {
		e.mu.Lock()
		got, wait, err := e.startDrop(m.ID, cause)
		e.mu.Unlock()
		switch {
		case got == nil:
			return err
		case wait == waitOwn:
			<-got.done
			return got.err
		case wait == waitOther:
			<-got.done // then decide again
			continue
		}
		d = got
		break
	}

	err := e.drop(m.ID, cause)

	e.mu.Lock()
	e.endDrop(m.ID, d, cause, err)
	e.mu.Unlock()
	if err == nil {
		e.log.Error("replica dropped from the in-sync set", "volume", e.name, "replica", m.ID, "cause", cause)
	}
	return d.err
}

// dropping is a drop of a failed replica under way.
type dropping struct {
	done chan struct{} // closed when it is over
	err  error         // its outcome, set before done is closed
}

// What fail waits for before deciding again or returning.
const (
	waitNone  = iota
	waitOwn   // the drop of the same replica, under way: its outcome is fail's
	waitOther // the drop of another replica, which may leave id the last
)

// startDrop decides, under e.mu, what fail does about replica id: nothing
// (it is not in sync any more, or it is the last in-sync replica: err
// says), wait for a drop under way (of id, or of another replica without
// which id would be the last), or drop it (a new dropping, with its missed
// set started).
func (e *Engine) startDrop(id string, cause error) (d *dropping, wait int, err error) {
	if d := e.dropping[id]; d != nil {
		return d, waitOwn, nil
	}
	if !slices.ContainsFunc(e.members, func(x Member) bool { return x.ID == id }) {
		return nil, waitNone, nil // dropped already by a concurrent failure
	}
	others := 0
	for _, x := range e.members {
		if x.ID != id && e.dropping[x.ID] == nil {
			others++
		}
	}
	if others == 0 {
		for _, d := range e.dropping {
			return d, waitOther, nil // if its drop fails, it stays, and id may go
		}
		delete(e.missed, id) // it stays a member
		return nil, waitNone, fmt.Errorf("last in-sync replica %s failed: %w", id, cause)
	}
	e.startMissed(id)
	d = &dropping{done: make(chan struct{})}
	e.dropping[id] = d
	return d, waitNone, nil
}

// startMissed starts, under e.mu, the missed set of member id, which
// failed: from now on it misses every write, and it may have lost what it
// had not flushed yet.
func (e *Engine) startMissed(id string) {
	missed := e.missed[id]
	if missed == nil {
		missed = newMissed(e.size.Load())
		e.missed[id] = missed
	}
	for c := range e.unflushed {
		missed.Add(c)
	}
	for _, set := range e.flushes {
		for c := range set {
			missed.Add(c)
		}
	}
}

// endDrop records, under e.mu, the outcome of d, the drop of replica id:
// out of the members if the store dropped it, else still one, with no
// missed set.
func (e *Engine) endDrop(id string, d *dropping, cause, err error) {
	delete(e.dropping, id)
	if err != nil {
		delete(e.missed, id)
		if errors.Is(err, ErrFenced) {
			e.setFenced(err)
		}
		d.err = fmt.Errorf("replica %s failed (%v) and could not be dropped from the in-sync set: %w", id, cause, err)
	} else {
		e.members = slices.DeleteFunc(slices.Clone(e.members), func(x Member) bool { return x.ID == id })
	}
	close(d.done)
}

// setFenced makes every later I/O fail at once with ErrFenced.
func (e *Engine) setFenced(cause error) {
	if !e.fenced.Swap(true) {
		e.log.Error("volume taken over by another node: all I/O on it fails from now on", "volume", e.name, "err", cause)
	}
}

// enterRebuild returns the rebuild under way, if any, with the write of
// [off, off+length) counted on its chunks (it waits while one of them is
// being copied). The caller holds gate shared, so the rebuild cannot start
// meanwhile.
func (e *Engine) enterRebuild(off, length int64) *Rebuild {
	rb := e.rebuild.Load()
	if rb != nil {
		rb.locks.enter(off, length)
	}
	return rb
}

func (e *Engine) leaveRebuild(rb *Rebuild, off, length int64) {
	if rb != nil {
		rb.locks.leave(off, length)
	}
}

// check refuses I/O out of range, or on a fenced volume.
func (e *Engine) check(op string, off, length int64) error {
	if e.fenced.Load() {
		return fmt.Errorf("%s %s: %w", op, e.name, ErrFenced)
	}
	return block.Check(off, length, e.size.Load())
}

// mark records a write or discard of [off, off+length) as unflushed and as
// missed by every replica out of the in-sync set. It is called after the
// I/O completed, with gate held shared.
func (e *Engine) mark(off, length int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	chunkRange(off, length, func(c int64) {
		e.unflushed[c] = struct{}{}
		for _, b := range e.missed {
			b.Add(c)
		}
	})
}

// flushAll flushes every in-sync replica. What was written before it began
// is durable on each replica that is still in sync when it returns nil.
func (e *Engine) flushAll() error {
	e.mu.Lock()
	e.flushSeq++
	seq := e.flushSeq
	e.flushes[seq] = e.unflushed
	e.unflushed = chunkSet{}
	e.mu.Unlock()
	err := e.fanOut("flush", block.Device.Flush)
	e.mu.Lock()
	if err != nil { // not durable everywhere: still unflushed
		for c := range e.flushes[seq] {
			e.unflushed[c] = struct{}{}
		}
	}
	delete(e.flushes, seq)
	e.mu.Unlock()
	return err
}

// WriteAt writes p to every in-sync replica.
func (e *Engine) WriteAt(p []byte, off int64) (int, error) {
	if err := e.check("write", off, int64(len(p))); err != nil {
		return 0, err
	}
	e.gate.RLock()
	defer e.gate.RUnlock()
	write := func(d block.Device) error {
		_, err := d.WriteAt(p, off)
		return err
	}
	rb := e.enterRebuild(off, int64(len(p)))
	err := e.fanOut("write", write)
	if err == nil {
		e.toTarget(rb, write)
	}
	e.leaveRebuild(rb, off, int64(len(p)))
	e.mark(off, int64(len(p)))
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush flushes every in-sync replica.
func (e *Engine) Flush() error {
	if err := e.check("flush", 0, 0); err != nil {
		return err
	}
	e.gate.RLock()
	defer e.gate.RUnlock()
	return e.flushAll()
}

// Discard discards the range on every in-sync replica.
func (e *Engine) Discard(off, length int64) error {
	if err := e.check("discard", off, length); err != nil {
		return err
	}
	e.gate.RLock()
	defer e.gate.RUnlock()
	discard := func(d block.Device) error { return d.Discard(off, length) }
	rb := e.enterRebuild(off, length)
	err := e.fanOut("discard", discard)
	if err == nil {
		e.toTarget(rb, discard)
	}
	e.leaveRebuild(rb, off, length)
	e.mark(off, length)
	return err
}

// Quiesce waits for in-flight I/O, holds new I/O back, flushes every
// replica and runs fn on the in-sync members: the moment to take a
// snapshot that is the same on all of them.
func (e *Engine) Quiesce(fn func([]Member) error) error {
	e.gate.Lock()
	defer e.gate.Unlock()
	if err := e.flushAll(); err != nil {
		return err
	}
	return fn(e.snapshot())
}

// Grow grows the volume to size bytes: every in-sync replica first (each
// resized), with no I/O in flight. A replica that fails
// to grow leaves the in-sync set, as on a failed write; Grow fails when
// that is refused (it was the last one, say), and the volume keeps its
// size, though replicas grown before stay grown (the caller records the
// new size first, so that they all grow to it when next opened). Not
// while a rebuild runs. Replicas out of the in-sync set are not resized: what
// they missed is forgotten, so they come back by a full rebuild, not a
// catch-up.
func (e *Engine) Grow(size int64) error {
	if err := e.check("grow", 0, 0); err != nil {
		return err
	}
	e.gate.Lock()
	defer e.gate.Unlock()
	switch have := e.size.Load(); {
	case size%block.Size != 0:
		return fmt.Errorf("grow %s to %d bytes: %w", e.name, size, block.ErrUnaligned)
	case size < have:
		return fmt.Errorf("grow %s to %d bytes: it has %d already", e.name, size, have)
	case size == have:
		return nil
	}
	if rb := e.rebuild.Load(); rb != nil {
		return fmt.Errorf("grow %s: replica %s is being rebuilt; try again when it is done", e.name, rb.target.ID)
	}
	for _, m := range e.snapshot() {
		err := m.Dev.Resize(size)
		if err == nil {
			continue
		}
		if derr := e.fail(m, err); derr != nil {
			return fmt.Errorf("grow %s: %w", e.name, derr)
		}
	}
	e.size.Store(size)
	e.mu.Lock()
	clear(e.missed) // what they missed is now everything beyond their size too
	e.mu.Unlock()
	return nil
}

// Missed says whether the engine knows what replica id, out of the in-sync
// set, missed since it left (CatchUp can bring it back), and how many bytes
// that is.
func (e *Engine) Missed(id string) (int64, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	b, ok := e.missed[id]
	if !ok {
		return 0, false
	}
	return min(b.Count()*rebuildChunk, e.size.Load()), true
}

// Forget stops tracking what replica id misses: it is gone for good.
func (e *Engine) Forget(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.missed, id)
}

// Retire takes replica id out of the volume for good while other in-sync
// replicas remain: with no I/O in flight it calls commit (which must remove
// the replica from the in-sync set durably, and may refuse), then stops
// sending I/O to it. Nothing written afterwards reaches it, so the caller
// may delete it once Retire returns. Not while a rebuild runs.
func (e *Engine) Retire(id string, commit func() error) error {
	if err := e.check("retire", 0, 0); err != nil {
		return err
	}
	e.gate.Lock()
	defer e.gate.Unlock()
	if rb := e.rebuild.Load(); rb != nil {
		return fmt.Errorf("retire %s from %s: replica %s is being rebuilt", id, e.name, rb.target.ID)
	}
	members := e.snapshot()
	idx := slices.IndexFunc(members, func(m Member) bool { return m.ID == id })
	switch {
	case idx < 0:
		return fmt.Errorf("retire %s from %s: it is not an in-sync replica", id, e.name)
	case len(members) < 2:
		return fmt.Errorf("retire %s from %s: it is the last in-sync replica", id, e.name)
	}
	if err := commit(); err != nil {
		return fmt.Errorf("retire %s from %s: %w", id, e.name, err)
	}
	e.mu.Lock()
	e.members = slices.DeleteFunc(slices.Clone(e.members), func(m Member) bool { return m.ID == id })
	delete(e.missed, id)
	e.mu.Unlock()
	return nil
}

// Drop removes replica id from the in-sync set because of cause (its node
// is down, say), durably, as a failed write would.
func (e *Engine) Drop(id string, cause error) error {
	for _, m := range e.snapshot() {
		if m.ID == id {
			return e.fail(m, cause)
		}
	}
	return nil
}

// Fenced reports whether a replica refused the engine's I/O as fenced at
// a newer epoch: another node took the volume over.
func (e *Engine) Fenced() bool { return e.fenced.Load() }
