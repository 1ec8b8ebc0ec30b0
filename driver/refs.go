package driver

import (
	"slices"
	"sync"
)

// mounts counts, per volume, the Docker mount IDs using it on this node.
// Docker calls Mount once per container start with a fresh ID and Unmount
// with the same ID when the container stops, so the first ID attaches the
// volume and the last one to go detaches it. The counts live in memory
// only: after a restart of the daemon Docker may unmount IDs it never saw.
type mounts struct {
	mu   sync.Mutex
	vols map[string]*volMounts
}

// volMounts is one volume's entry. Its lock is held across the attach or
// detach, so a mount and an unmount of the same volume never interleave
// (an unmount's detach cannot undo a concurrent mount's attach).
type volMounts struct {
	lock  sync.Mutex
	users int // goroutines holding or waiting for lock; guarded by mounts.mu
	ids   map[string]bool
	path  string // where the volume is mounted while ids is not empty
}

func newMounts() *mounts { return &mounts{vols: map[string]*volMounts{}} }

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
// an id again is a no-op.
func (m *mounts) mount(vol, id string, attach func() (string, error)) (string, error) {
	e := m.acquire(vol)
	defer m.release(vol, e)
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
	e.ids[id] = true
	return e.path, nil
}

// unmount forgets id as a user of vol; when it was the last one it calls
// detach. The id is forgotten even if detach fails: its container is gone.
// known is false for an id this process never mounted, which is not an
// error (the counts do not survive a restart).
func (m *mounts) unmount(vol, id string, detach func() error) (known bool, err error) {
	e := m.acquire(vol)
	defer m.release(vol, e)
	if !e.ids[id] {
		return false, nil
	}
	delete(e.ids, id)
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
