package csi

import (
	"context"
	"errors"
	"slices"
	"strings"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

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
