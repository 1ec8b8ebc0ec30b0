package csi

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ballast-io/ballast/pool/spec"
)

// defaultSize is the size of a volume whose request has no capacity range.
const defaultSize = 1 << 30

// cloneSnapshotPrefix starts the names of the snapshots CreateVolume takes
// of a source volume to clone it from. They belong to the clone: they are
// not listed as CSI snapshots and are deleted with the clone.
const cloneSnapshotPrefix = "csi-clone-"

// ballastName turns a CSI name (up to 128 characters of anything) into a
// Ballast volume or snapshot name: prefix+name when that is valid, else
// prefix, "csi-" and a hash of name. The same name always gives the same
// result, which makes CreateVolume and CreateSnapshot idempotent by name.
func ballastName(prefix, name string) string {
	if spec.ValidateName("name", prefix+name) == nil {
		return prefix + name
	}
	sum := sha256.Sum256([]byte(name))
	return prefix + "csi-" + hex.EncodeToString(sum[:16])
}

// parameterHelp lists the StorageClass parameters CreateVolume takes.
const parameterHelp = "repl, fs, pin (or labels), avoid, min_in_sync, locality, encrypted, secret_key"

// PassphraseKey is the key of the CSI secrets (the StorageClass's
// csi.storage.k8s.io/provisioner-secret-* for CreateVolume,
// node-stage-secret-* for NodeStageVolume) that holds the passphrase of an
// encrypted volume given no secret_key: its data key is wrapped by it at
// create, and unwrapped with it at every stage. It is never stored.
const PassphraseKey = "passphrase"

// passphrase is the passphrase in a call's CSI secrets, or nil.
func passphrase(secrets map[string]string) []byte {
	if p, ok := secrets[PassphraseKey]; ok && p != "" {
		return []byte(p)
	}
	return nil
}

// ParseParameters reads a StorageClass's parameters into the fields of a
// volume spec: repl (1-5), fs (ext4 or xfs), pin or labels and avoid
// (label lists such as zone=a,rack=r1), min_in_sync (1-5), locality
// (best-effort or none), encrypted (true or false) and secret_key (the
// cluster secret holding the passphrase: ballast secret set; without one,
// the passphrase comes in the CSI secrets, PassphraseKey). They mean what
// the flags of 'ballast volume create' mean. Keys under
// csi.storage.k8s.io/ (Kubernetes' own) are ignored; any other key is
// refused. Errors wrap spec.ErrInvalid.
func ParseParameters(params map[string]string) (spec.Volume, error) {
	var v spec.Volume
	for _, k := range slices.Sorted(maps.Keys(params)) {
		val := strings.TrimSpace(params[k])
		var err error
		switch k {
		case "repl":
			v.Repl, err = smallCount(k, val)
		case "min_in_sync":
			v.MinInSync, err = smallCount(k, val)
		case "locality":
			v.Locality = strings.ToLower(val)
			if !spec.ValidLocality(v.Locality) {
				err = fmt.Errorf("%w: parameter locality=%q: use %s", spec.ErrInvalid, val, strings.Join(spec.Localities, " or "))
			}
		case "fs":
			v.FS = strings.ToLower(val)
			if !spec.ValidFS(v.FS) {
				err = fmt.Errorf("%w: parameter fs=%q: use %s", spec.ErrInvalid, val, strings.Join(spec.Filesystems, " or "))
			}
		case "pin", "labels":
			if v.Pin != "" {
				return v, fmt.Errorf("%w: parameters pin and labels mean the same; give one", spec.ErrInvalid)
			}
			v.Pin, err = labelList(k, val)
		case "avoid":
			v.Avoid, err = labelList(k, val)
		case "encrypted":
			if v.Encrypted, err = strconv.ParseBool(val); err != nil {
				err = fmt.Errorf("%w: parameter encrypted=%q: use true or false", spec.ErrInvalid, val)
			}
		case "secret_key":
			v.SecretKey = val
			err = spec.ValidateName("parameter secret_key", val)
		default:
			if strings.HasPrefix(k, "csi.storage.k8s.io/") {
				continue
			}
			err = fmt.Errorf("%w: unknown parameter %q; valid parameters are %s", spec.ErrInvalid, k, parameterHelp)
		}
		if err != nil {
			return v, err
		}
	}
	if v.Repl != 0 && v.MinInSync > v.Repl {
		return v, fmt.Errorf("%w: parameter min_in_sync=%d is above repl=%d", spec.ErrInvalid, v.MinInSync, v.Repl)
	}
	return v, nil
}

