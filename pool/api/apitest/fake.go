// Package apitest is an in-memory api.Service of one node of a cluster, for
// the tests of the service's adapters (the Docker plugin, the CSI driver),
// and the contract (Contract) that holds it to the real service: the same
// test runs against the fake here and against a real daemon in
// cmd/ballast, so the adapters' tests cannot pass on rules the service
// does not have.
package apitest

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

// Fake is an in-memory api.Service of node Node. It follows the real
// service's rules where its callers depend on them (Contract lists them),
// records every call, and lets a test play the rest of the cluster: other
// nodes up or down, volumes attached on them, attaches and detaches that
// fail.
type Fake struct {
	Node string

	mu        sync.Mutex
	up        map[string]bool // the nodes of the cluster
	vols      map[string]*api.Volume
	snaps     map[string]api.Snapshot // by VOL@SNAP
	secrets   map[string]api.Secret
	passes    map[string]string // a volume's passphrase given per call
	calls     []string
	resized   []string
	attachErr error
	detachErr error
}

var _ api.Service = (*Fake)(nil)

// New returns a fake of node, the only node of its cluster, up.
func New(node string) *Fake {
	return &Fake{Node: node, up: map[string]bool{node: true}, vols: map[string]*api.Volume{}, snaps: map[string]api.Snapshot{}, secrets: map[string]api.Secret{}, passes: map[string]string{}}
}

// SetUp adds node to the cluster, up or down.
func (f *Fake) SetUp(node string, up bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.up[node] = up
}

// AttachOn marks volume name as attached on node.
func (f *Fake) AttachOn(name, node string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.vols[name]
	v.Epoch++
	v.Attachment = &api.Attachment{Volume: name, Node: node, Epoch: v.Epoch, MountPath: "/var/lib/ballast/mounts/" + name, Since: time.Now()}
}

// DetachOn releases volume name's attachment wherever it is, as the
// cluster does for a node declared down.
func (f *Fake) DetachOn(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vols[name].Attachment = nil
}

// Attachment is a copy of volume name's attachment, nil when it has none.
func (f *Fake) Attachment(name string) *api.Attachment {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v := f.vols[name]; v != nil && v.Attachment != nil {
		a := *v.Attachment
		return &a
	}
	return nil
}

// Volume is a copy of volume name, nil when it does not exist.
func (f *Fake) Volume(name string) *api.Volume {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v := f.vols[name]; v != nil {
		c := *v
		return &c
	}
	return nil
}

// Edit changes volume name in place, for states the service's calls do
// not make (a replica out of sync on another node, say).
func (f *Fake) Edit(name string, edit func(*api.Volume)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	edit(f.vols[name])
}

// Volumes is how many volumes exist.
func (f *Fake) Volumes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.vols)
}

// HasSnapshot says whether snapshot VOL@SNAP exists.
func (f *Fake) HasSnapshot(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.snaps[id]
	return ok
}

// Count is how many calls of op ("create", "attach", ...) the fake saw.
func (f *Fake) Count(op string) int {
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

// Resized lists the volumes ResizeVolume grew since the last call, in
// order, and forgets them.
func (f *Fake) Resized() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.resized
	f.resized = nil
	return r
}

// FailAttach makes every AttachVolume fail with err; nil stops it.
func (f *Fake) FailAttach(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attachErr = err
}

// FailDetach makes every DetachVolume fail with err; nil stops it.
func (f *Fake) FailDetach(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.detachErr = err
}

func (f *Fake) record(op, name string) { f.calls = append(f.calls, op+" "+name) }

func (f *Fake) get(name string) (*api.Volume, error) {
	if err := spec.ValidateName("volume name", name); err != nil {
		return nil, err
	}
	v := f.vols[name]
	if v == nil {
		return nil, fmt.Errorf("volume %q does not exist (see 'ballast volume list'): %w", name, api.ErrNotFound)
	}
	return v, nil
}

