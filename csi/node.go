package csi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	mount "k8s.io/mount-utils"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/hostfs"
)

// Node is the CSI Node service of the node the daemon runs on: it attaches
// volumes here (NodeStageVolume) and bind-mounts them where the CO wants
// them.
type Node struct {
	csipb.UnimplementedNodeServer
	*Driver
}

// NodeStageVolume attaches the volume on this node (taking it over from a
// node that is down, after fencing; refused with FAILED_PRECONDITION while
// a node that is up holds it). For a mount capability the daemon mounts it
// under its mount dir and that mount is bind-mounted onto the staging
// path; for raw block access it is attached as a block device, and the
// staging path is left as it is.
func (s *Node) NodeStageVolume(ctx context.Context, req *csipb.NodeStageVolumeRequest) (*csipb.NodeStageVolumeResponse, error) {
	id, staging := req.GetVolumeId(), req.GetStagingTargetPath()
	switch {
	case id == "":
		return nil, invalid("NodeStageVolume needs a volume_id")
	case staging == "":
		return nil, invalid("NodeStageVolume needs a staging_target_path")
	case req.GetVolumeCapability() == nil:
		return nil, invalid("NodeStageVolume needs a volume_capability")
	}
	fs, err := checkCapability(req.GetVolumeCapability())
	if err != nil {
		return nil, err
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
	if isBlock(req.GetVolumeCapability()) {
		att, err := s.svc.AttachVolume(ctx, id, api.AttachOptions{Block: true, Passphrase: passphrase(req.GetSecrets())})
		if err != nil {
			return nil, toStatus(err)
		}
		s.log.Info("volume staged", "volume", id, "epoch", att.Epoch, "device", att.Device, "staging", staging)
		return &csipb.NodeStageVolumeResponse{}, nil
	}
	if fs != "" && fs != v.FS {
		return nil, invalid("volume %q holds %s, not the %s its capability asks for", id, v.FS, fs)
	}
	if have, _ := s.mountedAt(staging); have != nil {
		if dev := s.device(v); dev != "" && have.Device == dev {
			return &csipb.NodeStageVolumeResponse{}, nil // staged already
		}
		// A mount of an earlier attachment (the daemon restarted, or the
		// volume went to another node and came back): replace it.
		s.log.Warn("replacing a stale staging mount", "volume", id, "path", staging, "was", have.Device)
		if err := hostfs.Unmount(staging); err != nil {
			return nil, status.Errorf(codes.Internal, "unmount stale staging mount of volume %q: %v", id, err)
		}
	}
	att, err := s.svc.AttachVolume(ctx, id, api.AttachOptions{Passphrase: passphrase(req.GetSecrets())})
	if err != nil {
		return nil, toStatus(err)
	}
	if err := os.MkdirAll(staging, 0o750); err != nil {
		return nil, status.Errorf(codes.Internal, "staging path: %v", err)
	}
	if err := s.mounter.Mount(att.MountPath, staging, "", []string{"bind"}); err != nil {
		return nil, status.Errorf(codes.Internal, "bind-mount volume %q (%s) on %s: %v", id, att.MountPath, staging, err)
	}
	s.log.Info("volume staged", "volume", id, "epoch", att.Epoch, "mount", att.MountPath, "staging", staging)
	return &csipb.NodeStageVolumeResponse{}, nil
}

// NodeUnstageVolume unmounts the staging path and detaches the volume from
// this node. A volume that is gone or attached elsewhere needs no detach.
func (s *Node) NodeUnstageVolume(ctx context.Context, req *csipb.NodeUnstageVolumeRequest) (*csipb.NodeUnstageVolumeResponse, error) {
	id, staging := req.GetVolumeId(), req.GetStagingTargetPath()
	switch {
	case id == "":
		return nil, invalid("NodeUnstageVolume needs a volume_id")
	case staging == "":
		return nil, invalid("NodeUnstageVolume needs a staging_target_path")
	}
	release, err := s.busy.try("volume " + id)
	if err != nil {
		return nil, err
	}
	defer release()
	if err := hostfs.Unmount(staging); err != nil {
		return nil, status.Errorf(codes.Internal, "unmount staging path of volume %q: %v", id, err)
	}
	done := &csipb.NodeUnstageVolumeResponse{}
	v, err := s.volume(ctx, id)
	if status.Code(err) == codes.NotFound {
		return done, nil
	} else if err != nil {
		return nil, err
	}
	if a := v.Attachment; a == nil || a.Node != s.nodeID {
		return done, nil
	}
	if err := s.detach(ctx, v); err != nil {
		return nil, err
	}
	s.log.Info("volume unstaged", "volume", id, "staging", staging)
	return done, nil
}

// detach detaches a volume attached on this node, unless it is still in
// use besides the daemon's own mount: its filesystem mounted at a target
// path not unpublished yet, or its device bound to one. Detaching would
// pull it from under its users.
func (s *Driver) detach(ctx context.Context, v *api.Volume) error {
	if dev := s.device(v); dev != "" {
		users, err := s.usersOf(v, dev)
		if err != nil {
			return status.Errorf(codes.Internal, "list mounts: %v", err)
		}
		if len(users) > 0 {
			return status.Errorf(codes.FailedPrecondition, "volume %q is still published at %s on node %s; unpublish it there first", v.Name, strings.Join(users, ", "), s.nodeID)
		}
	}
	err := s.svc.DetachVolume(ctx, v.Name)
	if errors.Is(err, api.ErrNotFound) || errors.Is(err, api.ErrInUse) {
		return nil // gone, or taken over by another node meanwhile
	}
	return toStatus(err)
}

// usersOf lists where volume v, attached here on device dev, is mounted
// or bound besides the daemon's own mount and the paths in except.
func (s *Driver) usersOf(v *api.Volume, dev string, except ...string) ([]string, error) {
	if v.Attachment.Block {
		return blockBinds(dev, except...)
	}
	return s.mountsOf(dev, append(except, v.Attachment.MountPath)...)
}

// NodePublishVolume bind-mounts the staging path (for raw block access:
// the volume's device) onto the target path, read-only when asked. With
// the SINGLE_NODE_SINGLE_WRITER access mode a second target is
// FAILED_PRECONDITION.
func (s *Node) NodePublishVolume(ctx context.Context, req *csipb.NodePublishVolumeRequest) (*csipb.NodePublishVolumeResponse, error) {
	id, target, staging := req.GetVolumeId(), req.GetTargetPath(), req.GetStagingTargetPath()
	switch {
	case id == "":
		return nil, invalid("NodePublishVolume needs a volume_id")
	case target == "":
		return nil, invalid("NodePublishVolume needs a target_path")
	case req.GetVolumeCapability() == nil:
		return nil, invalid("NodePublishVolume needs a volume_capability")
	case staging == "":
		return nil, invalid("NodePublishVolume needs a staging_target_path: stage the volume first")
	}
	if _, err := checkCapability(req.GetVolumeCapability()); err != nil {
		return nil, err
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
	block := isBlock(req.GetVolumeCapability())
	dev := s.device(v)
	src := staging
	if block {
		if dev == "" || !v.Attachment.Block {
			return nil, status.Errorf(codes.FailedPrecondition, "volume %q is not staged as a block device on node %s; NodeStageVolume with a block capability first", id, s.nodeID)
		}
		src = dev
	} else if st, _ := s.mountedAt(staging); dev == "" || v.Attachment.Block || st == nil || st.Device != dev {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %q is not staged at %s on node %s; NodeStageVolume first", id, staging, s.nodeID)
	}
	mode := req.GetVolumeCapability().GetAccessMode().GetMode()
	readOnly := req.GetReadonly() || mode == csipb.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY
	if have, err := s.published(v, dev, target); err != nil {
		return nil, err
	} else if have != nil {
		if slices.Contains(have.Opts, "ro") != readOnly {
			return nil, status.Errorf(codes.AlreadyExists, "volume %q is published at %s with readonly=%t already", id, target, !readOnly)
		}
		return &csipb.NodePublishVolumeResponse{}, nil
	}
	if mode == csipb.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER {
		others, err := s.usersOf(v, dev, staging, target)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "list mounts: %v", err)
		}
		if len(others) > 0 {
			return nil, status.Errorf(codes.FailedPrecondition, "volume %q is published at %s already, and its access mode SINGLE_NODE_SINGLE_WRITER allows one target", id, strings.Join(others, ", "))
		}
	}
	if err := makeTarget(target, block); err != nil {
		return nil, status.Errorf(codes.Internal, "target path: %v", err)
	}
	opts := []string{"bind"}
	if readOnly {
		opts = append(opts, "ro")
	}
	opts = append(opts, req.GetVolumeCapability().GetMount().GetMountFlags()...)
	if err := s.mounter.Mount(src, target, "", opts); err != nil {
		os.Remove(target)
		return nil, status.Errorf(codes.Internal, "bind-mount volume %q on %s: %v", id, target, err)
	}
	s.log.Info("volume published", "volume", id, "target", target, "readonly", readOnly, "block", block)
	return &csipb.NodePublishVolumeResponse{}, nil
}

