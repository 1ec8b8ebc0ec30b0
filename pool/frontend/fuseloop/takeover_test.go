package fuseloop_test

import (
	"encoding/json"
	"errors"
	"log"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/frontend/fuseloop"
	"github.com/ballast-io/ballast/pool/hostfs"
	"github.com/ballast-io/ballast/pool/spec"
	"github.com/ballast-io/ballast/pool/testenv"
)

// fakeKeeper is an in-process fuseloop.Keeper that records the calls.
type fakeKeeper struct {
	mu    sync.Mutex
	state map[string][]byte
	files map[string][]*os.File
	calls []string
}

func newFakeKeeper() *fakeKeeper {
	return &fakeKeeper{state: map[string][]byte{}, files: map[string][]*os.File{}}
}

func (k *fakeKeeper) Hold(name string, state []byte, files ...*os.File) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, "hold "+name)
	var dups []*os.File
	for _, f := range files {
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return err
		}
		dups = append(dups, os.NewFile(uintptr(fd), f.Name()))
	}
	k.state[name], k.files[name] = state, dups
	return nil
}

func (k *fakeKeeper) Drop(name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, "drop "+name)
	for _, f := range k.files[name] {
		f.Close()
	}
	delete(k.state, name)
	delete(k.files, name)
	return nil
}

func (k *fakeKeeper) Held() (map[string][]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := map[string][]byte{}
	for n, s := range k.state {
		out[n] = s
	}
	return out, nil
}

func (k *fakeKeeper) Take(name string) ([]byte, []*os.File, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, "take "+name)
	s, ok := k.state[name]
	if !ok {
		return nil, nil, errors.New(name + " is not held")
	}
	return s, nil, nil // no descriptors: a takeover must refuse this
}

func (k *fakeKeeper) called() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.calls)
}

// TestKeeperHoldsAndFallsBack: an export hands the keeper its FUSE and
// loop descriptors; a held volume that cannot be taken over (here: held
// without descriptors) is exported afresh, the keeper told to let go
// first; a held volume no Export takes is released by ReleaseUnadopted;
// Unexport drops what the keeper holds.
func TestKeeperHoldsAndFallsBack(t *testing.T) {
	testenv.RequirePrivileged(t)
	state := filepath.Join(t.TempDir(), "state")
	k := newFakeKeeper()
	e, err := fuseloop.New(state, fuseloop.Options{Keeper: k, Logger: log.New(os.Stderr, "", log.LstdFlags)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	// Left by a "previous daemon": one to take over, one nobody attaches.
	for _, n := range []string{"vol-a", "vol-b"} {
		st, _ := json.Marshal(map[string]any{"mount": filepath.Join(e.StateDir(), n), "device": "/dev/loop-none", "max_write": 4096})
		k.state[n] = st
	}
	if err := e.Recover(); err != nil {
		t.Fatal(err)
	}
	if got, err := e.Adoptable(); err != nil || len(got) != 2 {
		t.Fatalf("Adoptable = %v, %v; want vol-a and vol-b", got, err)
	}
	dev, err := e.Export(spec.MustName("vol-a"), block.NewMem(1<<20))
	if err != nil {
		t.Fatalf("a held volume that cannot be taken over must be exported afresh: %v", err)
	}
	if size, err := hostfs.DeviceSize(dev); err != nil || size != 1<<20 {
		t.Fatalf("%s: size %d, %v", dev, size, err)
	}
	want := []string{"take vol-a", "drop vol-a", "hold vol-a"}
	if got := k.called(); !slices.Equal(got, want) {
		t.Fatalf("keeper calls %v, want %v", got, want)
	}
	if n := len(k.files["vol-a"]); n != 2 {
		t.Fatalf("the keeper holds %d descriptors of vol-a, want 2 (FUSE and loop)", n)
	}
	var st struct {
		Mount, Device string
		MaxWrite      int `json:"max_write"`
		MTime         uint64
	}
	if err := json.Unmarshal(k.state["vol-a"], &st); err != nil || st.Device != dev || st.Mount != filepath.Join(e.StateDir(), "vol-a") || st.MaxWrite <= 0 || st.MTime == 0 {
		t.Fatalf("held state %s (%v)", k.state["vol-a"], err)
	}
	if err := e.ReleaseUnadopted(); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.Adoptable(); len(got) != 0 {
		t.Fatalf("Adoptable after ReleaseUnadopted = %v", got)
	}
	if _, held := k.state["vol-b"]; held {
		t.Fatal("vol-b still held after ReleaseUnadopted")
	}
	if err := e.Unexport(spec.MustName("vol-a")); err != nil {
		t.Fatal(err)
	}
	if _, held := k.state["vol-a"]; held {
		t.Fatal("vol-a still held after Unexport")
	}
}
