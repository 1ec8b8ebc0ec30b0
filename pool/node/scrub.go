package node

import (
	"context"
	"time"
)

// scrubLoop scrubs every volume attached here once per ScrubInterval: all
// replicas read back in full, bad blocks repaired from a peer.
func (n *Node) scrubLoop(ctx context.Context) {
	if n.cfg.ScrubInterval <= 0 {
		return
	}
	t := time.NewTicker(n.cfg.ScrubInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, a := range n.attachments() {
			if !a.start() {
				continue
			}
			start := time.Now()
			repaired, err := a.engine.Scrub(a.ctx, n.cfg.ScrubBPS)
			a.bg.Done()
			if a.ctx.Err() != nil {
				continue // released meanwhile
			}
			if err != nil {
				n.log.Error("scrub failed", "volume", a.vol, "err", err)
				continue
			}
			n.log.Info("scrub done", "volume", a.vol, "repaired_blocks", repaired, "took", time.Since(start))
		}
	}
}
