package csi

import (
	"context"
	"fmt"
	"slices"
	"strings"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

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
