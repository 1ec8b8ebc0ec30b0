// Package frontend turns a block.Device into a kernel block device on this
// node, formatted and mounted (ext4 or xfs) or left raw, grows it, and
// cleans up after a crashed daemon.
//
// An Exporter exposes a Device as a kernel block device; pool/hostfs
// formats and mounts it; an Attacher composes the two. fuseloop (a FUSE file
// attached to a loop device) is the only Exporter: the kernels Ballast runs
// on have no NBD or ublk, and none of those exporters exists. See
// docs/architecture.md, "The data path".
package frontend

import (
	"runtime"

	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/spec"
)

// Exporter exposes a block.Device as a kernel block device.
type Exporter interface {
	// Export returns the path of a kernel block device (e.g. /dev/loop3)
	// whose contents are dev. Idempotent for the same name and device.
	Export(name spec.Name, dev block.Device) (devPath string, err error)
	// Unexport removes the block device of name. Idempotent.
	Unexport(name spec.Name) error
	// Abort removes the block device of name at once, without waiting
	// for its users to let go: their I/O fails from then on. For a volume
	// another node took over, and for a busy one at shutdown.
	Abort(name spec.Name) error
	// Grow makes the kernel see the new size of name's device after the
	// block.Device exported as name grew. Idempotent.
	Grow(name spec.Name) error
	// Recover cleans up after a crash of a previous daemon: detaches block
	// devices and lazily unmounts FUSE mounts it left under its state dir.
	Recover() error
}

// Adopter is an Exporter that can take volumes over from a previous
// daemon whose kernel-side descriptors were kept across its restart
// (fuseloop with a keeper): their block devices, and the filesystems on
// them, never went away.
type Adopter interface {
	// Adoptable returns the block devices of the volumes left to take
	// over, by volume name; Export of one of them takes it over.
	Adoptable() (map[string]string, error)
	// ReleaseUnadopted gives up the volumes no Export took over.
	ReleaseUnadopted() error
}

// ReaderGOMAXPROCS is the GOMAXPROCS the daemon should run with: go-fuse
// keeps up to GOMAXPROCS (capped at 16) idle request readers per mount, so
// 16 lets a queue depth of 16 be picked up without spawning readers on the
// hot path. The frontend and fuseloop tests run with it too.
const ReaderGOMAXPROCS = 16

// TuneGOMAXPROCS raises GOMAXPROCS to at least ReaderGOMAXPROCS. Call it at
// daemon start, before exporting any volume (go-fuse reads GOMAXPROCS when a
// volume is mounted). It returns the previous value.
func TuneGOMAXPROCS() int {
	prev := runtime.GOMAXPROCS(0)
	if prev < ReaderGOMAXPROCS {
		runtime.GOMAXPROCS(ReaderGOMAXPROCS)
	}
	return prev
}