func smallCount(key, s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > spec.MaxRepl {
		return 0, fmt.Errorf("%w: parameter %s=%q must be a number from 1 to %d", spec.ErrInvalid, key, s, spec.MaxRepl)
	}
	return n, nil
}

func labelList(key, s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("%w: parameter %s is empty", spec.ErrInvalid, key)
	}
	if _, err := spec.ParseLabels(s); err != nil {
		return "", fmt.Errorf("parameter %s: %w", key, err)
	}
	return s, nil
}

// checkCapability refuses what Ballast cannot serve: access modes for
// several nodes at once, and filesystems other than ext4 and xfs. It
// returns the filesystem a mount capability asks for ("" for any, and for
// raw block access, which any volume serves: see isBlock).
func checkCapability(c *csipb.VolumeCapability) (string, error) {
	if c == nil {
		return "", invalid("a volume capability is empty")
	}
	m := c.GetMount()
	switch {
	case c.GetBlock() != nil:
	case m == nil:
		return "", invalid("a volume capability has no access type; use mount or block")
	default:
		if fs := m.GetFsType(); fs != "" && !spec.ValidFS(fs) {
			return "", invalid("filesystem %q is not supported; use %s", fs, strings.Join(spec.Filesystems, " or "))
		}
	}
	switch mode := c.GetAccessMode().GetMode(); mode {
	case csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
		csipb.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
		csipb.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
		csipb.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER:
	case csipb.VolumeCapability_AccessMode_UNKNOWN:
		return "", invalid("a volume capability has no access mode")
	default:
		return "", invalid("access mode %s is not supported: a Ballast volume is attached on one node at a time", mode)
	}
	return m.GetFsType(), nil
}

// isBlock reports whether a capability asks for raw block access: the
// volume is attached as a block device, with no filesystem made or
// mounted.
func isBlock(c *csipb.VolumeCapability) bool { return c.GetBlock() != nil }

// checkCapabilities checks every capability and returns the filesystem
// they ask for, which must be the same in all that name one.
func checkCapabilities(caps []*csipb.VolumeCapability) (string, error) {
	if len(caps) == 0 {
		return "", invalid("volume_capabilities is empty")
	}
	fs := ""
	for _, c := range caps {
		f, err := checkCapability(c)
		if err != nil {
			return "", err
		}
		if f != "" && fs != "" && f != fs {
			return "", invalid("the volume capabilities ask for both %s and %s", fs, f)
		}
		fs = cmp.Or(fs, f)
	}
	return fs, nil
}

// volumeSize picks the size of a new volume from a capacity range: the
// required bytes (or 1 GiB when none are given, or the limit if it is
// smaller), at least the filesystem's minimum, rounded up to 4 KiB. It is
// OUT_OF_RANGE when that exceeds the limit.
func volumeSize(r *csipb.CapacityRange, fs string) (int64, error) {
	req, limit := r.GetRequiredBytes(), r.GetLimitBytes()
	if req < 0 || limit < 0 {
		return 0, invalid("capacity range %d-%d is negative", req, limit)
	}
	if limit > 0 && req > limit {
		return 0, invalid("capacity range: required bytes %d exceed the limit %d", req, limit)
	}
	size := req
	if size == 0 {
		size = defaultSize
		if limit > 0 {
			size = min(size, limit)
		}
	}
	size = max(size, spec.MinSizeFor(fs))
	size = (size + 4095) &^ 4095
	switch {
	case limit > 0 && size > limit:
		return 0, status.Errorf(codes.OutOfRange, "the smallest %s volume Ballast makes within the capacity range is %s, above its limit %s",
			cmp.Or(fs, "ext4"), spec.FormatSize(size), spec.FormatSize(limit))
	case size > spec.MaxSize:
		return 0, status.Errorf(codes.OutOfRange, "size %s is above the 1 PiB limit", spec.FormatSize(size))
	}
	return size, nil
}
