package spec

import (
	"fmt"
	"slices"
	"strings"
)

// Filesystems a volume can be formatted with.
var Filesystems = []string{"ext4", "xfs"}

// MinSize is the smallest volume: ext4 with a journal is not useful below
// a few MiB. xfs needs more: MinSizeFor.
const MinSize = 16 << 20

// minXFSSize is the smallest filesystem mkfs.xfs makes.
const minXFSSize = 300 << 20

// MaxRepl is the most replicas a volume may have (and so its largest
// minimum in-sync count).
const MaxRepl = 5

// MinSizeFor is the smallest volume formatted with fs ("" for ext4, the
// default, or for a raw volume).
func MinSizeFor(fs string) int64 {
	if fs == "xfs" {
		return minXFSSize
	}
	return MinSize
}

// Volume is what a user asks for when creating a volume. Two requests for the
// same name are the same request when their Volume values are equal.
type Volume struct {
	Name string `json:"name"`
	Size int64  `json:"size"` // bytes, a multiple of 4 KiB
	Repl int    `json:"repl"`
	FS   string `json:"fs"`
	// FromSnapshot is "VOL@SNAP" for a clone, or empty.
	FromSnapshot string `json:"from_snapshot,omitempty"`
	// Pin places replicas only on nodes carrying all these labels, Avoid
	// never on nodes carrying any of them ("zone=a,rack=r1"; normalized).
	Pin   string `json:"pin,omitempty"`
	Avoid string `json:"avoid,omitempty"`
	// MinInSync is the fewest in-sync replicas writes continue with; below
	// it writes fail rather than be acknowledged by too few copies.
	MinInSync int `json:"min_in_sync,omitempty"`
	// Locality says whether the node the volume is attached on gets a
	// replica of its own when it holds none (LocalityBestEffort: one is
	// built in the background and a remote one retired) or not
	// (LocalityNone). Normalized: "" is LocalityBestEffort.
	Locality string `json:"locality,omitempty"`
	// Encrypted volumes are encrypted on the node they are attached on
	// (AES-XTS-256) under a random key of their own, kept wrapped by the
	// passphrase in cluster secret SecretKey (ballast secret set) or, with
	// no SecretKey, by a passphrase given with the create and every attach
	// (api.CreateOptions), never stored. A clone is encrypted as its
	// source is, with the same key.
	Encrypted bool   `json:"encrypted,omitempty"`
	SecretKey string `json:"secret_key,omitempty"`
}

// Locality values.
const (
	LocalityBestEffort = "best-effort"
	LocalityNone       = "none"
)

// Localities are the locality values a volume can state.
var Localities = []string{LocalityBestEffort, LocalityNone}

// ValidLocality reports whether s is one of Localities (case matters:
// callers lower-case what users write).
func ValidLocality(s string) bool {
	for _, l := range Localities {
		if l == s {
			return true
		}
	}
	return false
}

// NormalLocality is the locality a value stands for: "" (records made
// before locality existed, requests that leave it open) is best-effort.
func NormalLocality(s string) string {
	if s == "" {
		return LocalityBestEffort
	}
	return s
}

// Normalize fills defaults (repl 1, ext4; a clone's come from its source
// later), rounds the size up to whole 4 KiB
// blocks and validates everything that can be checked without the cluster.
func (v *Volume) Normalize() error {
	if err := ValidateName("volume name", v.Name); err != nil {
		return err
	}
	if v.Repl == 0 && v.FromSnapshot == "" {
		v.Repl = 1 // a clone's default comes from its source
	}
	if v.Repl < 0 || v.Repl > MaxRepl {
		return invalid("replication factor %d for volume %q is out of range; use 1 to %d", v.Repl, v.Name, MaxRepl)
	}
	if v.MinInSync == 0 {
		v.MinInSync = 1
	}
	if v.MinInSync < 1 || v.Repl > 0 && v.MinInSync > v.Repl {
		return invalid("minimum in-sync count %d for volume %q must be from 1 to its replication factor %d", v.MinInSync, v.Name, v.Repl)
	}
	if v.FS == "" && v.FromSnapshot == "" {
		v.FS = "ext4"
	}
	if v.FS != "" && !ValidFS(v.FS) {
		return invalid("filesystem %q for volume %q is not supported; use %s", v.FS, v.Name, strings.Join(Filesystems, " or "))
	}
	v.Locality = NormalLocality(strings.ToLower(strings.TrimSpace(v.Locality)))
	if !ValidLocality(v.Locality) {
		return invalid("locality %q for volume %q is not valid; use %s", v.Locality, v.Name, strings.Join(Localities, " or "))
	}
	var err error
	if v.SecretKey != "" {
		if err := ValidateName("secret name", v.SecretKey); err != nil {
			return err
		}
	}
	if !v.Encrypted && v.SecretKey != "" && v.FromSnapshot == "" {
		return invalid("volume %q names secret key %q but is not encrypted; add encrypted", v.Name, v.SecretKey)
	}
	if v.Pin, err = normalLabels("pin", v.Pin); err != nil {
		return err
	}
	if v.Avoid, err = normalLabels("avoid", v.Avoid); err != nil {
		return err
	}
	if v.FromSnapshot != "" {
		if _, _, err := ParseSnapshotRef(v.FromSnapshot); err != nil {
			return err
		}
		if v.Size == 0 {
			return nil // takes the source's size
		}
	}
	if v.Size <= 0 {
		return invalid("size of volume %q must be positive", v.Name)
	}
	if v.Size > MaxSize {
		return invalid("size %s of volume %q is larger than the 1 PiB limit", FormatSize(v.Size), v.Name)
	}
	if min := MinSizeFor(v.FS); v.Size < min {
		hint := ""
		if v.Size < 1<<20 {
			// Such sizes come from a number without a unit (DC/OS's
			// external.size, meant as GiB, arrives so).
			hint = fmt.Sprintf("; a size without a unit is in bytes: write %dG for %d GiB", v.Size, v.Size)
		}
		return invalid("size %s of volume %q is below the %s minimum for %s%s", FormatSize(v.Size), v.Name, FormatSize(min), v.FS, hint)
	}
	v.Size = (v.Size + 4095) &^ 4095
	return nil
}

// ValidFS says whether fs is one of Filesystems.
func ValidFS(fs string) bool { return slices.Contains(Filesystems, fs) }

// ParseSnapshotRef splits "VOL@SNAP" and validates both names.
func ParseSnapshotRef(ref string) (vol, snap string, err error) {
	vol, snap, ok := strings.Cut(ref, "@")
	if !ok {
		return "", "", invalid("snapshot reference %q must be VOLUME@SNAPSHOT", ref)
	}
	if err := ValidateName("volume name", vol); err != nil {
		return "", "", fmt.Errorf("snapshot reference %q: %w", ref, err)
	}
	if err := ValidateName("snapshot name", snap); err != nil {
		return "", "", fmt.Errorf("snapshot reference %q: %w", ref, err)
	}
	return vol, snap, nil
}
