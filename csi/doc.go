// Package csi serves Ballast volumes through the Container Storage
// Interface (CSI 1.x, github.com/container-storage-interface/spec), so that
// Kubernetes, Nomad or Mesos can provision, attach, snapshot, clone and
// expand them. Like the Docker plugin in driver/, it is a thin adapter: every
// request becomes calls on api.Service, the volume service of the node the
// daemon runs on. The only state the package keeps is the set of volumes
// and snapshots with a call in progress (busy, server.go): CSI asks a plugin
// to answer a second call for the same one with ABORTED rather than run
// both. One file per CSI service: identity.go, controller.go, node.go;
// the controller's calls by concern beside it (parameters.go, volumes.go,
// publish.go, snapshots.go, capacity.go: capacity and health); server.go
// puts them on a unix socket (ballast daemon --csi-endpoint
// unix:///path/csi.sock).
//
// IDs. A volume's ID is its Ballast name: the CO's name when it is a valid
// Ballast name, else "csi-" and a hash of it (CSI names may be 128
// characters of anything; Ballast names are 64 of [A-Za-z0-9_.-]). A
// snapshot's ID is "VOLUME@SNAPSHOT", what --from-snapshot takes.
//
// Attach. Ballast attaches a volume on the node whose daemon is asked
// (api.Service.AttachVolume), taking it over from a dead owner after fencing
// and refusing while a live one holds it. So the attach happens in
// NodeStageVolume, on the node itself: for the mount access type it attaches
// the volume there (the daemon formats it on first use and mounts it under
// its mount dir) and bind-mounts that mount onto the staging path.
// NodeUnstageVolume undoes both. ControllerPublishVolume, which any node's
// daemon may serve, only checks: the volume and the node exist, and the
// volume is not attached on another node that is up (FAILED_PRECONDITION
// naming it). A volume held by
// a dead node passes, and NodeStageVolume on the new node takes it over once
// the dead node's lease has expired. ControllerUnpublishVolume detaches the
// volume when it is still attached on that node and this daemon is that
// node; when it is attached on another node that is down there is nothing
// to do (the next attach fences it), and on another node that is up it
// fails, naming the node, so the CO retries after NodeUnstageVolume there.
//
// Encryption. A StorageClass with encrypted "true" names a cluster secret
// (secret_key), or takes the passphrase from the CSI secrets under the key
// "passphrase" (PassphraseKey): the provisioner secret at CreateVolume, the
// node-stage secret at every NodeStageVolume. The daemon never stores it;
// a missing or wrong one is INVALID_ARGUMENT and nothing is staged.
//
// Raw block. The block access type (volumeMode: Block) is served too, by
// any volume: NodeStageVolume attaches the volume as a raw block device
// (api.AttachOptions.Block: nothing is formatted or mounted) and leaves the
// staging path as it is, and NodePublishVolume bind-mounts the device node
// (/dev/loopN) onto the target path, a file it creates. A volume staged one
// way cannot be published the other way.
//
// Topology. NodeGetInfo reports the segment topology.ballast.io/node (the
// node ID) and one segment per node label: topology.ballast.io/zone for
// the label zone, or the label's own key when it already has a prefix
// (example.com/rack). Volumes are reachable from every node over the
// replica protocol, so CreateVolume returns no accessible_topology (the
// CO may schedule their users anywhere); GetCapacity sums the free space of
// the pools of the nodes that are up in a segment (and allowed by the pin
// and avoid parameters), divided by the replication factor.
package csi
