package engine

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/time/rate"

	"github.com/ballast-io/ballast/pool/block"
)

// Scrub reads every block of every in-sync replica, at most bps bytes per
// second (0: no limit), so that bit rot is found before a read needs the
// block: a block failing its checksum is repaired from another replica and
// counted, like on a read. Other errors drop the replica as a failed write
// would. It returns the number of blocks repaired.
func (e *Engine) Scrub(ctx context.Context, bps int64) (int64, error) {
	var lim *rate.Limiter
	if bps > 0 {
		lim = rate.NewLimiter(rate.Limit(bps), rebuildChunk)
	}
	before := e.repairs.Load()
	buf := make([]byte, rebuildChunk)
	for off := int64(0); off < e.size.Load(); off += rebuildChunk {
		n := min(int64(rebuildChunk), e.size.Load()-off)
		for _, m := range e.snapshot() {
			if err := ctx.Err(); err != nil {
				return e.repairs.Load() - before, fmt.Errorf("scrub %s: %w", e.name, err)
			}
			if lim != nil {
				if err := lim.WaitN(ctx, int(n)); err != nil {
					return e.repairs.Load() - before, fmt.Errorf("scrub %s: %w", e.name, err)
				}
			}
			if err := e.scrubChunk(m, buf[:n], off); err != nil {
				return e.repairs.Load() - before, err
			}
		}
	}
	return e.repairs.Load() - before, nil
}

func (e *Engine) scrubChunk(m Member, buf []byte, off int64) error {
	e.gate.RLock()
	defer e.gate.RUnlock()
	_, err := m.Dev.ReadAt(buf, off)
	var ce *block.ChecksumError
	if errors.As(err, &ce) {
		err = e.repair(m, ce, buf, off)
	}
	if err == nil {
		return nil
	}
	if derr := e.fail(m, err); derr != nil {
		return fmt.Errorf("scrub %s at %d: %w", e.name, off, derr)
	}
	return nil
}
