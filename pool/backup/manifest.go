package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// manifestFormat is the version of the manifest layout.
const manifestFormat = 1

// Manifest describes one backup: the volume it was taken of and, for each
// chunk of the volume, the address of its content ("" for zeros). A
// restore needs only the manifest and the chunks it names, whatever
// backups came before it.
type Manifest struct {
	Format   int       `json:"format"`
	ID       string    `json:"id"`
	Volume   string    `json:"volume"`
	Snapshot string    `json:"snapshot"`
	Created  time.Time `json:"created"`
	// Size is the volume's size at the snapshot.
	Size      int64 `json:"size"`
	ChunkSize int64 `json:"chunk_size"`
	// Parent is the backup this one was taken incrementally on: chunks
	// the snapshot layers said were unchanged since it were not read.
	Parent string   `json:"parent,omitempty"`
	Chunks []string `json:"chunks"`
	// Uploaded is what this backup added to the target, compressed.
	Uploaded int64 `json:"uploaded"`
	// Volume is what the node needs to make a volume like it on restore
	// (filesystem, encryption and its wrapped key, ...), opaque here.
	VolumeSpec json.RawMessage `json:"volume_spec,omitempty"`
}

func manifestKey(id string) string { return "backups/" + id + ".json" }

// idOfKey returns the backup ID of a manifest key, or "".
func idOfKey(key string) string {
	id, ok := strings.CutPrefix(key, "backups/")
	if !ok {
		return ""
	}
	id, ok = strings.CutSuffix(id, ".json")
	if !ok || !ValidID(id) {
		return ""
	}
	return id
}

// ValidID reports whether id can name a backup: 1-128 of a-z, A-Z, 0-9,
// '-', '_', '.', not starting with '.'.
func ValidID(id string) bool {
	if id == "" || len(id) > 128 || id[0] == '.' {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// ParseManifest parses and checks a manifest.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w: %w", ErrInvalid, err)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("manifest %s: %w: %w", m.ID, ErrInvalid, err)
	}
	return &m, nil
}

func (m *Manifest) check() error {
	switch {
	case m.Format != manifestFormat:
		return fmt.Errorf("format %d, this build reads %d", m.Format, manifestFormat)
	case !ValidID(m.ID):
		return fmt.Errorf("backup ID %q is not valid", m.ID)
	case m.ChunkSize <= 0 || m.ChunkSize > ChunkSize*64 || m.ChunkSize%4096 != 0:
		return fmt.Errorf("chunk size %d", m.ChunkSize)
	case m.Size <= 0 || m.Size%4096 != 0:
		return fmt.Errorf("size %d", m.Size)
	case int64(len(m.Chunks)) != (m.Size+m.ChunkSize-1)/m.ChunkSize:
		return fmt.Errorf("%d chunks for %d bytes in chunks of %d", len(m.Chunks), m.Size, m.ChunkSize)
	}
	for i, a := range m.Chunks {
		if a != "" && !validAddr(a) {
			return fmt.Errorf("chunk %d: address %q", i, a)
		}
	}
	return nil
}

func validAddr(a string) bool {
	if len(a) != 64 {
		return false
	}
	for i := 0; i < len(a); i++ {
		if c := a[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// chunkLen is the length of chunk i of m: ChunkSize but for the last.
func (m *Manifest) chunkLen(i int) int64 {
	return min(m.ChunkSize, m.Size-int64(i)*m.ChunkSize)
}

// Get reads and checks the manifest of backup id.
func Get(ctx context.Context, t Target, id string) (*Manifest, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("backup %q: %w: not a backup ID", id, ErrInvalid)
	}
	b, err := t.Get(ctx, manifestKey(id))
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", id, err)
	}
	m, err := ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("backup %s in %s: %w", id, t, err)
	}
	if m.ID != id {
		return nil, fmt.Errorf("backup %s in %s: %w: the manifest names backup %s", id, t, ErrCorrupt, m.ID)
	}
	return m, nil
}

// List reads the manifests of every backup in t, oldest first.
func List(ctx context.Context, t Target) ([]*Manifest, error) {
	keys, err := t.List(ctx, "backups/")
	if err != nil {
		return nil, err
	}
	var out []*Manifest
	for _, k := range keys {
		id := idOfKey(k)
		if id == "" {
			continue
		}
		m, err := Get(ctx, t, id)
		if errors.Is(err, ErrNotExist) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *Manifest) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}
