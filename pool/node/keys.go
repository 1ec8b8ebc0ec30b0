package node

import (
	"encoding/json"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// KeyKeeper keeps descriptors for this node across daemon restarts;
// pool/keeper's Client is the real one. The node gives it, while a volume
// whose passphrase was given per call is attached here, the volume's
// unwrapped data key in a sealed memfd (memory, never a file on disk), so
// that a restarted daemon re-attaches the volume without the passphrase,
// as the keeper lets it take over the volume's FUSE connection. The key
// goes when the volume is detached, taken over by another node, or
// released by the keeper after its restart grace.
type KeyKeeper interface {
	Hold(name string, state []byte, files ...*os.File) error
	Take(name string) ([]byte, []*os.File, error)
	Drop(name string) error
}

// keyEntry is the keeper's name for vol's key; volume names have no "/",
// so it is never a volume's own entry.
func keyEntry(vol string) string { return "key/" + vol }

// maxKey bounds a kept key (an XTS-256 key has 64 bytes).
const maxKey = 256

// keptState is the state held with a key: whose it is, so that a key is
// never taken for a volume made again under the same name.
type keptState struct {
	KeyOf string `json:"key_of"` // the volume's ID
}

// keepKey gives the keeper the key of vol, whose ID is id.
func (n *Node) keepKey(vol, id string, key []byte) error {
	if n.cfg.Keys == nil {
		return nil
	}
	fd, err := unix.MemfdCreate("ballast-key", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return fmt.Errorf("keep the key of %s: %w", vol, err)
	}
	f := os.NewFile(uintptr(fd), "ballast-key")
	defer f.Close()
	if _, err := f.Write(key); err != nil {
		return fmt.Errorf("keep the key of %s: %w", vol, err)
	}
	seals := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		return fmt.Errorf("keep the key of %s: seal: %w", vol, err)
	}
	state, err := json.Marshal(keptState{KeyOf: id})
	if err != nil {
		return err
	}
	if err := n.cfg.Keys.Hold(keyEntry(vol), state, f); err != nil {
		return fmt.Errorf("keep the key of %s: %w", vol, err)
	}
	return nil
}

// keptKey returns the key the keeper kept for vol, whose ID is id; the
// caller clears it.
func (n *Node) keptKey(vol, id string) ([]byte, error) {
	if n.cfg.Keys == nil {
		return nil, fmt.Errorf("the daemon runs without a keeper, which keeps the keys of volumes given a passphrase per call across restarts")
	}
	raw, files, err := n.cfg.Keys.Take(keyEntry(vol))
	if err != nil {
		return nil, err
	}
	defer closeAll(files)
	var st keptState
	if json.Unmarshal(raw, &st) != nil || st.KeyOf != id {
		n.forgetKey(vol)
		return nil, fmt.Errorf("the keeper holds a key for volume %s of ID %q, not of this one's %q", vol, st.KeyOf, id)
	}
	if len(files) != 1 {
		return nil, fmt.Errorf("the keeper holds %d descriptors for the key of %s, want 1", len(files), vol)
	}
	key := make([]byte, maxKey)
	k, err := unix.Pread(int(files[0].Fd()), key, 0)
	if err != nil || k == 0 || k == maxKey {
		clear(key)
		return nil, fmt.Errorf("read the kept key of %s: %d bytes, %v", vol, k, err)
	}
	return key[:k], nil
}

// forgetKey makes the keeper drop vol's key, if it holds one.
func (n *Node) forgetKey(vol string) {
	if n.cfg.Keys == nil {
		return
	}
	if err := n.cfg.Keys.Drop(keyEntry(vol)); err != nil {
		n.log.Error("the keeper may still hold a volume's key", "volume", vol, "err", err)
	}
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