// published returns the mount at target if it is a publish of volume v
// (device dev), nil if nothing is mounted there, and ALREADY_EXISTS when
// something else is.
func (s *Driver) published(v *api.Volume, dev, target string) (*mount.MountPoint, error) {
	have, err := s.mountedAt(target)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list mounts: %v", err)
	}
	if have == nil {
		return nil, nil
	}
	if v.Attachment.Block {
		if same, err := sameDevice(target, dev); err != nil || !same {
			return nil, status.Errorf(codes.AlreadyExists, "target %s is a mount of something other than the device %s of volume %q", target, dev, v.Name)
		}
		return have, nil
	}
	if have.Device != dev {
		return nil, status.Errorf(codes.AlreadyExists, "target %s is a mount of %s, not of volume %q", target, have.Device, v.Name)
	}
	return have, nil
}

// makeTarget creates a target path: a directory for a filesystem, a file
// for a block device to be bound onto.
func makeTarget(target string, block bool) error {
	if !block {
		return os.MkdirAll(target, 0o750)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_RDONLY, 0o640)
	if err != nil {
		return err
	}
	return f.Close()
}

// NodeUnpublishVolume unmounts the target path and removes it. A target
// that is not mounted, or gone, is unpublished already.
func (s *Node) NodeUnpublishVolume(ctx context.Context, req *csipb.NodeUnpublishVolumeRequest) (*csipb.NodeUnpublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	switch {
	case id == "":
		return nil, invalid("NodeUnpublishVolume needs a volume_id")
	case target == "":
		return nil, invalid("NodeUnpublishVolume needs a target_path")
	}
	release, err := s.busy.try("volume " + id)
	if err != nil {
		return nil, err
	}
	defer release()
	mounted, err := s.mountedAt(target)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list mounts: %v", err)
	}
	if err := hostfs.Unmount(target); err != nil {
		return nil, status.Errorf(codes.Internal, "unpublish volume %q: %v", id, err)
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, status.Errorf(codes.Internal, "unpublish volume %q: remove target: %v", id, err)
	}
	if mounted != nil {
		s.log.Info("volume unpublished", "volume", id, "target", target)
	}
	return &csipb.NodeUnpublishVolumeResponse{}, nil
}

