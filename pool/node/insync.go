package node

import (
	"fmt"
	"slices"

	"github.com/ballast-io/ballast/pool/meta"
)

// dropFromInSync is the in-sync set of v once the failed replica id leaves
// it, or an error when that would leave fewer in-sync replicas than the
// volume's minimum: then the write that failed on id fails too, rather than
// be acknowledged by too few copies. It only decides.
func dropFromInSync(v meta.Volume, id string) ([]string, error) {
	keep := slices.DeleteFunc(slices.Clone(v.InSync), func(s string) bool { return s == id })
	if len(keep) < max(v.MinInSync, 1) {
		return nil, fmt.Errorf("volume %s would have %d in-sync replicas, below its minimum of %d", v.Name, len(keep), max(v.MinInSync, 1))
	}
	return keep, nil
}
