package api

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/ballast-io/ballast/pool/spec"
)

// MatchSpec answers a request for a volume that already exists: nil when
// req (normalized) asks for the volume have, else an error wrapping
// ErrExists that names every difference. Creates of an existing name
// (ballast volume create, Docker's create) and Docker's look-ups of an
// inline spec (size=1G,name=v) use it, so both say the same.
//
// What req leaves open is have's: a clone's repl and fs (they come from its
// source) and a size req does not give (a clone, or an inline spec that
// names an existing volume without one). A size below have's matches too: a
// volume grown since it was made (volume resize) still answers the spec it
// was created with, the way a Kubernetes claim's size is a minimum.
func MatchSpec(have, req spec.Volume) error {
	var diffs []string
	differ := func(field, has, asked string) {
		diffs = append(diffs, fmt.Sprintf("%s %s (asked for %s)", field, has, asked))
	}
	if req.Size > have.Size {
		differ("size", spec.FormatSize(have.Size), spec.FormatSize(req.Size))
	}
	if req.Repl != 0 && req.Repl != have.Repl {
		differ("repl", fmt.Sprint(have.Repl), fmt.Sprint(req.Repl))
	}
	if req.FS != "" && req.FS != have.FS {
		differ("fs", have.FS, req.FS)
	}
	if req.FromSnapshot != have.FromSnapshot {
		differ("snapshot", cmp.Or(have.FromSnapshot, "none"), cmp.Or(req.FromSnapshot, "none"))
	}
	if req.Pin != have.Pin {
		differ("pin", cmp.Or(have.Pin, "none"), cmp.Or(req.Pin, "none"))
	}
	if req.Avoid != have.Avoid {
		differ("avoid", cmp.Or(have.Avoid, "none"), cmp.Or(req.Avoid, "none"))
	}
	// Records made before min-in-sync existed have 0, which meant 1.
	if hm := cmp.Or(have.MinInSync, 1); req.MinInSync != 0 && req.MinInSync != hm {
		differ("min-in-sync", fmt.Sprint(hm), fmt.Sprint(req.MinInSync))
	}
	// Records made before locality existed have "", which means best-effort.
	if hl := spec.NormalLocality(have.Locality); req.Locality != "" && spec.NormalLocality(req.Locality) != hl {
		differ("locality", hl, req.Locality)
	}
	// A request that does not ask for encryption leaves it open (a clone,
	// or a Docker look-up by name); one that does must find it.
	if req.Encrypted && !have.Encrypted {
		differ("encrypted", "false", "true")
	}
	if req.SecretKey != "" && req.SecretKey != have.SecretKey {
		differ("secret key", cmp.Or(have.SecretKey, "none"), req.SecretKey)
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("volume %q already exists with a different spec: %s; delete it first or use another name: %w",
		have.Name, strings.Join(diffs, ", "), ErrExists)
}