// NodeGetVolumeStats reports the space and inodes of the filesystem at the
// volume path, which must be a mount of the volume on this node; for a
// raw block volume, the size of its device.
func (s *Node) NodeGetVolumeStats(ctx context.Context, req *csipb.NodeGetVolumeStatsRequest) (*csipb.NodeGetVolumeStatsResponse, error) {
	id, path := req.GetVolumeId(), req.GetVolumePath()
	switch {
	case id == "":
		return nil, invalid("NodeGetVolumeStats needs a volume_id")
	case path == "":
		return nil, invalid("NodeGetVolumeStats needs a volume_path")
	}
	v, err := s.volume(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.checkMount(v, path); err != nil {
		return nil, err
	}
	if v.Attachment.Block {
		size, err := hostfs.DeviceSize(s.device(v))
		if err != nil {
			return nil, status.Errorf(codes.Internal, "%v", err)
		}
		return &csipb.NodeGetVolumeStatsResponse{Usage: []*csipb.VolumeUsage{{Unit: csipb.VolumeUsage_BYTES, Total: size}}}, nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return nil, status.Errorf(codes.Internal, "statfs %s: %v", path, err)
	}
	bs := st.Bsize
	return &csipb.NodeGetVolumeStatsResponse{Usage: []*csipb.VolumeUsage{
		{Unit: csipb.VolumeUsage_BYTES, Total: int64(st.Blocks) * bs, Available: int64(st.Bavail) * bs, Used: int64(st.Blocks-st.Bfree) * bs},
		{Unit: csipb.VolumeUsage_INODES, Total: int64(st.Files), Available: int64(st.Ffree), Used: int64(st.Files - st.Ffree)},
	}}, nil
}

// NodeExpandVolume grows a volume attached on this node to the size asked
// for, and the filesystem mounted on it, online; asked for no more than it
// has, it grows whatever has not grown yet (a filesystem the controller
// could not grow, or a volume grown while attached elsewhere). A raw block
// volume's device grows with the volume.
func (s *Node) NodeExpandVolume(ctx context.Context, req *csipb.NodeExpandVolumeRequest) (*csipb.NodeExpandVolumeResponse, error) {
	id, path := req.GetVolumeId(), req.GetVolumePath()
	switch {
	case id == "":
		return nil, invalid("NodeExpandVolume needs a volume_id")
	case path == "":
		return nil, invalid("NodeExpandVolume needs a volume_path")
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
	if err := s.checkMount(v, path); err != nil {
		return nil, err
	}
	want, err := expandSize(req.GetCapacityRange(), v.Size)
	if err != nil {
		return nil, err
	}
	if v, err = s.svc.ResizeVolume(ctx, id, want); err != nil {
		return nil, toStatus(err)
	}
	dev := s.device(v)
	if size, err := hostfs.DeviceSize(dev); err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	} else if size < v.Size {
		return nil, status.Errorf(codes.Internal, "volume %q is %d bytes but its device %s here has %d; the daemon did not grow it", id, v.Size, dev, size)
	}
	s.log.Info("volume expanded on the node", "volume", id, "size", v.Size, "path", path)
	return &csipb.NodeExpandVolumeResponse{CapacityBytes: v.Size}, nil
}

// NodeGetVolumeHealth reports the volume's replicas, as the controller
// does, and whether it is usable here: mounted at the paths given, and its
// filesystem answering.
func (s *Node) NodeGetVolumeHealth(ctx context.Context, req *csipb.NodeGetVolumeHealthRequest) (*csipb.NodeGetVolumeHealthResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, invalid("NodeGetVolumeHealth needs a volume_id")
	}
	v, err := s.volume(ctx, id)
	if err != nil {
		return nil, err
	}
	up, err := s.nodesUp(ctx)
	if err != nil {
		return nil, err
	}
	h := volumeHealth(v, up)
	inaccessible := func(reason, format string, args ...any) {
		h.HealthStatuses = append(h.HealthStatuses, &csipb.VolumeHealth_VolumeHealthEntry{
			Status: csipb.VolumeHealthErrorType_INACCESSIBLE, Reason: reason, Message: fmt.Sprintf(format, args...)})
	}
	block := v.Attachment != nil && v.Attachment.Block
	for _, p := range []string{req.GetVolumePublishPath(), req.GetStagingTargetPath()} {
		if p == "" || block && p == req.GetStagingTargetPath() { // a block volume's staging path holds nothing
			continue
		}
		if err := s.checkMount(v, p); err != nil {
			inaccessible("NotMounted", "%s", status.Convert(err).Message())
			return &csipb.NodeGetVolumeHealthResponse{VolumeHealth: h}, nil
		}
	}
	if a := v.Attachment; a != nil && a.Node == s.nodeID && !block {
		var st unix.Statfs_t
		if err := unix.Statfs(a.MountPath, &st); err != nil {
			inaccessible("IOError", "the filesystem of volume %s on node %s fails: %v", id, s.nodeID, err)
		}
	}
	return &csipb.NodeGetVolumeHealthResponse{VolumeHealth: h}, nil
}

