// Package node is a Ballast daemon's node: it owns this machine's pool dirs,
// opens the replicas placed on them, runs the engine of every volume
// attached here, exposes it through the frontend, and keeps all of that in
// step with the cluster metadata in etcd. It implements api.Service.
package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/clusterca"
	"github.com/ballast-io/ballast/pool/engine"
	"github.com/ballast-io/ballast/pool/keyed"
	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/metrics"
	"github.com/ballast-io/ballast/pool/peer"
	"github.com/ballast-io/ballast/pool/remote"
	"github.com/ballast-io/ballast/pool/replica"
	"github.com/ballast-io/ballast/pool/spec"
)

// Frontend attaches a device on this node, as a mounted filesystem or as
// a raw block device, and grows it. frontend.Attacher is the real one.
type Frontend interface {
	Attach(ctx context.Context, name spec.Name, dev block.Device, fstype, mountPath string) (devPath string, err error)
	AttachBlock(ctx context.Context, name spec.Name, dev block.Device) (devPath string, err error)
	// Grow makes the device, and the filesystem mounted on it, take the
	// new size of dev; see frontend.Attacher.Grow.
	Grow(ctx context.Context, name spec.Name) error
	// Detach unmounts mountPath ("" for a raw block device) and removes
	// the device.
	Detach(ctx context.Context, name spec.Name, mountPath string) error
	// Shutdown lets go of a volume at daemon shutdown without waiting
	// for a busy filesystem's users (frontend.Attacher.Shutdown).
	Shutdown(ctx context.Context, name spec.Name, mountPath string) error
	// Abandon lets go of a volume at once, its users' I/O failing (for
	// a volume another node took over; frontend.Attacher.Abandon).
	Abandon(ctx context.Context, name spec.Name, mountPath string) error
	Recover(mountRoot string) error
	// FinishRecover gives up what Recover left for a takeover that no
	// attach took (see frontend.Attacher.FinishRecover).
	FinishRecover(mountRoot string) error
}

// Config says what a node is and where its files go.
type Config struct {
	ID       string
	DataDir  string
	PoolDirs []string
	MountDir string // where volumes are mounted; default DataDir/mounts
	LeaseTTL time.Duration
	Version  string
	Labels   map[string]string // e.g. zone=a, rack=r1, for placement and status
	// IO, when set, counts every attached volume's I/O for Prometheus.
	IO *metrics.IO
	// Addr is where this node serves its replicas to other nodes (empty:
	// it serves none); Secret authenticates the nodes of the cluster.
	Addr   string
	Secret []byte
	// AdmitMembers lets new nodes join through this node's peer service
	// (ballast daemon --join): the cluster runs its etcd on its
	// first nodes. With external etcd it is off and joins are refused.
	AdmitMembers bool
	// ReplicaTLS carries replica traffic between nodes in TLS 1.3 with
	// certificates of the cluster CA (encrypted), and refuses replica
	// connections in clear; off, it is authenticated by the HMAC
	// handshake and not encrypted. Every node of a cluster must agree.
	ReplicaTLS bool
	// RebuildDelay is how long a volume attached here may lack an in-sync
	// replica before a new one is rebuilt elsewhere; RebuildBPS caps the
	// rebuild's copy in bytes per second (0: no cap).
	RebuildDelay time.Duration
	RebuildBPS   int64
	// LocalityDelay is how long a volume attached here, on a node holding
	// no replica of it, waits before one is built here (data locality).
	LocalityDelay time.Duration
	// ScrubInterval is how often the volumes attached here are scrubbed (0:
	// never); ScrubBPS caps the scrub's reads in bytes per second.
	ScrubInterval time.Duration
	ScrubBPS      int64
	// Keys, when set, keeps the keys of the volumes attached here whose
	// passphrase was given per call across daemon restarts (the keeper);
	// without, such a volume is detached when the daemon restarts.
	Keys KeyKeeper
}

// Node is one daemon's share of the cluster.
type Node struct {
	cfg   Config
	meta  *meta.Store
	front Frontend
	beats *heartbeats // which nodes went silent though their lease runs
	log   *slog.Logger

	pools map[string]*pool // by pool ID
	order []string         // pool IDs in the order of Config.PoolDirs
	// locks serializes operations on the same volume within this node;
	// operations on one volume from different nodes are serialized by
	// etcd compare-and-swap.
	locks keyed.Mutex
	open  openSet        // replicas open on this node, shared with the replica server
	srv   *remote.Server // serves this node's replicas to others; nil without a secret
	// replicas dials the replicas on other nodes (in TLS with ReplicaTLS).
	replicas remote.Dialer
	// peerSrv serves this node's peerService to the other nodes, and peers
	// reaches theirs; nil without a secret.
	peerSrv *peer.Server
	peers   *peer.Dialer

	started time.Time // when this daemon started, for cluster status

	// bg is the daemon's context, for work that outlives a call (a
	// backup); jobs counts that work, and Shutdown waits for it.
	bg   context.Context
	jobs sync.WaitGroup

	mu       sync.Mutex
	attached map[string]*attachment // volumes attached here, by name
}

