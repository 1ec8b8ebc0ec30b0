package replica

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// meta is the content of replicas/<id>.json.
type meta struct {
	ID        string               `json:"id"`
	Size      int64                `json:"size"`
	Layers    []string             `json:"layers"`           // bottom..head
	Snapshots map[string]string    `json:"snapshots"`        // name -> layer ID
	Created   map[string]time.Time `json:"created"`          // name -> snapshot time
	Origin    string               `json:"origin,omitempty"` // "replica@snapshot" for a clone
	// Epoch is the highest attachment epoch this replica was fenced at;
	// I/O from an older attachment is refused, by the replica's server
	// and by an Owner on the replica's own node.
	Epoch uint64 `json:"epoch,omitempty"`
	// LayerSizes holds the size of each layer made before the replica
	// grew (Resize): a layer's size is fixed when it is made. Layers not
	// listed have Size.
	LayerSizes map[string]int64 `json:"layer_sizes,omitempty"`
}

func (m *meta) head() string { return m.Layers[len(m.Layers)-1] }

// layerSize is the size layer lid was made with.
func (m *meta) layerSize(lid string) int64 {
	if sz, ok := m.LayerSizes[lid]; ok {
		return sz
	}
	return m.Size
}

func (m *meta) clone() meta {
	c := *m
	c.Layers = slices.Clone(m.Layers)
	c.Snapshots = make(map[string]string, len(m.Snapshots))
	for k, v := range m.Snapshots {
		c.Snapshots[k] = v
	}
	c.Created = make(map[string]time.Time, len(m.Created))
	for k, v := range m.Created {
		c.Created[k] = v
	}
	c.LayerSizes = maps.Clone(m.LayerSizes)
	return c
}

func metaPath(dir, id string) string { return filepath.Join(dir, "replicas", id+".json") }

// tmpPrefix starts the name of a metadata file being written; such files
// are ignored by List and removed when the store is opened.
const tmpPrefix = ".tmp-"

func readMeta(dir, id string) (meta, error) {
	var m meta
	b, err := os.ReadFile(metaPath(dir, id))
	if err != nil {
		return m, fmt.Errorf("replica %s: %w", id, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("replica %s: parse metadata: %w", id, err)
	}
	if len(m.Layers) == 0 {
		return m, fmt.Errorf("replica %s: metadata has no layers", id)
	}
	if m.Snapshots == nil {
		m.Snapshots = map[string]string{}
	}
	if m.Created == nil {
		m.Created = map[string]time.Time{}
	}
	return m, nil
}

// writeMeta replaces replicas/<id>.json atomically: temp file, fsync,
// rename, fsync of the directory.
func writeMeta(dir string, m meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("replica %s: encode metadata: %w", m.ID, err)
	}
	rdir := filepath.Join(dir, "replicas")
	f, err := os.CreateTemp(rdir, tmpPrefix+m.ID+"-*")
	if err != nil {
		return fmt.Errorf("replica %s: write metadata: %w", m.ID, err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, metaPath(dir, m.ID))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("replica %s: write metadata: %w", m.ID, err)
	}
	if err := syncDir(rdir); err != nil {
		return fmt.Errorf("replica %s: write metadata: %w", m.ID, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// listIDs returns the IDs of the replicas with metadata in dir, sorted.
func listIDs(dir string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(dir, "replicas"))
	if err != nil {
		return nil, fmt.Errorf("list replicas: %w", err)
	}
	var ids []string
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, tmpPrefix) || !strings.HasSuffix(name, ".json") || e.IsDir() {
			continue
		}
		ids = append(ids, strings.TrimSuffix(name, ".json"))
	}
	return ids, nil
}

// validID reports whether id is usable as a file name.
func validID(id string) bool {
	if id == "" || len(id) > 200 || id[0] == '.' {
		return false
	}
	for _, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}