// NodeGetStorageHealth reports this node's pool dirs: degraded when some
// are offline, unreachable when all are.
func (s *Node) NodeGetStorageHealth(ctx context.Context, _ *csipb.NodeGetStorageHealthRequest) (*csipb.NodeGetStorageHealthResponse, error) {
	pools, err := s.svc.ListPools(ctx)
	if err != nil {
		return &csipb.NodeGetStorageHealthResponse{BackendHealth: []*csipb.NodeGetStorageHealthResponse_StorageBackendHealth{{
			Status: csipb.StorageHealthErrorType_STORAGE_UNREACHABLE, Reason: "ClusterUnreachable",
			Message: fmt.Sprintf("node %s cannot read the cluster state: %v", s.nodeID, err)}}}, nil
	}
	var mine, offline []string
	for _, p := range pools {
		if p.Node != s.nodeID {
			continue
		}
		mine = append(mine, p.Dir)
		if !p.Online {
			offline = append(offline, p.Dir)
		}
	}
	out := &csipb.NodeGetStorageHealthResponse{}
	switch {
	case len(offline) > 0 && len(offline) == len(mine):
		out.BackendHealth = append(out.BackendHealth, &csipb.NodeGetStorageHealthResponse_StorageBackendHealth{
			Status: csipb.StorageHealthErrorType_STORAGE_UNREACHABLE, Reason: "PoolsOffline", Message: "every pool dir of node " + s.nodeID + " is offline"})
	case len(offline) > 0:
		out.BackendHealth = append(out.BackendHealth, &csipb.NodeGetStorageHealthResponse_StorageBackendHealth{
			Status: csipb.StorageHealthErrorType_STORAGE_DEGRADED, Reason: "PoolsOffline", Message: "pool dirs offline on node " + s.nodeID + ": " + strings.Join(offline, ", ")})
	}
	return out, nil
}