func (f *Fake) CreateVolume(_ context.Context, s spec.Volume, opts api.CreateOptions) (*api.Volume, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("create", s.Name)
	if err := s.Normalize(); err != nil {
		return nil, err
	}
	pass := string(opts.Passphrase)
	switch {
	case len(pass) > api.MaxPassphrase:
		return nil, fmt.Errorf("%w: the passphrase is too long", api.ErrInvalid)
	case pass != "" && s.SecretKey != "":
		return nil, fmt.Errorf("%w: volume %q names a secret key and a passphrase was given too", api.ErrInvalid, s.Name)
	case pass != "" && !s.Encrypted && s.FromSnapshot == "":
		return nil, fmt.Errorf("%w: a passphrase was given but volume %q is not encrypted", api.ErrInvalid, s.Name)
	case pass == "" && s.Encrypted && s.SecretKey == "" && s.FromSnapshot == "":
		return nil, fmt.Errorf("%w: encrypted volume %q needs a passphrase: a secret key or one given with the call", api.ErrInvalid, s.Name)
	}
	if old := f.vols[s.Name]; old != nil {
		if err := api.MatchSpec(old.Volume, s); err != nil {
			return nil, err
		}
		if err := f.checkPass(old, pass, true); err != nil {
			return nil, err
		}
		c := *old
		return &c, nil
	}
	nodes := []string{f.Node}
	if s.FromSnapshot != "" {
		sn, ok := f.snaps[s.FromSnapshot]
		if !ok {
			return nil, fmt.Errorf("snapshot %s does not exist: %w", s.FromSnapshot, api.ErrNotFound)
		}
		src := f.vols[sn.Volume]
		s.Size, s.FS, s.Repl = cmp.Or(s.Size, sn.Size), cmp.Or(s.FS, src.FS), cmp.Or(s.Repl, src.Repl)
		if s.Encrypted && !src.Encrypted || s.SecretKey != "" && s.SecretKey != src.SecretKey {
			return nil, fmt.Errorf("%w: a clone of %s is encrypted as its source is", api.ErrInvalid, s.FromSnapshot)
		}
		s.Encrypted, s.SecretKey = src.Encrypted, src.SecretKey
		if err := f.checkPass(src, pass, true); err != nil {
			return nil, err
		}
		if pass = f.passes[src.Name]; pass != "" {
			defer func() { f.passes[s.Name] = pass }()
		}
		switch {
		case s.Size != sn.Size:
			return nil, fmt.Errorf("%w: a clone of %s has its size %s", api.ErrInvalid, s.FromSnapshot, spec.FormatSize(sn.Size))
		case s.FS != src.FS:
			return nil, fmt.Errorf("%w: a clone of %s has its filesystem %s", api.ErrInvalid, s.FromSnapshot, src.FS)
		case s.Repl > src.Repl:
			return nil, fmt.Errorf("%w: a clone's repl can be at most %d", api.ErrInvalid, src.Repl)
		}
	} else {
		if _, ok := f.secrets[s.SecretKey]; s.Encrypted && s.SecretKey != "" && !ok {
			return nil, fmt.Errorf("secret %q does not exist: %w", s.SecretKey, api.ErrNotFound)
		}
		if pass != "" {
			f.passes[s.Name] = pass
		}
		for i := 1; len(nodes) < s.Repl; i++ {
			nodes = append(nodes, fmt.Sprintf("%s-peer%d", f.Node, i))
		}
	}
	v := &api.Volume{Volume: s, ID: "id-" + s.Name, State: "ready", Created: time.Now()}
	for i := range s.Repl {
		v.Replicas = append(v.Replicas, api.Replica{ID: fmt.Sprintf("%s-r%d", v.ID, i), Node: nodes[i%len(nodes)], InSync: true})
	}
	f.vols[s.Name] = v
	c := *v
	return &c, nil
}

// checkPass checks pass, given with a call on v: it must be v's passphrase
// given per call, and given unless optional.
func (f *Fake) checkPass(v *api.Volume, pass string, optional bool) error {
	want, perCall := f.passes[v.Name]
	switch {
	case !perCall && pass != "":
		return fmt.Errorf("%w: a passphrase was given, but volume %s has none given per call", api.ErrInvalid, v.Name)
	case perCall && pass == "" && !optional:
		return fmt.Errorf("volume %s is encrypted with a passphrase given per call, and none was given: %w", v.Name, api.ErrInvalid)
	case perCall && pass != "" && pass != want:
		return fmt.Errorf("volume %s: the passphrase given does not open its key: %w", v.Name, api.ErrInvalid)
	}
	return nil
}

// ChangePassphrase gives a volume with a passphrase given per call a new
// one.
func (f *Fake) ChangePassphrase(_ context.Context, volume string, old, value []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("change-passphrase", volume)
	v, err := f.get(volume)
	if err != nil {
		return err
	}
	if len(value) == 0 || len(value) > api.MaxPassphrase {
		return fmt.Errorf("%w: the new passphrase has %d bytes; give 1 to %d", api.ErrInvalid, len(value), api.MaxPassphrase)
	}
	if _, ok := f.passes[volume]; !ok {
		return fmt.Errorf("%w: volume %s has no passphrase given per call", api.ErrInvalid, volume)
	}
	if err := f.checkPass(v, string(old), false); err != nil {
		return err
	}
	f.passes[volume] = string(value)
	return nil
}

