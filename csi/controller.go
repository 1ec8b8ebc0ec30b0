package csi

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

// Controller is the CSI Controller service: volumes and snapshots of the
// whole cluster. Any node's daemon can serve it.
type Controller struct {
	csipb.UnimplementedControllerServer
	*Driver
}

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
const parameterHelp = "repl, fs, pin (or labels), avoid, min_in_sync, locality"

// ParseParameters reads a StorageClass's parameters into the fields of a
// volume spec: repl (1-5), fs (ext4 or xfs), pin or labels and avoid
// (label lists such as zone=a,rack=r1), min_in_sync (1-5), locality
// (best-effort or none). They mean what
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

// CreateVolume creates a volume, or returns the one of the same name when
// it has the same spec (ALREADY_EXISTS when it has not). From a snapshot
// it makes a copy-on-write clone; from a volume it snapshots the source
// (csi-clone-NAME) and clones that.
func (s *Controller) CreateVolume(ctx context.Context, req *csipb.CreateVolumeRequest) (*csipb.CreateVolumeResponse, error) {
	if req.GetName() == "" {
		return nil, invalid("CreateVolume needs a name")
	}
	fs, err := checkCapabilities(req.GetVolumeCapabilities())
	if err != nil {
		return nil, err
	}
	v, err := ParseParameters(req.GetParameters())
	if err != nil {
		return nil, toStatus(err)
	}
	if fs != "" {
		if v.FS != "" && v.FS != fs {
			return nil, invalid("parameter fs=%s and the volume capability's fs_type %s disagree", v.FS, fs)
		}
		v.FS = fs
	}
	v.Name = ballastName("", req.GetName())
	release, err := s.busy.try("volume " + v.Name)
	if err != nil {
		return nil, err
	}
	defer release()

	var got *api.Volume
	src := req.GetVolumeContentSource()
	switch {
	case src == nil:
		if v.Size, err = volumeSize(req.GetCapacityRange(), v.FS); err != nil {
			return nil, err
		}
		got, err = s.svc.CreateVolume(ctx, v)
	case src.GetSnapshot() != nil:
		got, err = s.restore(ctx, v, src.GetSnapshot().GetSnapshotId(), req.GetCapacityRange())
	case src.GetVolume() != nil:
		got, err = s.cloneVolume(ctx, v, src.GetVolume().GetVolumeId(), req.GetCapacityRange())
	default:
		return nil, invalid("volume_content_source has neither a snapshot nor a volume")
	}
	if err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("volume created", "volume", got.Name, "csi_name", req.GetName(), "size", got.Size, "repl", got.Repl, "fs", got.FS, "from", got.FromSnapshot)
	return &csipb.CreateVolumeResponse{Volume: toCSIVolume(got)}, nil
}

// restore creates v as a clone of the snapshot snapID (VOLUME@SNAPSHOT).
func (s *Controller) restore(ctx context.Context, v spec.Volume, snapID string, r *csipb.CapacityRange) (*api.Volume, error) {
	srcVol, _, err := spec.ParseSnapshotRef(snapID)
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "snapshot %q does not exist (Ballast snapshot IDs are VOLUME@SNAPSHOT)", snapID)
	}
	v.FromSnapshot = snapID
	return s.createClone(ctx, v, srcVol, r)
}

// cloneVolume creates v as a clone of volume srcID: it snapshots the
// source as csi-clone-NAME (unless that snapshot exists, from an earlier
// try) and clones the snapshot.
func (s *Controller) cloneVolume(ctx context.Context, v spec.Volume, srcID string, r *csipb.CapacityRange) (*api.Volume, error) {
	if spec.ValidateName("volume name", srcID) != nil {
		return nil, status.Errorf(codes.NotFound, "source volume %q does not exist", srcID)
	}
	snap := ballastName(cloneSnapshotPrefix, v.Name)
	v.FromSnapshot = srcID + "@" + snap
	if old, err := s.svc.InspectVolume(ctx, v.Name); err == nil {
		if old.FromSnapshot != v.FromSnapshot {
			return nil, status.Errorf(codes.AlreadyExists, "volume %q exists and is not a clone of volume %s", v.Name, srcID)
		}
		return s.createClone(ctx, v, srcID, r) // the same request again
	} else if !errors.Is(err, api.ErrNotFound) {
		return nil, err
	}
	if _, err := s.svc.InspectVolume(ctx, srcID); errors.Is(err, api.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "source volume %q does not exist", srcID)
	} else if err != nil {
		return nil, err
	}
	if _, err := s.svc.CreateSnapshot(ctx, srcID, snap); err != nil && !errors.Is(err, api.ErrExists) {
		return nil, fmt.Errorf("snapshot source volume %s to clone it: %w", srcID, err)
	}
	got, err := s.createClone(ctx, v, srcID, r)
	if err != nil {
		if derr := s.svc.DeleteSnapshot(ctx, srcID, snap); derr != nil && !errors.Is(derr, api.ErrNotFound) {
			s.log.Warn("remove the snapshot of a failed clone", "volume", srcID, "snapshot", snap, "err", derr)
		}
		return nil, err
	}
	return got, nil
}

