package driver

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzRefsFile: whatever the mounts file holds, load returns an error or
// entries that name valid volumes with a path and IDs, and those entries
// survive a save and a load unchanged.
func FuzzRefsFile(f *testing.F) {
	f.Add([]byte(`{"volumes":{"v1":{"path":"/var/lib/ballast/mounts/v1","ids":["a","b"]}}}`))
	f.Add([]byte(`{"volumes":{"../x":{"path":"/p","ids":["a"]}}}`))
	f.Add([]byte(`{"volumes":{"v1":{"path":"","ids":[]}}}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		file := &refsFile{path: filepath.Join(dir, "m.json")}
		if err := os.WriteFile(file.path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		recs, err := file.load()
		if err != nil {
			return
		}
		for vol, r := range recs {
			if _, err := volumeName(vol); err != nil || r.Path == "" || len(r.IDs) == 0 {
				t.Fatalf("loaded a bad entry %q: %+v", vol, r)
			}
		}
		if err := file.save(recs); err != nil {
			t.Fatal(err)
		}
		again, err := file.load()
		if err != nil {
			t.Fatalf("reload of a saved file: %v", err)
		}
		if !maps.EqualFunc(recs, again, func(a, b refsRecord) bool {
			return a.Path == b.Path && slices.Equal(a.IDs, b.IDs)
		}) {
			t.Fatalf("saved %+v, loaded %+v", recs, again)
		}
	})
}