// clones lists the volumes made from a snapshot of vol (snap "") or from
// snapshot vol@snap.
func (f *Fake) clones(vol, snap string) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(f.vols)) {
		src, s, _ := strings.Cut(f.vols[name].FromSnapshot, "@")
		if src == vol && (snap == "" || s == snap) {
			out = append(out, name)
		}
	}
	return out
}

func (f *Fake) DeleteVolume(_ context.Context, name string) error {
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
	if c := f.clones(name, ""); len(c) > 0 {
		return fmt.Errorf("volume %q has clones that depend on its snapshots (%s); delete them first: %w", name, strings.Join(c, ", "), api.ErrInUse)
	}
	for id, sn := range f.snaps {
		if sn.Volume == name {
			delete(f.snaps, id)
		}
	}
	delete(f.vols, name)
	delete(f.passes, name)
	return nil
}

// ResizeVolume grows a volume that is detached or attached on this node;
// one attached on another node that is up is the other node's to grow.
func (f *Fake) ResizeVolume(_ context.Context, name string, size int64) (*api.Volume, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("resize", name)
	v, err := f.get(name)
	switch {
	case err != nil:
		return nil, err
	case size <= 0 || size > spec.MaxSize:
		return nil, fmt.Errorf("%w: size %d bytes", api.ErrInvalid, size)
	case (size+4095)&^4095 < v.Size:
		return nil, fmt.Errorf("%w: volume %q has %s; volumes only grow", api.ErrInvalid, name, spec.FormatSize(v.Size))
	case v.Attachment != nil && v.Attachment.Node != f.Node && !f.up[v.Attachment.Node]:
		return nil, fmt.Errorf("volume %q is attached on node %s, which is down: %w", name, v.Attachment.Node, api.ErrInUse)
	}
	v.Size = (size + 4095) &^ 4095
	f.resized = append(f.resized, name)
	c := *v
	return &c, nil
}