// createClone creates v, whose FromSnapshot is set, from a snapshot of
// volume srcVol. A Ballast clone has its source's size; when the request
// wants more, the clone is grown (and removed again if that fails).
func (s *Controller) createClone(ctx context.Context, v spec.Volume, srcVol string, r *csipb.CapacityRange) (*api.Volume, error) {
	src, err := s.svc.InspectVolume(ctx, srcVol)
	if errors.Is(err, api.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "snapshot %q does not exist: its volume is gone", v.FromSnapshot)
	} else if err != nil {
		return nil, err
	}
	want, limit := r.GetRequiredBytes(), r.GetLimitBytes()
	if want < 0 || limit < 0 || limit > 0 && want > limit {
		return nil, invalid("capacity range %d-%d is not valid", want, limit)
	}
	if limit > 0 && src.Size > limit {
		return nil, status.Errorf(codes.OutOfRange, "a clone of %s has its size %s, above the capacity limit %s", v.FromSnapshot, spec.FormatSize(src.Size), spec.FormatSize(limit))
	}
	_, err = s.svc.InspectVolume(ctx, v.Name)
	existed := err == nil
	got, err := s.svc.CreateVolume(ctx, v) // Size 0: the source's
	if err != nil {
		return nil, err
	}
	if want <= got.Size {
		return got, nil
	}
	grown, err := s.svc.ResizeVolume(ctx, v.Name, (want+4095)&^4095)
	if err == nil {
		return grown, nil
	}
	if !existed {
		if derr := s.svc.DeleteVolume(ctx, v.Name); derr != nil {
			s.log.Warn("remove a clone that could not be grown", "volume", v.Name, "err", derr)
		}
	}
	return nil, fmt.Errorf("grow clone %s of %s to %s: %w", v.Name, v.FromSnapshot, spec.FormatSize(want), err)
}

// toCSIVolume describes a volume to the CO. No accessible_topology: a
// Ballast volume is reachable from every node.
func toCSIVolume(v *api.Volume) *csipb.Volume {
	out := &csipb.Volume{VolumeId: v.Name, CapacityBytes: v.Size}
	if src, snap, ok := strings.Cut(v.FromSnapshot, "@"); ok {
		if strings.HasPrefix(snap, cloneSnapshotPrefix) {
			out.ContentSource = &csipb.VolumeContentSource{Type: &csipb.VolumeContentSource_Volume{
				Volume: &csipb.VolumeContentSource_VolumeSource{VolumeId: src}}}
		} else {
			out.ContentSource = &csipb.VolumeContentSource{Type: &csipb.VolumeContentSource_Snapshot{
				Snapshot: &csipb.VolumeContentSource_SnapshotSource{SnapshotId: v.FromSnapshot}}}
		}
	}
	return out
}

// DeleteVolume deletes a volume; one that does not exist is deleted
// already. It refuses (FAILED_PRECONDITION) a volume that is attached,
// that clones depend on, or that has snapshots: Ballast keeps snapshots
// inside their volume, so they would go with it. The snapshot a clone of a
// volume was made from goes with the clone.
func (s *Controller) DeleteVolume(ctx context.Context, req *csipb.DeleteVolumeRequest) (*csipb.DeleteVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, invalid("DeleteVolume needs a volume_id")
	}
	if spec.ValidateName("volume name", id) != nil {
		return &csipb.DeleteVolumeResponse{}, nil // no such volume can exist
	}
	release, err := s.busy.try("volume " + id)
	if err != nil {
		return nil, err
	}
	defer release()
	v, err := s.svc.InspectVolume(ctx, id)
	if errors.Is(err, api.ErrNotFound) {
		return &csipb.DeleteVolumeResponse{}, nil
	} else if err != nil {
		return nil, toStatus(err)
	}
	snaps, err := s.svc.ListSnapshots(ctx, id)
	if err != nil && !errors.Is(err, api.ErrNotFound) {
		return nil, toStatus(err)
	}
	var names []string
	for _, sn := range visible(snaps) {
		names = append(names, sn.Volume+"@"+sn.Name)
	}
	if len(names) > 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %q has snapshots (%s), which would go with it; delete them first", id, strings.Join(names, ", "))
	}
	if err := s.svc.DeleteVolume(ctx, id); err != nil && !errors.Is(err, api.ErrNotFound) {
		return nil, toStatus(err)
	}
	s.log.Info("volume deleted", "volume", id)
	if src, snap, ok := strings.Cut(v.FromSnapshot, "@"); ok && strings.HasPrefix(snap, cloneSnapshotPrefix) {
		if err := s.svc.DeleteSnapshot(ctx, src, snap); err != nil && !errors.Is(err, api.ErrNotFound) {
			// It goes when its volume goes.
			s.log.Warn("remove the snapshot a deleted clone was made from", "volume", src, "snapshot", snap, "err", err)
		}
	}
	return &csipb.DeleteVolumeResponse{}, nil
}

