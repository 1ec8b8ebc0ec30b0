package csi

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

// fake is an in-memory api.Service of one node of a cluster, following the
// real service's rules where the driver depends on them: creating an
// existing volume with the same spec returns it, a clone takes its
// source's size, deleting an attached volume or one with clones fails
// with api.ErrInUse, a volume's snapshots go with it.
type fake struct {
	mu    sync.Mutex
	node  string
	up    map[string]bool // the nodes of the cluster
	vols  map[string]*api.Volume
	snaps map[string]api.Snapshot // by VOL@SNAP
	// resized lists the volumes ResizeVolume grew, in order.
	resized []string
}

var _ api.Service = (*fake)(nil)

func newFake(node string) *fake {
	return &fake{node: node, up: map[string]bool{node: true}, vols: map[string]*api.Volume{}, snaps: map[string]api.Snapshot{}}
}

func (f *fake) CreateVolume(_ context.Context, s spec.Volume) (*api.Volume, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := s.Normalize(); err != nil {
		return nil, err
	}
	if s.FromSnapshot != "" {
		sn, ok := f.snaps[s.FromSnapshot]
		if !ok {
			return nil, fmt.Errorf("snapshot %s: %w", s.FromSnapshot, api.ErrNotFound)
		}
		src := f.vols[sn.Volume]
		s.Size, s.FS, s.Repl = sn.Size, src.FS, max(s.Repl, src.Repl)
	}
	if old := f.vols[s.Name]; old != nil {
		if old.Volume != s {
			return nil, fmt.Errorf("volume %q has another spec: %w", s.Name, api.ErrExists)
		}
		return old, nil
	}
	v := &api.Volume{Volume: s, ID: "id-" + s.Name, State: "ready", Created: time.Now()}
	for i := range s.Repl {
		v.Replicas = append(v.Replicas, api.Replica{ID: fmt.Sprintf("%s-r%d", s.Name, i), Node: f.node, InSync: true})
	}
	f.vols[s.Name] = v
	return v, nil
}

func (f *fake) DeleteVolume(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.vols[name]
	if v == nil {
		return fmt.Errorf("volume %q: %w", name, api.ErrNotFound)
	}
	if v.Attachment != nil {
		return fmt.Errorf("volume %q is attached on node %s: %w", name, v.Attachment.Node, api.ErrInUse)
	}
	for _, o := range f.vols {
		if strings.HasPrefix(o.FromSnapshot, name+"@") {
			return fmt.Errorf("volume %q has clones: %w", name, api.ErrInUse)
		}
	}
	for id, sn := range f.snaps {
		if sn.Volume == name {
			delete(f.snaps, id)
		}
	}
	delete(f.vols, name)
	return nil
}

// ResizeVolume grows a volume that is detached or attached on this node;
// one attached on another node is api.ErrInUse, as in the real service.
func (f *fake) ResizeVolume(_ context.Context, name string, size int64) (*api.Volume, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.vols[name]
	switch {
	case v == nil:
		return nil, fmt.Errorf("volume %q: %w", name, api.ErrNotFound)
	case size < v.Size:
		return nil, fmt.Errorf("%w: volumes only grow", api.ErrInvalid)
	case v.Attachment != nil && v.Attachment.Node != f.node:
		return nil, fmt.Errorf("volume %q is attached on node %s: %w", name, v.Attachment.Node, api.ErrInUse)
	}
	v.Size = (size + 4095) &^ 4095
	f.resized = append(f.resized, name)
	c := *v
	return &c, nil
}

func (f *fake) InspectVolume(_ context.Context, name string) (*api.Volume, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v := f.vols[name]; v != nil {
		c := *v
		return &c, nil
	}
	return nil, fmt.Errorf("volume %q does not exist: %w", name, api.ErrNotFound)
}

func (f *fake) ListVolumes(context.Context) ([]api.Volume, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Volume
	for _, v := range f.vols {
		out = append(out, *v)
	}
	return out, nil
}

func (f *fake) AttachVolume(_ context.Context, name string, _ api.AttachOptions) (*api.Attachment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.vols[name]
	if v == nil {
		return nil, api.ErrNotFound
	}
	if a := v.Attachment; a != nil && a.Node != f.node && f.up[a.Node] {
		return nil, fmt.Errorf("volume %q is attached on node %s: %w", name, a.Node, api.ErrInUse)
	}
	v.Attachment = &api.Attachment{Volume: name, Node: f.node, MountPath: "/nonexistent/" + name}
	return v.Attachment, nil
}

func (f *fake) attachOn(name, node string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vols[name].Attachment = &api.Attachment{Volume: name, Node: node, MountPath: "/nonexistent/" + name}
}

func (f *fake) DetachVolume(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.vols[name]
	if v == nil {
		return api.ErrNotFound
	}
	if a := v.Attachment; a != nil && a.Node != f.node {
		return fmt.Errorf("volume %q is attached on node %s: %w", name, a.Node, api.ErrInUse)
	}
	v.Attachment = nil
	return nil
}

func (f *fake) CreateSnapshot(_ context.Context, vol, name string) (*api.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.vols[vol] == nil {
		return nil, api.ErrNotFound
	}
	if _, ok := f.snaps[vol+"@"+name]; ok {
		return nil, api.ErrExists
	}
	sn := api.Snapshot{Volume: vol, Name: name, State: "ready", Created: time.Now(), Size: f.vols[vol].Size}
	f.snaps[vol+"@"+name] = sn
	return &sn, nil
}

func (f *fake) DeleteSnapshot(_ context.Context, vol, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := vol + "@" + name
	if _, ok := f.snaps[id]; !ok {
		return api.ErrNotFound
	}
	for _, v := range f.vols {
		if v.FromSnapshot == id {
			return fmt.Errorf("snapshot %s has clones: %w", id, api.ErrInUse)
		}
	}
	delete(f.snaps, id)
	return nil
}

func (f *fake) ListSnapshots(_ context.Context, vol string) ([]api.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if vol != "" && f.vols[vol] == nil {
		return nil, api.ErrNotFound
	}
	var out []api.Snapshot
	for _, sn := range f.snaps {
		if vol == "" || sn.Volume == vol {
			out = append(out, sn)
		}
	}
	return out, nil
}

func (f *fake) ListPools(context.Context) ([]api.Pool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Pool
	for n, up := range f.up {
		out = append(out, api.Pool{ID: "p-" + n, Node: n, Capacity: 100 << 30, Allocated: 10 << 30, Online: up})
	}
	return out, nil
}

func (f *fake) ClusterStatus(context.Context) ([]api.Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Node
	for n, up := range f.up {
		st := api.NodeDown
		if up {
			st = api.NodeUp
		}
		out = append(out, api.Node{ID: n, State: st, Labels: map[string]string{"zone": "z-" + n}})
	}
	return out, nil
}
