package replica

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ballast-io/ballast/pool/block"
)

// Sentinel errors, wrapped with context by the functions that return them.
var (
	ErrExists   = errors.New("already exists")
	ErrNotFound = errors.New("not found")
	ErrInUse    = errors.New("in use")
	// ErrShrink is the error of a Resize to a smaller size.
	ErrShrink = errors.New("a replica cannot shrink")
)

// Store is the set of replicas in one pool directory. It owns the layer files
// they share and opens each layer once, however many open replicas use it.
// Safe for concurrent use.
type Store struct {
	dir string

	mu     sync.Mutex // guards open, layers and every metadata write
	open   map[string]*Replica
	layers map[string]*layer // open layers by ID
}

// OpenStore opens the pool directory dir, creating its layers/ and replicas/
// subdirectories if missing, and removes what a crash may have left behind:
// temporary metadata files and layers no replica references.
func OpenStore(dir string) (*Store, error) {
	for _, sub := range []string{"layers", "replicas"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("open store %s: %w", dir, err)
		}
	}
	s := &Store{dir: dir, open: map[string]*Replica{}, layers: map[string]*layer{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.gcLocked(true); err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	return s, nil
}

// Dir returns the pool directory.
func (s *Store) Dir() string { return s.dir }

// Create creates and opens an empty replica of size bytes.
func (s *Store) Create(id string, size int64) (*Replica, error) {
	if !validID(id) {
		return nil, fmt.Errorf("create replica %q: invalid id", id)
	}
	if size <= 0 || size%block.Size != 0 {
		return nil, fmt.Errorf("create replica %s: size %d: %w", id, size, block.ErrUnaligned)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.existsLocked(id) {
		return nil, fmt.Errorf("create replica %s: %w", id, ErrExists)
	}
	m := meta{ID: id, Size: size, Layers: []string{newLayerID()}, Snapshots: map[string]string{}, Created: map[string]time.Time{}}
	return s.createLocked(m)
}

// Clone creates and opens a replica whose content is that of snapshot snap
// of replica srcID. It shares the source's frozen layers up to the
// snapshot's and writes to a new head of its own, so writes to either
// replica never show in the other.
func (s *Store) Clone(id, srcID, snap string) (*Replica, error) {
	if !validID(id) {
		return nil, fmt.Errorf("clone replica %q: invalid id", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.existsLocked(id) {
		return nil, fmt.Errorf("clone replica %s: %w", id, ErrExists)
	}
	// Every metadata write holds s.mu, so the file is current even when the
	// source is open.
	src, err := readMeta(s.dir, srcID)
	if err != nil {
		return nil, fmt.Errorf("clone replica %s: %w", id, err)
	}
	lid, ok := src.Snapshots[snap]
	if !ok {
		return nil, fmt.Errorf("clone replica %s: snapshot %s@%s: %w", id, srcID, snap, ErrNotFound)
	}
	i := indexOf(src.Layers, lid)
	if i < 0 {
		return nil, fmt.Errorf("clone replica %s: snapshot %s@%s: layer %s not in chain", id, srcID, snap, lid)
	}
	layers := append(append([]string{}, src.Layers[:i+1]...), newLayerID())
	// The clone has the size the source had at the snapshot.
	size := src.layerSize(lid)
	m := meta{ID: id, Size: size, Layers: layers, Snapshots: map[string]string{}, Created: map[string]time.Time{}, Origin: srcID + "@" + snap}
	for _, l := range layers[:i+1] {
		if sz := src.layerSize(l); sz != size {
			if m.LayerSizes == nil {
				m.LayerSizes = map[string]int64{}
			}
			m.LayerSizes[l] = sz
		}
	}
	return s.createLocked(m)
}

// createLocked creates m's head layer, writes m and opens the replica.
func (s *Store) createLocked(m meta) (*Replica, error) {
	if err := createLayer(s.dir, m.head(), m.Size); err != nil {
		return nil, fmt.Errorf("create replica %s: %w", m.ID, err)
	}
	if err := writeMeta(s.dir, m); err != nil {
		removeLayerFiles(s.dir, m.head())
		return nil, fmt.Errorf("create replica %s: %w", m.ID, err)
	}
	return s.openLocked(m)
}

// Open opens an existing replica. A replica can be open only once at a time.
func (s *Store) Open(id string) (*Replica, error) {
	if !validID(id) {
		return nil, fmt.Errorf("open replica %q: invalid id: %w", id, fs.ErrNotExist)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[id] != nil {
		return nil, fmt.Errorf("open replica %s: %w", id, ErrInUse)
	}
	m, err := readMeta(s.dir, id)
	if err != nil {
		return nil, fmt.Errorf("open replica: %w", err)
	}
	return s.openLocked(m)
}

func (s *Store) openLocked(m meta) (*Replica, error) {
	var ls []*layer
	for _, lid := range m.Layers {
		l := s.layers[lid]
		if l == nil {
			var err error
			if l, err = openLayer(s.dir, lid, m.layerSize(lid)); err != nil {
				for _, l := range ls {
					s.releaseLocked(l)
				}
				return nil, fmt.Errorf("open replica %s: %w", m.ID, err)
			}
			s.layers[lid] = l
		}
		l.refs++
		ls = append(ls, l)
	}
	r := &Replica{s: s, id: m.ID, layers: ls, meta: m}
	r.size.Store(m.Size)
	s.open[m.ID] = r
	return r, nil
}

// releaseLocked drops one open replica's use of l, closing it when unused.
func (s *Store) releaseLocked(l *layer) {
	l.refs--
	if l.refs == 0 {
		l.close()
		delete(s.layers, l.id)
	}
}

// Exists reports whether replica id exists.
func (s *Store) Exists(id string) bool {
	if !validID(id) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.existsLocked(id)
}

func (s *Store) existsLocked(id string) bool {
	_, err := os.Stat(metaPath(s.dir, id))
	return err == nil
}

// List returns the IDs of the replicas in the store, sorted.
func (s *Store) List() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return listIDs(s.dir)
}

// Delete removes replica id and every layer no other replica references.
// It fails with ErrInUse while the replica is open and succeeds if the
// replica does not exist.
func (s *Store) Delete(id string) error {
	if !validID(id) {
		return fmt.Errorf("delete replica %q: invalid id", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[id] != nil {
		return fmt.Errorf("delete replica %s: %w", id, ErrInUse)
	}
	if err := os.Remove(metaPath(s.dir, id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete replica %s: %w", id, err)
	}
	if err := syncDir(filepath.Join(s.dir, "replicas")); err != nil {
		return fmt.Errorf("delete replica %s: %w", id, err)
	}
	if err := s.gcLocked(false); err != nil {
		return fmt.Errorf("delete replica %s: %w", id, err)
	}
	return nil
}

// Usage returns the bytes allocated by all layer files of the store and
// the capacity of the filesystem holding it.
func (s *Store) Usage() (allocated, capacity int64, err error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "layers"))
	if err != nil {
		return 0, 0, fmt.Errorf("store usage: %w", err)
	}
	for _, e := range ents {
		var st unix.Stat_t
		if unix.Stat(filepath.Join(s.dir, "layers", e.Name()), &st) == nil {
			allocated += st.Blocks * 512
		}
	}
	var fsst unix.Statfs_t
	if err := unix.Statfs(s.dir, &fsst); err != nil {
		return 0, 0, fmt.Errorf("store usage: statfs %s: %w", s.dir, err)
	}
	return allocated, int64(fsst.Blocks) * fsst.Bsize, nil
}

// references returns the IDs of the layers referenced by the metadata of
// every replica except skip.
func (s *Store) references(skip string) (map[string]bool, error) {
	ids, err := listIDs(s.dir)
	if err != nil {
		return nil, err
	}
	refs := map[string]bool{}
	for _, id := range ids {
		if id == skip {
			continue
		}
		m, err := readMeta(s.dir, id)
		if err != nil {
			return nil, err
		}
		for _, l := range m.Layers {
			refs[l] = true
		}
	}
	return refs, nil
}

// gcLocked removes layers that no replica references and, when tmp is set
// (no metadata write can be in progress), leftover temporary metadata files.
// It removes nothing if any metadata cannot be read.
func (s *Store) gcLocked(tmp bool) error {
	rdir := filepath.Join(s.dir, "replicas")
	if tmp {
		ents, err := os.ReadDir(rdir)
		if err != nil {
			return fmt.Errorf("gc: %w", err)
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), tmpPrefix) {
				os.Remove(filepath.Join(rdir, e.Name()))
			}
		}
	}
	refs, err := s.references("")
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	ldir := filepath.Join(s.dir, "layers")
	ents, err := os.ReadDir(ldir)
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	var errs []error
	for _, e := range ents {
		name := e.Name()
		lid := strings.TrimSuffix(name, ".data")
		if lid == name || refs[lid] || s.layers[lid] != nil {
			continue
		}
		if err := os.Remove(filepath.Join(ldir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	return nil
}

func newLayerID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func indexOf(ids []string, id string) int {
	for i, v := range ids {
		if v == id {
			return i
		}
	}
	return -1
}

// Allocated returns the bytes held by the layers of replica id, open or
// not, counted like Replica.Allocated, without opening it.
func (s *Store) Allocated(id string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := readMeta(s.dir, id)
	if err != nil {
		return 0, fmt.Errorf("replica %s: %w", id, err)
	}
	var total int64
	for _, l := range m.Layers {
		var st unix.Stat_t
		if err := unix.Stat(layerPath(s.dir, l), &st); err != nil {
			return 0, fmt.Errorf("replica %s layer %s: %w", id, l, err)
		}
		total += st.Blocks * 512
	}
	return total, nil
}
