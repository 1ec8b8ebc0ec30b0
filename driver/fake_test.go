package driver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

// fake is an in-memory api.Service for one node of a cluster. It records
// every call ("create v1", "attach v1", ...) and follows the real
// service's rules where the driver depends on them: creating an existing
// volume with the same spec succeeds, attaching a volume held by another
// node fails with api.ErrInUse, deleting an attached one too.
type fake struct {
	mu        sync.Mutex
	node      string
	vols      map[string]*api.Volume
	calls     []string
	attachErr error // AttachVolume fails with it when set
	detachErr error // DetachVolume fails with it when set
}

var _ api.Service = (*fake)(nil)

func newFake(node string) *fake { return &fake{node: node, vols: map[string]*api.Volume{}} }

func (f *fake) record(op, name string) { f.calls = append(f.calls, op+" "+name) }

// count returns how many calls of op (e.g. "attach") the fake saw.
func (f *fake) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, op+" ") {
			n++
		}
	}
	return n
}

// attachOn marks a volume as attached on another node.
func (f *fake) attachOn(name, node string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vols[name].Attachment = &api.Attachment{Volume: name, Node: node, MountPath: "/var/lib/ballast/mounts/" + name, Since: time.Now()}
}

// detachOn releases a volume's attachment, as the cluster does for a
// node declared down.
func (f *fake) detachOn(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vols[name].Attachment = nil
}

func (f *fake) attachment(name string) *api.Attachment {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v := f.vols[name]; v != nil && v.Attachment != nil {
		a := *v.Attachment
		return &a
	}
	return nil
}

func (f *fake) get(name string) (*api.Volume, error) {
	v := f.vols[name]
	if v == nil {
		return nil, fmt.Errorf("volume %q does not exist (see 'ballast volume list'): %w", name, api.ErrNotFound)
	}
	return v, nil
}

func (f *fake) CreateVolume(_ context.Context, s spec.Volume) (*api.Volume, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("create", s.Name)
	if err := s.Normalize(); err != nil {
		return nil, err
	}
	if old := f.vols[s.Name]; old != nil {
		if err := api.MatchSpec(old.Volume, s); err != nil {
			return nil, err
		}
		c := *old
		return &c, nil
	}
	v := &api.Volume{Volume: s, ID: "id-" + s.Name, State: "ready", Created: time.Now()}
	for i := range max(s.Repl, 1) {
		v.Replicas = append(v.Replicas, api.Replica{ID: fmt.Sprintf("%s-r%d", v.ID, i), Node: fmt.Sprintf("n%d", i+1), InSync: true})
	}
	f.vols[s.Name] = v
	c := *v
	return &c, nil
}

func (f *fake) ResizeVolume(context.Context, string, int64) (*api.Volume, error) {
	return nil, errors.ErrUnsupported
}

func (f *fake) DeleteVolume(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("delete", name)
	v, err := f.get(name)
	if err != nil {
		return err
	}
	if v.Attachment != nil {
		return fmt.Errorf("volume %q is attached on node %s; detach it first: %w", name, v.Attachment.Node, api.ErrInUse)
	}
	delete(f.vols, name)
	return nil
}

func (f *fake) InspectVolume(_ context.Context, name string) (*api.Volume, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("inspect", name)
	v, err := f.get(name)
	if err != nil {
		return nil, err
	}
	c := *v
	return &c, nil
}

func (f *fake) ListVolumes(context.Context) ([]api.Volume, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("list", "")
	var out []api.Volume
	for _, name := range slices.Sorted(maps.Keys(f.vols)) {
		out = append(out, *f.vols[name])
	}
	return out, nil
}

func (f *fake) AttachVolume(_ context.Context, name string, _ api.AttachOptions) (*api.Attachment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("attach", name)
	if f.attachErr != nil {
		return nil, f.attachErr
	}
	v, err := f.get(name)
	if err != nil {
		return nil, err
	}
	if a := v.Attachment; a != nil && a.Node != f.node {
		return nil, fmt.Errorf("volume %q is attached on node %s and that node is up; detach it there first: %w", name, a.Node, api.ErrInUse)
	}
	if v.Attachment == nil {
		v.Attachment = &api.Attachment{Volume: name, Node: f.node, Epoch: v.Epoch + 1, MountPath: "/var/lib/ballast/mounts/" + name, Since: time.Now()}
		v.Epoch++
	}
	a := *v.Attachment
	return &a, nil
}

func (f *fake) DetachVolume(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("detach", name)
	if f.detachErr != nil {
		return f.detachErr
	}
	v, err := f.get(name)
	if err != nil {
		return err
	}
	if a := v.Attachment; a != nil && a.Node != f.node {
		return fmt.Errorf("volume %q is attached on node %s, not on this node: %w", name, a.Node, api.ErrInUse)
	}
	v.Attachment = nil
	return nil
}

func (f *fake) CreateSnapshot(context.Context, string, string) (*api.Snapshot, error) {
	return nil, fmt.Errorf("fake: no snapshots: %w", api.ErrNotFound)
}

func (f *fake) DeleteSnapshot(context.Context, string, string) error {
	return fmt.Errorf("fake: no snapshots: %w", api.ErrNotFound)
}

func (f *fake) ListSnapshots(context.Context, string) ([]api.Snapshot, error) { return nil, nil }
func (f *fake) ListPools(context.Context) ([]api.Pool, error)                 { return nil, nil }
func (f *fake) ClusterStatus(context.Context) ([]api.Node, error)             { return nil, nil }