// ControllerPublishVolume makes sure the volume can be attached on the
// node: both exist, and the volume is not attached on another node that is
// up. The attach itself happens in NodeStageVolume, on that node.
func (s *Controller) ControllerPublishVolume(ctx context.Context, req *csipb.ControllerPublishVolumeRequest) (*csipb.ControllerPublishVolumeResponse, error) {
	id, nodeID := req.GetVolumeId(), req.GetNodeId()
	switch {
	case id == "":
		return nil, invalid("ControllerPublishVolume needs a volume_id")
	case nodeID == "":
		return nil, invalid("ControllerPublishVolume needs a node_id")
	case req.GetVolumeCapability() == nil:
		return nil, invalid("ControllerPublishVolume needs a volume_capability")
	}
	if _, err := checkCapability(req.GetVolumeCapability()); err != nil {
		return nil, err
	}
	v, err := s.volume(ctx, id)
	if err != nil {
		return nil, err
	}
	up, err := s.nodesUp(ctx)
	if err != nil {
		return nil, err
	}
	if _, ok := up[nodeID]; !ok {
		return nil, status.Errorf(codes.NotFound, "node %q is not a node of this Ballast cluster", nodeID)
	}
	if a := v.Attachment; a != nil && a.Node != nodeID {
		if up[a.Node] {
			return nil, status.Errorf(codes.FailedPrecondition, "volume %q is attached on node %s, which is up; it can move to node %s once it is unstaged (detached) there", id, a.Node, nodeID)
		}
		s.log.Info("volume held by a node that is down; the node it is published on takes it over when it stages it", "volume", id, "from", a.Node, "to", nodeID)
	}
	return &csipb.ControllerPublishVolumeResponse{PublishContext: map[string]string{"ballast.io/node": nodeID}}, nil
}

// ControllerUnpublishVolume releases the volume from the node: it detaches
// it when it is still attached there and this daemon is that node. Held by
// another node that is down, it needs nothing (the next attach fences that
// node); held by one that is up, it fails naming it.
func (s *Controller) ControllerUnpublishVolume(ctx context.Context, req *csipb.ControllerUnpublishVolumeRequest) (*csipb.ControllerUnpublishVolumeResponse, error) {
	id, nodeID := req.GetVolumeId(), req.GetNodeId()
	if id == "" {
		return nil, invalid("ControllerUnpublishVolume needs a volume_id")
	}
	done := &csipb.ControllerUnpublishVolumeResponse{}
	if spec.ValidateName("volume name", id) != nil {
		return done, nil
	}
	release, err := s.busy.try("volume " + id)
	if err != nil {
		return nil, err
	}
	defer release()
	v, err := s.svc.InspectVolume(ctx, id)
	if errors.Is(err, api.ErrNotFound) {
		return done, nil
	} else if err != nil {
		return nil, toStatus(err)
	}
	a := v.Attachment
	if a == nil || nodeID != "" && a.Node != nodeID {
		return done, nil
	}
	if a.Node == s.nodeID {
		if err := s.detach(ctx, v); err != nil {
			return nil, err
		}
		return done, nil
	}
	up, err := s.nodesUp(ctx)
	if err != nil {
		return nil, err
	}
	if up[a.Node] {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %q is still attached on node %s, which is up; unstage it there (NodeUnstageVolume detaches it)", id, a.Node)
	}
	return done, nil
}