// NodeGetCapabilities lists what the node service does. Not offered:
// VOLUME_MOUNT_GROUP (the CO changes group ownership itself).
func (s *Node) NodeGetCapabilities(context.Context, *csipb.NodeGetCapabilitiesRequest) (*csipb.NodeGetCapabilitiesResponse, error) {
	var caps []*csipb.NodeServiceCapability
	for _, t := range []csipb.NodeServiceCapability_RPC_Type{
		csipb.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
		csipb.NodeServiceCapability_RPC_GET_VOLUME_STATS,
		csipb.NodeServiceCapability_RPC_EXPAND_VOLUME,
		csipb.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
		csipb.NodeServiceCapability_RPC_GET_VOLUME_HEALTH,
		csipb.NodeServiceCapability_RPC_GET_STORAGE_HEALTH,
	} {
		caps = append(caps, &csipb.NodeServiceCapability{Type: &csipb.NodeServiceCapability_Rpc{
			Rpc: &csipb.NodeServiceCapability_RPC{Type: t}}})
	}
	return &csipb.NodeGetCapabilitiesResponse{Capabilities: caps}, nil
}

// NodeGetInfo names this node and its topology: the node itself and its
// labels (zone=a is topology.ballast.io/zone=a).
func (s *Node) NodeGetInfo(ctx context.Context, _ *csipb.NodeGetInfoRequest) (*csipb.NodeGetInfoResponse, error) {
	nodes, err := s.svc.ClusterStatus(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	for _, n := range nodes {
		if n.ID == s.nodeID {
			return &csipb.NodeGetInfoResponse{NodeId: s.nodeID, AccessibleTopology: &csipb.Topology{Segments: segments(n)}}, nil
		}
	}
	return nil, status.Errorf(codes.FailedPrecondition, "node %s is not registered in the Ballast cluster", s.nodeID)
}

// device returns the block device of a volume attached on this node, ""
// when it is not attached (and, for a filesystem, mounted) here.
func (s *Driver) device(v *api.Volume) string {
	a := v.Attachment
	if a == nil || a.Node != s.nodeID {
		return ""
	}
	if a.Block {
		return a.Device
	}
	m, err := s.mountedAt(a.MountPath)
	if err != nil || m == nil {
		return ""
	}
	return m.Device
}

// checkMount makes sure path is a mount of volume v on this node (for a
// raw block volume: its device bound there, or the staging path it was
// staged with): NOT_FOUND when it is not.
func (s *Driver) checkMount(v *api.Volume, path string) error {
	dev := s.device(v)
	if dev == "" {
		return status.Errorf(codes.NotFound, "volume %q is not attached on node %s", v.Name, s.nodeID)
	}
	if v.Attachment.Block {
		if same, err := sameDevice(path, dev); err != nil || !same {
			return status.Errorf(codes.NotFound, "%s is not the block device of volume %q on node %s", path, v.Name, s.nodeID)
		}
		return nil
	}
	m, err := s.mountedAt(path)
	if err != nil {
		return status.Errorf(codes.Internal, "list mounts: %v", err)
	}
	if m == nil || m.Device != dev {
		return status.Errorf(codes.NotFound, "%s is not a mount of volume %q on node %s", path, v.Name, s.nodeID)
	}
	return nil
}

// sameDevice reports whether path is the block device dev (a device node
// of it, or a bind mount of one).
func sameDevice(path, dev string) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Stat(path, &a); err != nil {
		return false, err
	}
	if err := unix.Stat(dev, &b); err != nil {
		return false, err
	}
	return a.Mode&unix.S_IFMT == unix.S_IFBLK && a.Rdev == b.Rdev, nil
}

// blockBinds lists the paths the device node dev is bind-mounted on, but
// those in except.
func blockBinds(dev string, except ...string) ([]string, error) {
	root := "/" + filepath.Base(dev)
	ms, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return m.Root != root || m.FSType != "devtmpfs" && m.FSType != "tmpfs", false
	})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range ms {
		if same, _ := sameDevice(m.Mountpoint, dev); same && !slices.Contains(except, m.Mountpoint) {
			out = append(out, m.Mountpoint)
		}
	}
	return out, nil
}

// mountedAt returns the topmost mount at path, or nil.
func (s *Driver) mountedAt(path string) (*mount.MountPoint, error) {
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	mps, err := s.mounter.List()
	if err != nil {
		return nil, err
	}
	for i := len(mps) - 1; i >= 0; i-- {
		if mps[i].Path == path {
			return &mps[i], nil
		}
	}
	return nil, nil
}

// mountsOf lists the mount points of device dev but those in except.
func (s *Driver) mountsOf(dev string, except ...string) ([]string, error) {
	mps, err := s.mounter.List()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range mps {
		if m.Device == dev && !slices.Contains(except, m.Path) {
			out = append(out, m.Path)
		}
	}
	return out, nil
}
