package csi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

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
	opts := api.CreateOptions{Passphrase: passphrase(req.GetSecrets())}
	src := req.GetVolumeContentSource()
	switch {
	case src == nil:
		if v.Size, err = volumeSize(req.GetCapacityRange(), v.FS); err != nil {
			return nil, err
		}
		got, err = s.svc.CreateVolume(ctx, v, opts)
	case src.GetSnapshot() != nil:
		got, err = s.restore(ctx, v, src.GetSnapshot().GetSnapshotId(), req.GetCapacityRange(), opts)
	case src.GetVolume() != nil:
		got, err = s.cloneVolume(ctx, v, src.GetVolume().GetVolumeId(), req.GetCapacityRange(), opts)
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
func (s *Controller) restore(ctx context.Context, v spec.Volume, snapID string, r *csipb.CapacityRange, opts api.CreateOptions) (*api.Volume, error) {
	srcVol, _, err := spec.ParseSnapshotRef(snapID)
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "snapshot %q does not exist (Ballast snapshot IDs are VOLUME@SNAPSHOT)", snapID)
	}
	v.FromSnapshot = snapID
	return s.createClone(ctx, v, srcVol, r, opts)
}

// cloneVolume creates v as a clone of volume srcID: it snapshots the
// source as csi-clone-NAME (unless that snapshot exists, from an earlier
// try) and clones the snapshot.
func (s *Controller) cloneVolume(ctx context.Context, v spec.Volume, srcID string, r *csipb.CapacityRange, opts api.CreateOptions) (*api.Volume, error) {
	if spec.ValidateName("volume name", srcID) != nil {
		return nil, status.Errorf(codes.NotFound, "source volume %q does not exist", srcID)
	}
	snap := ballastName(cloneSnapshotPrefix, v.Name)
	v.FromSnapshot = srcID + "@" + snap
	if old, err := s.svc.InspectVolume(ctx, v.Name); err == nil {
		if old.FromSnapshot != v.FromSnapshot {
			return nil, status.Errorf(codes.AlreadyExists, "volume %q exists and is not a clone of volume %s", v.Name, srcID)
		}
		return s.createClone(ctx, v, srcID, r, opts) // the same request again
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
	got, err := s.createClone(ctx, v, srcID, r, opts)
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
func (s *Controller) createClone(ctx context.Context, v spec.Volume, srcVol string, r *csipb.CapacityRange, opts api.CreateOptions) (*api.Volume, error) {
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
	got, err := s.svc.CreateVolume(ctx, v, opts) // Size 0: the source's
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
