package csi

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

// Controller is the CSI Controller service: volumes and snapshots of the
// whole cluster. Any node's daemon can serve it.
type Controller struct {
	csipb.UnimplementedControllerServer
	*Driver
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
