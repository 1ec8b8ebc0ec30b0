package driver

import (
	"maps"
	"slices"
	"sync"
)

// mounts counts, per volume, the Docker mount IDs using it on this node.
// Docker calls Mount once per container start with a fresh ID and Unmount
// with the same ID when the container stops, so the first ID attaches the
// volume and the last one to go detaches it. With a file (see refsFile)
// the IDs outlive a restart of the daemon; without, Docker may unmount
// IDs the daemon never saw, and such a volume stays attached.
type mounts struct {
	mu     sync.Mutex
	vols   map[string]*volMounts
	file   *refsFile   // nil: in memory only
	onSave func(error) // told when the file could not be saved
}

// volMounts is one volume's entry. Its lock is held across the attach or
// detach, so a mount and an unmount of the same volume never interleave
// (an unmount's detach cannot undo a concurrent mount's attach).
type volMounts struct {
	lock  sync.Mutex
	users int             // goroutines holding or waiting for lock; guarded by mounts.mu
	ids   map[string]bool // changed with lock and mounts.mu held
	path  string          // where the volume is mounted while ids is not empty (set with lock held, ids empty or restored)
	// restored: ids were read from the file at start and the volume may
	// have been detached or taken over since; checked at the next mount.
	restored bool
}

func newMounts() *mounts { return &mounts{vols: map[string]*volMounts{}} }

// loadMounts returns counts kept in file, with the IDs it holds.
func loadMounts(file *refsFile, onSave func(error)) (*mounts, error) {
	m := &mounts{vols: map[string]*volMounts{}, file: file, onSave: onSave}
	recs, err := file.load()
	if err != nil {
		return m, err
	}
	for vol, r := range recs {
		e := &volMounts{ids: map[string]bool{}, path: r.Path, restored: true}
		for _, id := range r.IDs {
			e.ids[id] = true
		}
		m.vols[vol] = e
	}
	return m, nil
}

// change applies fn to e's IDs and saves every volume's IDs to the file.
// The caller holds e.lock.
func (m *mounts) change(e *volMounts, fn func(ids map[string]bool)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fn(e.ids)
	if m.file == nil {
		return
	}
	recs := map[string]refsRecord{}
	for vol, v := range m.vols {
		if len(v.ids) > 0 {
			recs[vol] = refsRecord{Path: v.path, IDs: slices.Collect(maps.Keys(v.ids))}
		}
	}
	if err := m.file.save(recs); err != nil && m.onSave != nil {
		m.onSave(err)
	}
}

// acquire returns vol's entry with its lock held; release gives it back.
func (m *mounts) acquire(vol string) *volMounts {
	m.mu.Lock()
	e := m.vols[vol]
	if e == nil {
		e = &volMounts{ids: map[string]bool{}}
		m.vols[vol] = e
	}
	e.users++
	m.mu.Unlock()
	e.lock.Lock()
	return e
}

func (m *mounts) release(vol string, e *volMounts) {
	e.lock.Unlock()
	m.mu.Lock()
	e.users--
	if e.users == 0 && len(e.ids) == 0 {
		delete(m.vols, vol)
	}
	m.mu.Unlock()
}

// mount records id as a user of vol and returns where vol is mounted. The
// first user calls attach; if attach fails nothing is recorded. Mounting
// an id again is a no-op. IDs restored from the file count only if
// attachedHere says the volume is still attached here (and where); if it
// cannot tell, the mount fails and the next one asks again.
func (m *mounts) mount(vol, id string, attach func() (string, error), attachedHere func() (string, bool, error)) (string, error) {
	e := m.acquire(vol)
	defer m.release(vol, e)
	if e.restored && len(e.ids) > 0 {
		path, here, err := attachedHere()
		if err != nil {
			return "", err
		}
		if here {
			e.path = path
		} else {
			m.change(e, func(ids map[string]bool) { clear(ids) })
		}
	}
	e.restored = false
	if e.ids[id] {
		return e.path, nil
	}
	if len(e.ids) == 0 {
		path, err := attach()
		if err != nil {
			return "", err
		}
		e.path = path
	}
	m.change(e, func(ids map[string]bool) { ids[id] = true })
	return e.path, nil
}

// unmount forgets id as a user of vol; when it was the last one it calls
// detach. The id is forgotten even if detach fails: its container is gone.
// known is false for an id not recorded, which is not an error (an ID of
// an earlier run whose record was lost).
func (m *mounts) unmount(vol, id string, detach func() error) (known bool, err error) {
	e := m.acquire(vol)
	defer m.release(vol, e)
	if !e.ids[id] {
		return false, nil
	}
	e.restored = false // Docker's own unmount: the ID was in use here
	m.change(e, func(ids map[string]bool) { delete(ids, id) })
	if len(e.ids) > 0 {
		return true, nil
	}
	e.path = ""
	return true, detach()
}

// locked runs fn with vol's lock held and the mount IDs using vol on this
// node, so no mount of vol starts while fn runs.
func (m *mounts) locked(vol string, fn func(ids []string) error) error {
	e := m.acquire(vol)
	defer m.release(vol, e)
	var ids []string
	for id := range e.ids {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return fn(ids)
}