var _ api.Service = (*Node)(nil)

// pool is one pool dir of this node.
type pool struct {
	id    string
	dir   string
	store *replica.Store
}

// attachment is a volume attached on this node.
type attachment struct {
	vol       string
	name      spec.Name // vol, checked: what the frontend takes
	epoch     uint64    // of the attachment: I/O and record changes carry it
	engine    *engine.Engine
	mountPath string // "" for a raw block attachment
	device    string // the block device, e.g. /dev/loop3
	took      api.AttachTimes
	keptKey   bool // the keeper holds its key (a passphrase given per call)

	// ctx ends when the volume is released here; bg counts the background
	// work on it (scrub, rebuild), waited for before its replicas close.
	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup

	mu       sync.Mutex               // guards replicas: a rebuilt replica joins them
	replicas map[string]block.Replica // open replicas by ID, local or remote
	last     *engine.Rebuild          // the last rebuild started, guarded by mu
}

// lastRebuild returns the last rebuild started on the volume, or nil.
func (a *attachment) lastRebuild() *engine.Rebuild {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}

func (a *attachment) setRebuild(rb *engine.Rebuild) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last = rb
}

// start counts one piece of background work on the volume, unless it is
// being released.
func (a *attachment) start() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctx.Err() != nil {
		return false
	}
	a.bg.Add(1)
	return true
}

// stop ends the background work on the volume and waits for it. After it,
// start refuses new work.
func (a *attachment) stop() {
	a.mu.Lock()
	a.cancel()
	a.mu.Unlock()
	a.bg.Wait()
}

// member returns open replica id, or nil.
func (a *attachment) member(id string) block.Replica {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.replicas[id]
}

// members returns the open replicas by ID.
func (a *attachment) members() map[string]block.Replica {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.replicas)
}

// add makes m the open replica id, closing the handle it replaces (the
// one of a replica that left the in-sync set and came back).
func (a *attachment) add(id string, m block.Replica) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if old := a.replicas[id]; old != nil && old != m {
		old.Close()
	}
	a.replicas[id] = m
}

// New opens a node's pool dirs, registers the node in etcd, cleans up after
// a previous crash and re-attaches what was attached here.
func New(ctx context.Context, cfg Config, store *meta.Store, front Frontend, log *slog.Logger) (*Node, error) {
	if cfg.MountDir == "" {
		cfg.MountDir = filepath.Join(cfg.DataDir, "mounts")
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = 5 * time.Second
	}
	if len(cfg.PoolDirs) == 0 {
		cfg.PoolDirs = []string{filepath.Join(cfg.DataDir, "pool")}
	}
	n := &Node{cfg: cfg, meta: store, front: front, log: log, pools: map[string]*pool{}, attached: map[string]*attachment{}, started: time.Now().UTC(), bg: ctx}
	for _, dir := range cfg.PoolDirs {
		p, err := openPool(dir)
		if err != nil {
			return nil, err
		}
		if other, dup := n.pools[p.id]; dup {
			return nil, fmt.Errorf("pool dirs %s and %s are the same pool (id %s)", other.dir, dir, p.id)
		}
		n.pools[p.id] = p
		n.order = append(n.order, p.id)
	}
	if len(cfg.Secret) > 0 {
		srv, err := remote.NewServer(cfg.Secret, n.ServeReplica, log.With("component", "replica-server"))
		if err != nil {
			return nil, err
		}
		n.srv = srv
		if cfg.ReplicaTLS {
			srvTLS, cliTLS, err := clusterca.MutualTLS(cfg.Secret, cfg.ID)
			if err != nil {
				return nil, err
			}
			srv.UseTLS(srvTLS, false)
			n.replicas.TLS = cliTLS
		}
		if n.peerSrv, err = peer.NewServer(cfg.Secret, cfg.ID, peerService{n}, log.With("component", "peer-server")); err != nil {
			return nil, err
		}
		if n.peers, err = peer.NewDialer(cfg.Secret, cfg.ID); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cfg.MountDir, 0o755); err != nil {
		return nil, fmt.Errorf("mount dir: %w", err)
	}
	if err := n.register(ctx); err != nil {
		return nil, err
	}
	n.beats = newHeartbeats(cfg.ID, cfg.LeaseTTL)
	go n.watchHeartbeats(ctx)
	if err := n.meta.KeepAlive(ctx, cfg.ID, cfg.LeaseTTL); err != nil {
		return nil, err
	}
	if err := n.recover(ctx); err != nil {
		return nil, fmt.Errorf("recover node %s: %w", cfg.ID, err)
	}
	if err := n.recoverBackups(ctx); err != nil {
		return nil, fmt.Errorf("recover node %s: %w", cfg.ID, err)
	}
	go n.watchDeaths(ctx)
	go n.reportUsage(ctx)
	go n.healLoop(ctx)
	go n.scrubLoop(ctx)
	go n.scheduleLoop(ctx)
	return n, nil
}

