package csi

import (
	"context"
	"errors"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

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
