package node

import (
	"fmt"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/meta"
)

// claim is how an attach may take a volume.
type claim int

const (
	claimFree     claim = iota // attached nowhere
	claimOwn                   // already ours (e.g. re-attach after a restart)
	claimDeadNode              // its node's lease expired: fence it and take over
	claimForced                // its node is alive, the user forces a takeover
)

func (c claim) String() string {
	return [...]string{"free", "own", "owner down", "forced"}[c]
}

// decideClaim says whether node self may attach a volume whose current
// attachment is old (nil when none), given whether old's node holds a live
// lease. A live owner is only displaced by force; a dead one is fenced by
// the epoch bump that every claim makes. It only decides.
func decideClaim(vol string, old *meta.Attachment, self string, ownerAlive, force bool) (claim, error) {
	switch {
	case old == nil:
		return claimFree, nil
	case old.Node == self:
		return claimOwn, nil
	case !ownerAlive:
		return claimDeadNode, nil
	case force:
		return claimForced, nil
	}
	return 0, fmt.Errorf("volume %q is attached on node %s since %s (mounted at %s) and that node is up; detach it there first, or attach with --force to take it over: %w",
		vol, old.Node, old.Since.Format(time.RFC3339), old.MountPath, api.ErrInUse)
}
