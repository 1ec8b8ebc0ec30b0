package keeper

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Keeper holds descriptors for the serving daemon. One Keeper outlives
// many daemons; each talks to it over its own connection (Serve).
type Keeper struct {
	grace time.Duration
	log   *slog.Logger

	mu      sync.Mutex
	entries map[string]*entry
	gen     int // the last connection served
	closed  bool
	ready   bool // some daemon said it serves (Client.Ready)
	readies int  // how many times a daemon said so

	stopping bool // the supervisor is stopping (Stop)
	store    bool // ... and hands the held volumes to a store that outlives it
}

// entry is one held volume: an opaque state and the descriptors.
type entry struct {
	state  []byte
	files  []*os.File
	served int       // generation that holds (or took) it; 0: none since a crash
	since  time.Time // when its daemon went away (served == 0)
}

// New returns a Keeper that releases a volume no daemon took back within
// grace of the daemon serving it going away.
func New(grace time.Duration, logger *slog.Logger) *Keeper {
	return &Keeper{grace: grace, log: logger, entries: map[string]*entry{}}
}

// Names lists the held volumes, sorted.
func (k *Keeper) Names() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	names := make([]string, 0, len(k.entries))
	for n := range k.entries {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Serve answers one daemon's requests on conn (a SOCK_SEQPACKET socket)
// until it closes, then starts the restart grace for the volumes that
// daemon served. It closes conn.
func (k *Keeper) Serve(conn *os.File) error {
	defer conn.Close()
	k.mu.Lock()
	k.gen++
	gen := k.gen
	k.mu.Unlock()
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var fd int
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return err
	}
	defer k.orphan(gen)
	for {
		m, files, err := recv(fd)
		if errors.Is(err, errClosed) || errors.Is(err, unix.ECONNRESET) {
			return nil
		}
		if err != nil {
			return err
		}
		ans, out := k.handle(gen, m, files)
		err = send(fd, ans, out)
		closeAll(out) // send passed copies; ours go
		if err != nil {
			return fmt.Errorf("keeper: answer %s: %w", m.Op, err)
		}
	}
}

// handle runs one request. It owns files; the returned files are dups for
// the caller to send and close.
func (k *Keeper) handle(gen int, m message, files []*os.File) (message, []*os.File) {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch m.Op {
	case "hold":
		if k.closed {
			closeAll(files)
			return message{Err: "the keeper is shutting down"}, nil
		}
		if m.Name == "" || len(files) == 0 {
			closeAll(files)
			return message{Err: "hold needs a name and descriptors"}, nil
		}
		if old, ok := k.entries[m.Name]; ok {
			closeAll(old.files)
		}
		k.entries[m.Name] = &entry{state: m.State, files: files, served: gen}
		k.log.Info("keeping volume descriptors", "volume", m.Name, "fds", len(files))
		return message{}, nil
	case "drop":
		closeAll(files)
		if e, ok := k.entries[m.Name]; ok {
			closeAll(e.files)
			delete(k.entries, m.Name)
			k.log.Info("released volume descriptors", "volume", m.Name)
		}
		return message{}, nil
	case "ready":
		closeAll(files)
		k.ready = true
		k.readies++
		return message{}, nil
	case "plan":
		closeAll(files)
		return message{Keep: !k.stopping || k.store}, nil
	case "list":
		closeAll(files)
		held := map[string][]byte{}
		for n, e := range k.entries {
			held[n] = e.state
		}
		return message{Held: held}, nil
	case "take":
		closeAll(files)
		e, ok := k.entries[m.Name]
		if !ok {
			return message{Err: fmt.Sprintf("volume %s is not held (released after the restart grace, or never held)", m.Name)}, nil
		}
		out := make([]*os.File, 0, len(e.files))
		for _, f := range e.files {
			d, err := dupFile(f)
			if err != nil {
				closeAll(out)
				return message{Err: fmt.Sprintf("take %s: %v", m.Name, err)}, nil
			}
			out = append(out, d)
		}
		e.served = gen
		k.log.Info("volume taken over by the new daemon", "volume", m.Name)
		return message{State: e.state}, out
	default:
		closeAll(files)
		return message{Err: fmt.Sprintf("unknown request %q", m.Op)}, nil
	}
}

func dupFile(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// orphan marks what generation gen served as waiting for a new daemon and
// arms the grace timer.
func (k *Keeper) orphan(gen int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	now := time.Now()
	for _, e := range k.entries {
		if e.served == gen {
			e.served, e.since = 0, now
			n++
		}
	}
	if n == 0 {
		return
	}
	k.log.Warn("daemon gone: its volumes' I/O waits for the next one", "volumes", n, "grace", k.grace)
	time.AfterFunc(k.grace, k.expire)
}

// expire releases every volume no daemon took back: closing the last
// descriptor of a FUSE connection aborts it, and its waiting I/O fails.
func (k *Keeper) expire() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for name, e := range k.entries {
		if e.served != 0 || time.Since(e.since) < k.grace {
			continue
		}
		k.log.Error("restart grace over: no daemon took the volume back; its I/O fails now", "volume", name, "grace", k.grace)
		closeAll(e.files)
		delete(k.entries, name)
	}
}

// Stop tells the daemons asking (Client.KeepsVolumes) that the keeper is
// stopping, and whether what it holds will outlive it (store: handed to
// systemd's file descriptor store for the next keeper).
func (k *Keeper) Stop(store bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stopping, k.store = true, store
}

// readyCount is how many times a daemon said it serves.
func (k *Keeper) readyCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.readies
}

// Ready reports whether a daemon ever said it serves.
func (k *Keeper) Ready() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.ready
}

// held is one entry as handed to (or restored from) a store.
type held struct {
	Name  string
	State []byte
	Files []*os.File
}

// take removes and returns every held volume; the caller owns the files.
func (k *Keeper) take() []held {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []held
	for name, e := range k.entries {
		out = append(out, held{Name: name, State: e.state, Files: e.files})
		delete(k.entries, name)
	}
	slices.SortFunc(out, func(a, b held) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// restore holds h as a volume whose daemon went away just now (a previous
// keeper's, restored from a store): the next daemon takes it over within
// the grace, or it is released.
func (k *Keeper) restore(hs []held) {
	if len(hs) == 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	now := time.Now()
	for _, h := range hs {
		if old, ok := k.entries[h.Name]; ok {
			closeAll(old.files)
		}
		k.entries[h.Name] = &entry{state: h.State, files: h.Files, since: now}
	}
	time.AfterFunc(k.grace, k.expire)
}

// Close releases every held volume.
func (k *Keeper) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed = true
	for name, e := range k.entries {
		closeAll(e.files)
		delete(k.entries, name)
	}
}
