package keeper

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// systemd's file descriptor store (sd_notify(3) FDSTORE=1, sd_listen_fds(3))
// lets what the keeper holds outlive the keeper itself: stopping, it hands
// every held descriptor to systemd, named, with a memfd describing them;
// systemd passes them to the next keeper it starts (LISTEN_FDS,
// LISTEN_FDNAMES), which holds them again for the next serving daemon to
// take over. systemd keeps them while the unit has a job queued (a
// restart) and closes them when the unit really stops.

// stateName is the FDNAME of the memfd describing the stored volumes.
const stateName = "ballast-keeper-state"

// storedVolume describes one volume in the state memfd: its keeper state
// and the FDNAMEs of its descriptors, in order.
type storedVolume struct {
	Name  string   `json:"name"`
	State []byte   `json:"state"`
	Fds   []string `json:"fds"`
}

// FDStore is systemd's file descriptor store for this service.
type FDStore struct {
	addr *unix.SockaddrUnix
}

// StoreFromEnv returns the store when the keeper runs under systemd with
// one: NOTIFY_SOCKET is set and FDSTORE (set by systemd 254 and later from
// FileDescriptorStoreMax=, or by the unit itself for older ones) is
// positive. Otherwise nil.
func StoreFromEnv() *FDStore {
	sock := os.Getenv("NOTIFY_SOCKET")
	n, _ := strconv.Atoi(os.Getenv("FDSTORE"))
	if sock == "" || n <= 0 || !(strings.HasPrefix(sock, "/") || strings.HasPrefix(sock, "@")) {
		return nil
	}
	if sock[0] == '@' {
		sock = "\x00" + sock[1:]
	}
	return &FDStore{addr: &unix.SockaddrUnix{Name: sock}}
}

// notify sends one sd_notify datagram with files attached.
func (s *FDStore) notify(text string, files []*os.File) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Sendmsg(fd, []byte(text), rights(files), s.addr, 0); err != nil {
		return fmt.Errorf("sd_notify %q: %w", strings.ReplaceAll(text, "\n", " "), err)
	}
	return nil
}

// Save hands everything k holds to systemd and lets go of k's copies. It
// returns how many volumes it stored.
func (s *FDStore) Save(k *Keeper) (int, error) {
	hs := k.take()
	defer func() {
		for _, h := range hs {
			closeAll(h.Files)
		}
	}()
	if len(hs) == 0 {
		return 0, nil
	}
	var vols []storedVolume
	var errs []error
	for i, h := range hs {
		v := storedVolume{Name: h.Name, State: h.State}
		for j, f := range h.Files {
			name := fmt.Sprintf("ballast-v%d-%d", i, j)
			if err := s.notify("FDSTORE=1\nFDNAME="+name, []*os.File{f}); err != nil {
				errs = append(errs, fmt.Errorf("store %s: %w", h.Name, err))
				continue
			}
			v.Fds = append(v.Fds, name)
		}
		vols = append(vols, v)
	}
	b, err := json.Marshal(vols)
	if err != nil {
		return 0, err
	}
	mfd, err := unix.MemfdCreate(stateName, unix.MFD_CLOEXEC)
	if err != nil {
		return 0, errors.Join(append(errs, fmt.Errorf("memfd: %w", err))...)
	}
	mf := os.NewFile(uintptr(mfd), stateName)
	defer mf.Close()
	if _, err := mf.Write(b); err != nil {
		return 0, errors.Join(append(errs, err)...)
	}
	if err := s.notify("FDSTORE=1\nFDNAME="+stateName, []*os.File{mf}); err != nil {
		return 0, errors.Join(append(errs, err)...)
	}
	return len(vols), errors.Join(errs...)
}

// RestoreFromEnv holds again, in k, what a previous keeper stored with
// systemd: the descriptors systemd passed this process (LISTEN_FDS from
// fd 3 on, named by LISTEN_FDNAMES), described by the state memfd. They
// are removed from systemd's store (k now owns them: a volume it releases
// must really close) and the LISTEN_* variables are unset, so the serving
// daemon does not see them. It returns how many volumes it restored; none
// when systemd passed nothing.
func RestoreFromEnv(k *Keeper, store *FDStore) (int, error) {
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	pid := os.Getenv("LISTEN_PID")
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	for _, v := range []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"} {
		os.Unsetenv(v)
	}
	if err != nil || n <= 0 || (pid != "" && pid != strconv.Itoa(os.Getpid())) {
		return 0, nil
	}
	files := make([]*os.File, n)
	for i := range files {
		unix.CloseOnExec(3 + i)
		name := ""
		if i < len(names) {
			name = names[i]
		}
		files[i] = os.NewFile(uintptr(3+i), name)
	}
	hs, err := restore(files, names)
	k.restore(hs)
	if store != nil {
		for _, name := range names {
			if !strings.HasPrefix(name, "ballast-") {
				continue
			}
			if rerr := store.notify("FDSTOREREMOVE=1\nFDNAME="+name, nil); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
	}
	return len(hs), err
}

// restore matches files (named by names, as systemd passed them) to the
// volumes the state memfd among them describes. It closes the files it
// does not return.
func restore(files []*os.File, names []string) ([]held, error) {
	byName := map[string]*os.File{}
	for i, f := range files {
		if i < len(names) && names[i] != "" {
			byName[names[i]] = f
		}
	}
	used := map[*os.File]bool{}
	defer func() {
		for _, f := range files {
			if !used[f] {
				f.Close()
			}
		}
	}()
	sf := byName[stateName]
	if sf == nil {
		return nil, fmt.Errorf("keeper: systemd passed %d descriptors but no %s", len(files), stateName)
	}
	if _, err := sf.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("keeper: read %s: %w", stateName, err)
	}
	b, err := io.ReadAll(io.LimitReader(sf, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("keeper: read %s: %w", stateName, err)
	}
	var vols []storedVolume
	if err := json.Unmarshal(b, &vols); err != nil {
		return nil, fmt.Errorf("keeper: %s: %w", stateName, err)
	}
	var out []held
	var errs []error
	for _, v := range vols {
		h := held{Name: v.Name, State: v.State}
		for _, fn := range v.Fds {
			f := byName[fn]
			if f == nil || used[f] || slices.Contains(h.Files, f) || f == byName[stateName] {
				h.Files = nil
				errs = append(errs, fmt.Errorf("keeper: volume %s: descriptor %s missing from what systemd passed", v.Name, fn))
				break
			}
			h.Files = append(h.Files, f)
		}
		if v.Name == "" || len(h.Files) == 0 {
			continue
		}
		for _, f := range h.Files {
			used[f] = true
		}
		out = append(out, h)
	}
	return out, errors.Join(errs...)
}