// openPool opens a pool dir, giving it a stable ID on first use.
func openPool(dir string) (*pool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pool dir %s: %w", dir, err)
	}
	idFile := filepath.Join(dir, "pool.json")
	var rec struct {
		ID string `json:"id"`
	}
	b, err := os.ReadFile(idFile)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &rec); err != nil || rec.ID == "" {
			return nil, fmt.Errorf("pool dir %s: bad %s: %v", dir, idFile, err)
		}
	case errors.Is(err, os.ErrNotExist):
		rec.ID = "pool-" + newID()
		b, _ := json.Marshal(rec)
		if err := writeFileSync(idFile, b); err != nil {
			return nil, fmt.Errorf("pool dir %s: %w", dir, err)
		}
	default:
		return nil, fmt.Errorf("pool dir %s: %w", dir, err)
	}
	st, err := replica.OpenStore(dir)
	if err != nil {
		return nil, fmt.Errorf("pool dir %s: %w", dir, err)
	}
	return &pool{id: rec.ID, dir: dir, store: st}, nil
}

// writeFileSync writes a small file atomically and durably.
func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// register writes this node's record with its pools.
func (n *Node) register(ctx context.Context) error {
	rec := &meta.Node{ID: n.cfg.ID, Addr: n.cfg.Addr, Version: n.cfg.Version, Labels: n.cfg.Labels, Started: n.started}
	for _, id := range n.order {
		p := n.pools[id]
		alloc, capacity, err := p.store.Usage()
		if err != nil {
			return fmt.Errorf("pool dir %s: %w", p.dir, err)
		}
		rec.Pools = append(rec.Pools, meta.Pool{ID: id, Node: n.cfg.ID, Dir: p.dir, Capacity: capacity, Allocated: alloc})
	}
	if err := n.meta.PutNode(ctx, rec); err != nil {
		return fmt.Errorf("register node %s: %w", n.cfg.ID, err)
	}
	return nil
}

// attachments returns the volumes attached here now.
func (n *Node) attachments() []*attachment {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Collect(maps.Values(n.attached))
}

// reportUsage refreshes this node's record (pool capacity and use) every
// 10 s, so that other nodes place replicas by current figures.
func (n *Node) reportUsage(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := n.register(ctx); err != nil && ctx.Err() == nil {
				n.log.Warn("report pool usage", "err", err)
			}
		}
	}
}

// Shutdown stops the node when the daemon stops. With keep (a keeper holds
// the volumes' kernel side for the next daemon), every attached volume is
// left exactly as it is, mounted and serving until the process exits: the
// next daemon takes it over with the requests that queued meanwhile.
// Without, each volume is let go of at once (frontend Shutdown: synced,
// an idle one unmounted cleanly, a busy one abandoned rather than waited
// for). Either way the attachment records stay: the next daemon on this
// node attaches the volumes again.
func (n *Node) Shutdown(ctx context.Context, keep bool) error {
	var errs []error
	for _, a := range n.attachments() {
		unlock := n.locks.Lock(a.vol)
		if keep {
			a.stop() // no rebuild or scrub half-way; the next daemon resumes them
			n.log.Info("volume left attached and mounted for the next daemon", "volume", a.vol, "mount", a.mountPath)
		} else {
			errs = append(errs, n.letGo(ctx, a, n.front.Shutdown))
		}
		unlock()
	}
	if n.srv != nil {
		errs = append(errs, n.srv.Close())
		n.peerSrv.Stop()
	}
	// Backups end with the daemon's context; their records say so.
	done := make(chan struct{})
	go func() { n.jobs.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("backups still running: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}

// getVolume reads a volume's record, with a not-found error users can act on.
func (n *Node) getVolume(ctx context.Context, name string) (*meta.Volume, meta.Rev, error) {
	v, rev, err := n.meta.Volume(ctx, name)
	if errors.Is(err, meta.ErrNotFound) {
		return nil, 0, fmt.Errorf("volume %q does not exist (see 'ballast volume list'): %w", name, api.ErrNotFound)
	}
	return v, rev, err
}

// conflict maps a lost compare-and-swap to the service's error.
func conflict(what string, err error) error {
	if errors.Is(err, meta.ErrConflict) {
		return fmt.Errorf("%s: %w", what, api.ErrConflict)
	}
	return fmt.Errorf("%s: %w", what, err)
}
