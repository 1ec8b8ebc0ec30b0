package driver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"github.com/ballast-io/ballast/pool/atomicfile"
)

// refsFile keeps the Docker mount IDs using each volume on this node in a
// file of the daemon's data dir, so that they outlive a restart of the
// daemon: a container started before the restart then detaches its
// volume when it stops, as any other does. Each change replaces the file
// whole (atomicfile.Write).
type refsFile struct {
	path string
}

// refsRecord is one volume's entry in the file.
type refsRecord struct {
	Path string   `json:"path"` // where the volume is mounted
	IDs  []string `json:"ids"`  // the mount IDs using it, sorted
}

type refsDoc struct {
	Volumes map[string]refsRecord `json:"volumes"`
}

// load reads the file; a missing file is no volumes.
func (f *refsFile) load() (map[string]refsRecord, error) {
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]refsRecord{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read docker mount IDs: %w", err)
	}
	var doc refsDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("docker mount IDs in %s: %w", f.path, err)
	}
	out := map[string]refsRecord{}
	for vol, r := range doc.Volumes {
		if _, err := volumeName(vol); err != nil || len(r.IDs) == 0 || r.Path == "" {
			return nil, fmt.Errorf("docker mount IDs in %s: bad entry for volume %q", f.path, vol)
		}
		out[vol] = r
	}
	return out, nil
}

// save replaces the file with vols.
func (f *refsFile) save(vols map[string]refsRecord) error {
	doc := refsDoc{Volumes: vols}
	for _, r := range vols {
		slices.Sort(r.IDs)
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("save docker mount IDs: %w", err)
	}
	if err := atomicfile.Write(f.path, b, 0o600); err != nil {
		return fmt.Errorf("save docker mount IDs: %w", err)
	}
	return nil
}
