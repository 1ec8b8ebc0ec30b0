package csi

import (
	"context"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/version"
)

// Identity is the CSI Identity service: who the plugin is, what it can do,
// and whether its daemon is healthy.
type Identity struct {
	csipb.UnimplementedIdentityServer
	*Driver
}

// GetPluginInfo names the driver and this build of Ballast.
func (s *Identity) GetPluginInfo(context.Context, *csipb.GetPluginInfoRequest) (*csipb.GetPluginInfoResponse, error) {
	return &csipb.GetPluginInfoResponse{Name: DriverName, VendorVersion: version.String()}, nil
}

// GetPluginCapabilities: a controller service, topology, and online
// expansion (the daemon grows a mounted filesystem itself).
func (s *Identity) GetPluginCapabilities(context.Context, *csipb.GetPluginCapabilitiesRequest) (*csipb.GetPluginCapabilitiesResponse, error) {
	service := func(t csipb.PluginCapability_Service_Type) *csipb.PluginCapability {
		return &csipb.PluginCapability{Type: &csipb.PluginCapability_Service_{Service: &csipb.PluginCapability_Service{Type: t}}}
	}
	return &csipb.GetPluginCapabilitiesResponse{Capabilities: []*csipb.PluginCapability{
		service(csipb.PluginCapability_Service_CONTROLLER_SERVICE),
		service(csipb.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS),
		{Type: &csipb.PluginCapability_VolumeExpansion_{VolumeExpansion: &csipb.PluginCapability_VolumeExpansion{
			Type: csipb.PluginCapability_VolumeExpansion_ONLINE}}},
	}}, nil
}

// probeTimeout bounds Probe: a liveness probe must not hang on a stuck
// etcd.
const probeTimeout = 3 * time.Second

// Probe reports the daemon ready when it reaches the cluster's metadata
// and its own node is up there (its lease lives). The service is only
// served once the daemon has started, so there is no "not ready yet":
// anything else is unhealthy, an error.
func (s *Identity) Probe(ctx context.Context, _ *csipb.ProbeRequest) (*csipb.ProbeResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	nodes, err := s.svc.ClusterStatus(ctx)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "ballast daemon on node %s cannot read the cluster state (is etcd reachable?): %v", s.nodeID, err)
	}
	for _, n := range nodes {
		if n.ID == s.nodeID {
			if n.State != api.NodeUp {
				return nil, status.Errorf(codes.FailedPrecondition, "ballast node %s is %s in the cluster: its lease expired (cut off from etcd?)", s.nodeID, n.State)
			}
			return &csipb.ProbeResponse{Ready: wrapperspb.Bool(true)}, nil
		}
	}
	return nil, status.Errorf(codes.FailedPrecondition, "ballast node %s is not registered in the cluster", s.nodeID)
}