func (f *Fake) InspectVolume(_ context.Context, name string) (*api.Volume, error) {
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

func (f *Fake) ListVolumes(context.Context) ([]api.Volume, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("list", "")
	var out []api.Volume
	for _, name := range slices.Sorted(maps.Keys(f.vols)) {
		out = append(out, *f.vols[name])
	}
	return out, nil
}

// AttachVolume attaches a volume here, or returns its attachment here; a
// volume attached on another node that is up is in use there, one on a
// node that is down is taken over.
func (f *Fake) AttachVolume(_ context.Context, name string, opts api.AttachOptions) (*api.Attachment, error) {
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
	if a := v.Attachment; a != nil && a.Node != f.Node && f.up[a.Node] && !opts.Force {
		return nil, fmt.Errorf("volume %q is attached on node %s and that node is up; detach it there first: %w", name, a.Node, api.ErrInUse)
	}
	if a := v.Attachment; a != nil && a.Node == f.Node && a.Block != opts.Block {
		return nil, fmt.Errorf("volume %q is attached on this node already, as another kind; detach it first: %w", name, api.ErrInUse)
	}
	if err := f.checkPass(v, string(opts.Passphrase), false); err != nil {
		return nil, err
	}
	if a := v.Attachment; a == nil || a.Node != f.Node {
		v.Epoch++
		v.Attachment = &api.Attachment{Volume: name, Node: f.Node, Epoch: v.Epoch, Block: opts.Block, Since: time.Now()}
		if !opts.Block {
			v.Attachment.MountPath = "/var/lib/ballast/mounts/" + name
		}
	}
	a := *v.Attachment
	return &a, nil
}

// DetachVolume detaches a volume attached here; detaching one attached
// nowhere does nothing.
func (f *Fake) DetachVolume(_ context.Context, name string) error {
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
	if a := v.Attachment; a != nil && a.Node != f.Node {
		return fmt.Errorf("volume %q is attached on node %s, not on this node: %w", name, a.Node, api.ErrInUse)
	}
	v.Attachment = nil
	return nil
}

func (f *Fake) CreateSnapshot(_ context.Context, vol, name string) (*api.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("snapshot", vol)
	v, err := f.get(vol)
	if err != nil {
		return nil, err
	}
	if err := spec.ValidateName("snapshot name", name); err != nil {
		return nil, err
	}
	if _, ok := f.snaps[vol+"@"+name]; ok {
		return nil, fmt.Errorf("snapshot %q of volume %q already exists: %w", name, vol, api.ErrExists)
	}
	sn := api.Snapshot{Volume: vol, Name: name, State: "ready", Created: time.Now(), Size: v.Size}
	f.snaps[vol+"@"+name] = sn
	v.Snapshots++
	return &sn, nil
}

func (f *Fake) DeleteSnapshot(_ context.Context, vol, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("delete-snapshot", vol)
	id := vol + "@" + name
	if _, ok := f.snaps[id]; !ok {
		return fmt.Errorf("snapshot %s does not exist: %w", id, api.ErrNotFound)
	}
	if c := f.clones(vol, name); len(c) > 0 {
		return fmt.Errorf("snapshot %s has clones (%s); delete them first: %w", id, strings.Join(c, ", "), api.ErrInUse)
	}
	delete(f.snaps, id)
	f.vols[vol].Snapshots--
	return nil
}

func (f *Fake) ListSnapshots(_ context.Context, vol string) ([]api.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if vol != "" {
		if _, err := f.get(vol); err != nil {
			return nil, err
		}
	}
	var out []api.Snapshot
	for _, id := range slices.Sorted(maps.Keys(f.snaps)) {
		if sn := f.snaps[id]; vol == "" || sn.Volume == vol {
			sn.Clones = f.clones(sn.Volume, sn.Name)
			out = append(out, sn)
		}
	}
	return out, nil
}

// SetSecret keeps secret name (not its value: the fake encrypts nothing).
func (f *Fake) SetSecret(_ context.Context, name string, value []byte) (*api.Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := spec.ValidateName("secret name", name); err != nil {
		return nil, err
	}
	if len(value) == 0 {
		return nil, fmt.Errorf("%w: secret %q is empty", api.ErrInvalid, name)
	}
	if _, ok := f.secrets[name]; ok {
		return nil, fmt.Errorf("secret %q exists: %w", name, api.ErrExists)
	}
	sec := api.Secret{Name: name, Created: time.Now()}
	f.secrets[name] = sec
	return &sec, nil
}

func (f *Fake) ChangeSecret(_ context.Context, name string, value []byte) (*api.Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := spec.ValidateName("secret name", name); err != nil {
		return nil, err
	}
	if len(value) == 0 {
		return nil, fmt.Errorf("%w: secret %q is empty", api.ErrInvalid, name)
	}
	sec, ok := f.secrets[name]
	if !ok {
		return nil, fmt.Errorf("secret %q does not exist: %w", name, api.ErrNotFound)
	}
	return &sec, nil
}

func (f *Fake) ListSecrets(context.Context) ([]api.Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Secret
	for _, name := range slices.Sorted(maps.Keys(f.secrets)) {
		sec := f.secrets[name]
		sec.UsedBy = f.secretUsers(name)
		out = append(out, sec)
	}
	return out, nil
}

func (f *Fake) secretUsers(name string) []string {
	var users []string
	for _, v := range slices.Sorted(maps.Keys(f.vols)) {
		if f.vols[v].Encrypted && f.vols[v].SecretKey == name {
			users = append(users, v)
		}
	}
	return users
}

func (f *Fake) DeleteSecret(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.secrets[name]; !ok {
		return fmt.Errorf("secret %q does not exist: %w", name, api.ErrNotFound)
	}
	if users := f.secretUsers(name); len(users) > 0 {
		return fmt.Errorf("secret %q is used by %s: %w", name, strings.Join(users, ", "), api.ErrInUse)
	}
	delete(f.secrets, name)
	return nil
}

func (f *Fake) ListPools(context.Context) ([]api.Pool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Pool
	for _, n := range slices.Sorted(maps.Keys(f.up)) {
		out = append(out, api.Pool{ID: "p-" + n, Node: n, Capacity: 100 << 30, Allocated: 10 << 30, Online: f.up[n]})
	}
	return out, nil
}

func (f *Fake) ClusterStatus(context.Context) ([]api.Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Node
	for _, n := range slices.Sorted(maps.Keys(f.up)) {
		st := api.NodeDown
		if f.up[n] {
			st = api.NodeUp
		}
		out = append(out, api.Node{ID: n, State: st, Labels: map[string]string{"zone": "z-" + n}})
	}
	return out, nil
}
