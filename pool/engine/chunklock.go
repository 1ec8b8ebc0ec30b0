package engine

import "sync"

// chunkLocks keep a rebuild's copier and the foreground writes apart, one
// chunk at a time: a write waits while a chunk it touches is being copied,
// and a copy waits until the writes in flight on its chunk are done. So no
// write lands between the copier's read of a chunk and its write to the
// target, and the rest of the volume is not held back.
type chunkLocks struct {
	mu      sync.Mutex
	cond    sync.Cond
	writers map[int64]int  // chunk -> writes in flight on it
	copying map[int64]bool // chunks being copied
}

func newChunkLocks() *chunkLocks {
	l := &chunkLocks{writers: map[int64]int{}, copying: map[int64]bool{}}
	l.cond.L = &l.mu
	return l
}

// enter waits until no chunk of [off, off+length) is being copied and
// counts the write on each of them.
func (l *chunkLocks) enter(off, length int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.anyCopying(off, length) {
		l.cond.Wait()
	}
	chunkRange(off, length, func(c int64) { l.writers[c]++ })
}

func (l *chunkLocks) anyCopying(off, length int64) bool {
	busy := false
	chunkRange(off, length, func(c int64) { busy = busy || l.copying[c] })
	return busy
}

// leave ends a write that entered.
func (l *chunkLocks) leave(off, length int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	chunkRange(off, length, func(c int64) {
		if l.writers[c]--; l.writers[c] == 0 {
			delete(l.writers, c)
		}
	})
	l.cond.Broadcast()
}

// lock claims chunk c for the copier: new writes on it wait, and lock
// returns once those in flight are done.
func (l *chunkLocks) lock(c int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.copying[c] {
		l.cond.Wait()
	}
	l.copying[c] = true
	for l.writers[c] > 0 {
		l.cond.Wait()
	}
}

// unlock releases chunk c to the writes waiting on it.
func (l *chunkLocks) unlock(c int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.copying, c)
	l.cond.Broadcast()
}