// ValidateVolumeCapabilities confirms the capabilities and parameters a
// volume serves.
func (s *Controller) ValidateVolumeCapabilities(ctx context.Context, req *csipb.ValidateVolumeCapabilitiesRequest) (*csipb.ValidateVolumeCapabilitiesResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, invalid("ValidateVolumeCapabilities needs a volume_id")
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, invalid("ValidateVolumeCapabilities needs volume_capabilities")
	}
	v, err := s.volume(ctx, id)
	if err != nil {
		return nil, err
	}
	fs, err := checkCapabilities(req.GetVolumeCapabilities())
	if err != nil {
		return &csipb.ValidateVolumeCapabilitiesResponse{Message: status.Convert(err).Message()}, nil
	}
	if fs != "" && fs != v.FS {
		return &csipb.ValidateVolumeCapabilitiesResponse{Message: fmt.Sprintf("volume %q holds %s, not %s", id, v.FS, fs)}, nil
	}
	p, err := ParseParameters(req.GetParameters())
	if err != nil {
		return &csipb.ValidateVolumeCapabilitiesResponse{Message: err.Error()}, nil
	}
	if p.Repl != 0 && p.Repl != v.Repl || p.FS != "" && p.FS != v.FS || p.MinInSync != 0 && p.MinInSync != v.MinInSync ||
		p.Pin != "" && !spec.SameLabels(p.Pin, v.Pin) || p.Avoid != "" && !spec.SameLabels(p.Avoid, v.Avoid) || p.Locality != "" && p.Locality != spec.NormalLocality(v.Locality) {
		return &csipb.ValidateVolumeCapabilitiesResponse{Message: fmt.Sprintf("volume %q has other parameters (repl %d, fs %s, min_in_sync %d, pin %q, avoid %q, locality %s)",
			id, v.Repl, v.FS, v.MinInSync, v.Pin, v.Avoid, spec.NormalLocality(v.Locality))}, nil
	}
	return &csipb.ValidateVolumeCapabilitiesResponse{Confirmed: &csipb.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters:         req.GetParameters(),
	}}, nil
}

// ListVolumes lists every volume of the cluster by name, a page at a
// time.
func (s *Controller) ListVolumes(ctx context.Context, req *csipb.ListVolumesRequest) (*csipb.ListVolumesResponse, error) {
	vols, err := s.svc.ListVolumes(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	slices.SortFunc(vols, func(a, b api.Volume) int { return strings.Compare(a.Name, b.Name) })
	vols, next, err := page(vols, func(v api.Volume) string { return v.Name }, req.GetStartingToken(), req.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	out := &csipb.ListVolumesResponse{NextToken: next}
	for i := range vols {
		out.Entries = append(out.Entries, &csipb.ListVolumesResponse_Entry{Volume: toCSIVolume(&vols[i])})
	}
	return out, nil
}

// ControllerGetVolume describes one volume.
func (s *Controller) ControllerGetVolume(ctx context.Context, req *csipb.ControllerGetVolumeRequest) (*csipb.ControllerGetVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, invalid("ControllerGetVolume needs a volume_id")
	}
	v, err := s.volume(ctx, req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	return &csipb.ControllerGetVolumeResponse{Volume: toCSIVolume(v), Status: &csipb.ControllerGetVolumeResponse_VolumeStatus{}}, nil
}

// ControllerGetVolumeHealth reports a volume's replicas: DEGRADED while
// some are out of sync or on a node that is down, INACCESSIBLE below its
// minimum in-sync count (writes fail).
func (s *Controller) ControllerGetVolumeHealth(ctx context.Context, req *csipb.ControllerGetVolumeHealthRequest) (*csipb.ControllerGetVolumeHealthResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, invalid("ControllerGetVolumeHealth needs a volume_id")
	}
	v, err := s.volume(ctx, req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	up, err := s.nodesUp(ctx)
	if err != nil {
		return nil, err
	}
	return &csipb.ControllerGetVolumeHealthResponse{VolumeHealth: volumeHealth(v, up)}, nil
}

// ControllerListVolumeHealth reports the health of every volume, a page at
// a time.
func (s *Controller) ControllerListVolumeHealth(ctx context.Context, req *csipb.ControllerListVolumeHealthRequest) (*csipb.ControllerListVolumeHealthResponse, error) {
	vols, err := s.svc.ListVolumes(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	up, err := s.nodesUp(ctx)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(vols, func(a, b api.Volume) int { return strings.Compare(a.Name, b.Name) })
	vols, next, err := page(vols, func(v api.Volume) string { return v.Name }, req.GetStartingToken(), req.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	out := &csipb.ControllerListVolumeHealthResponse{NextToken: next}
	for i := range vols {
		out.Entries = append(out.Entries, volumeHealth(&vols[i], up))
	}
	return out, nil
}

// volumeHealth judges a volume by its replicas and the nodes that hold
// them (up maps every node to whether it is up).
func volumeHealth(v *api.Volume, up map[string]bool) *csipb.VolumeHealth {
	h := &csipb.VolumeHealth{VolumeId: v.Name}
	add := func(t csipb.VolumeHealthErrorType, reason, format string, args ...any) {
		h.HealthStatuses = append(h.HealthStatuses, &csipb.VolumeHealth_VolumeHealthEntry{Status: t, Reason: reason, Message: fmt.Sprintf(format, args...)})
	}
	inSync := 0
	var stale, down []string
	for _, r := range v.Replicas {
		if !r.InSync {
			stale = append(stale, r.ID+" on node "+r.Node)
			continue
		}
		inSync++
		if !up[r.Node] {
			down = append(down, r.Node)
		}
	}
	switch {
	case inSync == 0:
		add(csipb.VolumeHealthErrorType_INACCESSIBLE, "NoReplicaInSync", "no replica of volume %s is in sync", v.Name)
	case inSync < v.MinInSync:
		add(csipb.VolumeHealthErrorType_INACCESSIBLE, "BelowMinInSync", "%d replica(s) of volume %s in sync, below its minimum of %d: writes fail", inSync, v.Name, v.MinInSync)
	case len(down) == inSync:
		add(csipb.VolumeHealthErrorType_INACCESSIBLE, "ReplicaNodesDown", "every in-sync replica of volume %s is on a node that is down (%s)", v.Name, strings.Join(down, ", "))
	}
	if inSync < v.Repl {
		add(csipb.VolumeHealthErrorType_DEGRADED, "ReplicasOutOfSync", "%d of %d replicas of volume %s in sync; out of sync: %s", inSync, v.Repl, v.Name, strings.Join(stale, ", "))
	}
	if len(down) > 0 && len(down) < inSync {
		add(csipb.VolumeHealthErrorType_DEGRADED, "ReplicaNodeDown", "in-sync replicas of volume %s are on nodes that are down: %s", v.Name, strings.Join(down, ", "))
	}
	return h
}

// GetCapacity sums the free space (capacity less allocated) of the pools
// of the nodes that are up, match the topology segments and the pin/avoid
// parameters, divided by the replication factor.
func (s *Controller) GetCapacity(ctx context.Context, req *csipb.GetCapacityRequest) (*csipb.GetCapacityResponse, error) {
	for _, c := range req.GetVolumeCapabilities() {
		if _, err := checkCapability(c); err != nil {
			return &csipb.GetCapacityResponse{AvailableCapacity: 0}, nil // none for what cannot be served
		}
	}
	p, err := ParseParameters(req.GetParameters())
	if err != nil {
		return nil, toStatus(err)
	}
	placement, _ := spec.ParsePlacement(p.Pin, p.Avoid) // checked by ParseParameters
	nodes, err := s.svc.ClusterStatus(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	pools, err := s.svc.ListPools(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	var free, biggest int64
	for _, n := range nodes {
		if n.State != api.NodeUp || !inTopology(n, req.GetAccessibleTopology()) || !placement.Allows(n.Labels) {
			continue
		}
		for _, pl := range pools {
			if pl.Node == n.ID && pl.Online {
				free += max(pl.Capacity-pl.Allocated, 0)
				biggest = max(biggest, pl.Capacity)
			}
		}
	}
	return &csipb.GetCapacityResponse{
		AvailableCapacity: free / int64(max(p.Repl, 1)),
		MaximumVolumeSize: wrapperspb.Int64(min(biggest, spec.MaxSize)),
		MinimumVolumeSize: wrapperspb.Int64(spec.MinSizeFor(p.FS)),
	}, nil
}

// CreateSnapshot snapshots a volume. Snapshot names are unique across
// the cluster here, as CSI wants: a name taken on another volume is
// ALREADY_EXISTS, the same name on the same volume returns that snapshot.
func (s *Controller) CreateSnapshot(ctx context.Context, req *csipb.CreateSnapshotRequest) (*csipb.CreateSnapshotResponse, error) {
	switch {
	case req.GetName() == "":
		return nil, invalid("CreateSnapshot needs a name")
	case req.GetSourceVolumeId() == "":
		return nil, invalid("CreateSnapshot needs a source_volume_id")
	}
	vol, name := req.GetSourceVolumeId(), ballastName("", req.GetName())
	if strings.HasPrefix(name, cloneSnapshotPrefix) {
		return nil, invalid("snapshot names starting with %q are kept for clones", cloneSnapshotPrefix)
	}
	release, err := s.busy.try("snapshot " + name)
	if err != nil {
		return nil, err
	}
	defer release()
	all, err := s.svc.ListSnapshots(ctx, "")
	if err != nil {
		return nil, toStatus(err)
	}
	for _, sn := range all {
		if sn.Name != name {
			continue
		}
		if sn.Volume != vol {
			return nil, status.Errorf(codes.AlreadyExists, "snapshot name %q is taken by a snapshot of volume %s", req.GetName(), sn.Volume)
		}
		return &csipb.CreateSnapshotResponse{Snapshot: toCSISnapshot(sn)}, nil
	}
	if spec.ValidateName("volume name", vol) != nil {
		return nil, status.Errorf(codes.NotFound, "source volume %q does not exist", vol)
	}
	if _, err := s.volume(ctx, vol); err != nil {
		return nil, err
	}
	sn, err := s.svc.CreateSnapshot(ctx, vol, name)
	if err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("snapshot created", "volume", vol, "snapshot", name, "csi_name", req.GetName())
	return &csipb.CreateSnapshotResponse{Snapshot: toCSISnapshot(*sn)}, nil
}

// toCSISnapshot describes a snapshot.
func toCSISnapshot(sn api.Snapshot) *csipb.Snapshot {
	return &csipb.Snapshot{
		SnapshotId:     sn.Volume + "@" + sn.Name,
		SourceVolumeId: sn.Volume,
		SizeBytes:      sn.Size,
		CreationTime:   timestamppb.New(sn.Created),
		ReadyToUse:     sn.State == "ready",
	}
}

// visible drops the snapshots CreateVolume took to clone volumes.
func visible(snaps []api.Snapshot) []api.Snapshot {
	return slices.DeleteFunc(snaps, func(sn api.Snapshot) bool { return strings.HasPrefix(sn.Name, cloneSnapshotPrefix) })
}

// DeleteSnapshot deletes a snapshot; one that does not exist is deleted
// already. A snapshot clones depend on is FAILED_PRECONDITION.
func (s *Controller) DeleteSnapshot(ctx context.Context, req *csipb.DeleteSnapshotRequest) (*csipb.DeleteSnapshotResponse, error) {
	id := req.GetSnapshotId()
	if id == "" {
		return nil, invalid("DeleteSnapshot needs a snapshot_id")
	}
	vol, name, err := spec.ParseSnapshotRef(id)
	if err != nil {
		return &csipb.DeleteSnapshotResponse{}, nil // no such snapshot can exist
	}
	release, err := s.busy.try("snapshot " + name)
	if err != nil {
		return nil, err
	}
	defer release()
	if err := s.svc.DeleteSnapshot(ctx, vol, name); err != nil && !errors.Is(err, api.ErrNotFound) {
		return nil, toStatus(err)
	}
	s.log.Info("snapshot deleted", "volume", vol, "snapshot", name)
	return &csipb.DeleteSnapshotResponse{}, nil
}

// ListSnapshots lists snapshots, of one volume or one by ID if asked, a
// page at a time. Unknown volumes and IDs give an empty list.
func (s *Controller) ListSnapshots(ctx context.Context, req *csipb.ListSnapshotsRequest) (*csipb.ListSnapshotsResponse, error) {
	vol, name := req.GetSourceVolumeId(), ""
	if id := req.GetSnapshotId(); id != "" {
		v, n, err := spec.ParseSnapshotRef(id)
		if err != nil || vol != "" && vol != v {
			return &csipb.ListSnapshotsResponse{}, nil
		}
		vol, name = v, n
	}
	if vol != "" && spec.ValidateName("volume name", vol) != nil {
		return &csipb.ListSnapshotsResponse{}, nil
	}
	snaps, err := s.svc.ListSnapshots(ctx, vol)
	if errors.Is(err, api.ErrNotFound) {
		return &csipb.ListSnapshotsResponse{}, nil
	} else if err != nil {
		return nil, toStatus(err)
	}
	snaps = visible(snaps)
	if name != "" {
		snaps = slices.DeleteFunc(snaps, func(sn api.Snapshot) bool { return sn.Name != name })
	}
	id := func(sn api.Snapshot) string { return sn.Volume + "@" + sn.Name }
	slices.SortFunc(snaps, func(a, b api.Snapshot) int { return strings.Compare(id(a), id(b)) })
	snaps, next, err := page(snaps, id, req.GetStartingToken(), req.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	out := &csipb.ListSnapshotsResponse{NextToken: next}
	for _, sn := range snaps {
		out.Entries = append(out.Entries, &csipb.ListSnapshotsResponse_Entry{Snapshot: toCSISnapshot(sn)})
	}
	return out, nil
}

// GetSnapshot describes one snapshot.
func (s *Controller) GetSnapshot(ctx context.Context, req *csipb.GetSnapshotRequest) (*csipb.GetSnapshotResponse, error) {
	id := req.GetSnapshotId()
	if id == "" {
		return nil, invalid("GetSnapshot needs a snapshot_id")
	}
	resp, err := s.ListSnapshots(ctx, &csipb.ListSnapshotsRequest{SnapshotId: id})
	if err != nil {
		return nil, err
	}
	if len(resp.Entries) == 0 {
		return nil, status.Errorf(codes.NotFound, "snapshot %q does not exist", id)
	}
	return &csipb.GetSnapshotResponse{Snapshot: resp.Entries[0].Snapshot}, nil
}

// ControllerExpandVolume grows a volume (never shrinks it: one already as
// large succeeds). A volume attached on this node, or on none, grows here,
// with its mounted filesystem (a detached one's grows at its next attach).
// A volume attached on another node grows there: node expansion is
// required, and NodeExpandVolume, which the CO calls on that node, does
// it all. Node expansion is asked for every filesystem volume, so that a
// filesystem the daemon could not grow online is tried again there.
func (s *Controller) ControllerExpandVolume(ctx context.Context, req *csipb.ControllerExpandVolumeRequest) (*csipb.ControllerExpandVolumeResponse, error) {
	id := req.GetVolumeId()
	switch {
	case id == "":
		return nil, invalid("ControllerExpandVolume needs a volume_id")
	case req.GetCapacityRange() == nil:
		return nil, invalid("ControllerExpandVolume needs a capacity_range")
	}
	if c := req.GetVolumeCapability(); c != nil {
		if _, err := checkCapability(c); err != nil {
			return nil, err
		}
	}
	release, err := s.busy.try("volume " + id)
	if err != nil {
		return nil, err
	}
	defer release()
	v, err := s.volume(ctx, id)
	if err != nil {
		return nil, err
	}
	want, err := expandSize(req.GetCapacityRange(), v.Size)
	if err != nil {
		return nil, err
	}
	nodeExpansion := !isBlock(req.GetVolumeCapability())
	if a := v.Attachment; a != nil && a.Node != s.nodeID {
		s.log.Info("volume to grow is attached on another node: it grows there at node expansion", "volume", id, "node", a.Node, "size", want)
		return &csipb.ControllerExpandVolumeResponse{CapacityBytes: want, NodeExpansionRequired: true}, nil
	}
	if want > v.Size {
		grown, err := s.svc.ResizeVolume(ctx, id, want)
		switch {
		case errors.Is(err, api.ErrGrowAtAttach): // node expansion tries again
			s.log.Warn("volume grew; its filesystem did not grow online", "volume", id, "size", want, "err", err)
		case err != nil:
			return nil, toStatus(err)
		default:
			v = grown
		}
		s.log.Info("volume grown", "volume", id, "size", want)
	}
	return &csipb.ControllerExpandVolumeResponse{CapacityBytes: max(want, v.Size), NodeExpansionRequired: nodeExpansion}, nil
}

// expandSize is the size to grow a volume of size bytes to: the required
// bytes rounded up to 4 KiB, or size when that is already enough.
func expandSize(r *csipb.CapacityRange, size int64) (int64, error) {
	req, limit := r.GetRequiredBytes(), r.GetLimitBytes()
	if req < 0 || limit < 0 || limit > 0 && req > limit {
		return 0, invalid("capacity range %d-%d is not valid", req, limit)
	}
	if limit > 0 && size > limit {
		return 0, status.Errorf(codes.OutOfRange, "the volume is %s already, above the limit %s; volumes do not shrink", spec.FormatSize(size), spec.FormatSize(limit))
	}
	want := max((req+4095)&^4095, size)
	if limit > 0 && want > limit {
		want = limit &^ 4095
		if want < req {
			return 0, status.Errorf(codes.OutOfRange, "no multiple of 4 KiB lies between %d and %d bytes", req, limit)
		}
	}
	if want > spec.MaxSize {
		return 0, status.Errorf(codes.OutOfRange, "size %s is above the 1 PiB limit", spec.FormatSize(want))
	}
	return want, nil
}

// ControllerGetCapabilities lists what the controller does. Not offered:
// PUBLISH_READONLY (a Ballast attach has no read-only mode; NodePublish
// honours readonly with a read-only bind mount), LIST_VOLUMES_PUBLISHED_NODES
// (publishing records nothing; the attach happens at NodeStage) and
// MODIFY_VOLUME (a volume's parameters are fixed at creation).
func (s *Controller) ControllerGetCapabilities(context.Context, *csipb.ControllerGetCapabilitiesRequest) (*csipb.ControllerGetCapabilitiesResponse, error) {
	var caps []*csipb.ControllerServiceCapability
	for _, t := range []csipb.ControllerServiceCapability_RPC_Type{
		csipb.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csipb.ControllerServiceCapability_RPC_PUBLISH_UNPUBLISH_VOLUME,
		csipb.ControllerServiceCapability_RPC_LIST_VOLUMES,
		csipb.ControllerServiceCapability_RPC_GET_CAPACITY,
		csipb.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
		csipb.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
		csipb.ControllerServiceCapability_RPC_GET_SNAPSHOT,
		csipb.ControllerServiceCapability_RPC_CLONE_VOLUME,
		csipb.ControllerServiceCapability_RPC_EXPAND_VOLUME,
		csipb.ControllerServiceCapability_RPC_GET_VOLUME,
		csipb.ControllerServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
		csipb.ControllerServiceCapability_RPC_GET_VOLUME_HEALTH,
		csipb.ControllerServiceCapability_RPC_LIST_VOLUME_HEALTH,
	} {
		caps = append(caps, &csipb.ControllerServiceCapability{Type: &csipb.ControllerServiceCapability_Rpc{
			Rpc: &csipb.ControllerServiceCapability_RPC{Type: t}}})
	}
	return &csipb.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

// volume inspects a volume; NOT_FOUND for an ID that names none.
func (s *Driver) volume(ctx context.Context, id string) (*api.Volume, error) {
	if spec.ValidateName("volume name", id) != nil {
		return nil, status.Errorf(codes.NotFound, "volume %q does not exist", id)
	}
	v, err := s.svc.InspectVolume(ctx, id)
	if err != nil {
		return nil, toStatus(err)
	}
	return v, nil
}

// nodesUp maps every node of the cluster to whether it is up.
func (s *Driver) nodesUp(ctx context.Context) (map[string]bool, error) {
	nodes, err := s.svc.ClusterStatus(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	up := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		up[n.ID] = n.State == api.NodeUp
	}
	return up, nil
}

// Topology: every node is in the segment topologyNode=ID and, per label,
// topology.ballast.io/LABEL=VALUE (or LABEL=VALUE for a label whose key
// has a prefix already).
const (
	topologyPrefix = "topology.ballast.io/"
	topologyNode   = topologyPrefix + "node"
)

// segments returns the topology segments of a node.
func segments(n api.Node) map[string]string {
	out := map[string]string{topologyNode: n.ID}
	for k, v := range n.Labels {
		if !strings.Contains(k, "/") {
			k = topologyPrefix + k
		}
		if k != topologyNode {
			out[k] = v
		}
	}
	return out
}

// inTopology reports whether node n is in every segment of t (a nil t
// holds every node).
func inTopology(n api.Node, t *csipb.Topology) bool {
	have := segments(n)
	for k, v := range t.GetSegments() {
		if have[k] != v {
			return false
		}
	}
	return true
}

// Pagination tokens name the last entry of the page they follow, so a
// page stays right when entries before it come and go. They are opaque to
// the CO: "p1:" and the entry's ID in unpadded base64url.
const tokenPrefix = "p1:"

func encodeToken(lastID string) string {
	return tokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(lastID))
}

// decodeToken returns the ID a token names; ABORTED for a token this
// driver did not make.
func decodeToken(token string) (string, error) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	b, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	// The decoder skips \r and \n: only the one encoding a token has is
	// accepted.
	if !ok || err != nil || len(b) == 0 || encodeToken(string(b)) != token {
		return "", status.Errorf(codes.Aborted, "starting_token %q was not made by this driver; list again from the start", token)
	}
	return string(b), nil
}

// page returns the entries of items (sorted by id) after the one the token
// names, at most max of them (0: all), and the token for the next page
// ("" when there is none).
func page[T any](items []T, id func(T) string, token string, max int32) ([]T, string, error) {
	if max < 0 {
		return nil, "", invalid("max_entries %d is negative", max)
	}
	if token != "" {
		after, err := decodeToken(token)
		if err != nil {
			return nil, "", err
		}
		i, found := slices.BinarySearchFunc(items, after, func(t T, s string) int { return strings.Compare(id(t), s) })
		if found {
			i++
		}
		items = items[i:]
	}
	if max == 0 || int(max) >= len(items) {
		return items, "", nil
	}
	items = items[:max]
	return items, encodeToken(id(items[len(items)-1])), nil
}
