package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/crypt"
	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/spec"
)

// An encrypted volume's data key is wrapped either by the passphrase in a
// cluster secret (its spec names the secret) or by a passphrase given per
// call: with the create, then with every attach (the CLI's --secret-file
// and --secret-env, CSI's provisioner and node-stage secrets). Such a
// passphrase is never stored; only the key it wraps is, wrapped. While the
// volume is attached here, its unwrapped key stays in this node's memory,
// and in the keeper's across daemon restarts (keys.go).

// perCall reports whether encrypted volume v's key is wrapped by a
// passphrase given per call.
func perCall(v *meta.Volume) bool { return v.Encrypted && v.SecretKey == "" }

// passphraseHelp says how a passphrase is given per call.
const passphraseHelp = "ballast volume attach --secret-file or --secret-env; CSI: the node-stage secret \"passphrase\""

// checkCreatePassphrase checks the passphrase given with the create of s
// against s: a new encrypted volume has one or a secret key, never both.
func checkCreatePassphrase(s spec.Volume, pass []byte) error {
	given := len(pass) > 0
	switch {
	case len(pass) > api.MaxPassphrase:
		return fmt.Errorf("%w: the passphrase has %d bytes; give at most %d", api.ErrInvalid, len(pass), api.MaxPassphrase)
	case given && s.SecretKey != "":
		return fmt.Errorf("%w: volume %q names secret key %q and a passphrase was given too; give one of them", api.ErrInvalid, s.Name, s.SecretKey)
	case given && !s.Encrypted && s.FromSnapshot == "":
		return fmt.Errorf("%w: a passphrase was given but volume %q is not encrypted; add encrypted", api.ErrInvalid, s.Name)
	case !given && s.Encrypted && s.SecretKey == "" && s.FromSnapshot == "":
		return fmt.Errorf("%w: encrypted volume %q needs a passphrase: a cluster secret holding it (secret key; ballast secret set NAME) or one given with the call (--secret-file, --secret-env; CSI: the provisioner secret \"passphrase\")", api.ErrInvalid, s.Name)
	}
	return nil
}

// givenKey unwraps the key of v, a volume with a passphrase given per
// call, with pass; without one, it returns a copy of kept, the key this
// node kept for v across a restart.
func givenKey(v *meta.Volume, pass, kept []byte) ([]byte, error) {
	if len(pass) == 0 {
		if kept != nil {
			return bytes.Clone(kept), nil
		}
		return nil, fmt.Errorf("volume %s is encrypted with a passphrase given per call, and none was given (%s): %w", v.Name, passphraseHelp, api.ErrInvalid)
	}
	key, err := v.Key.Unwrap(pass)
	if errors.Is(err, crypt.ErrWrongPassphrase) {
		return nil, fmt.Errorf("volume %s: the passphrase given does not open its key: %w", v.Name, api.ErrInvalid)
	}
	return key, err
}

// passphraseFits checks that a passphrase given with an attach of v may
// be: only a volume with a passphrase per call takes one.
func passphraseFits(v *meta.Volume, pass []byte) error {
	switch {
	case len(pass) == 0 || perCall(v):
		return nil
	case v.Encrypted:
		return fmt.Errorf("volume %s: its key is wrapped by cluster secret %q; give no passphrase: %w", v.Name, v.SecretKey, api.ErrInvalid)
	}
	return fmt.Errorf("volume %s: a passphrase was given, but the volume is not encrypted: %w", v.Name, api.ErrInvalid)
}

// checkAttached checks the passphrase given with an attach of v that
// finds it attached here already, as a new attach would.
func checkAttached(v *meta.Volume, pass []byte) error {
	if err := passphraseFits(v, pass); err != nil || !perCall(v) {
		return err
	}
	key, err := givenKey(v, pass, nil)
	clear(key)
	return err
}

// checkGiven checks that pass, given with a call on per-call volume v
// that does not need it (a clone, a create again), opens v's key.
func checkGiven(v *meta.Volume, pass []byte) error {
	if len(pass) == 0 {
		return nil
	}
	if !perCall(v) {
		return fmt.Errorf("%w: a passphrase was given, but volume %s's key is not wrapped by one given per call", api.ErrInvalid, v.Name)
	}
	key, err := givenKey(v, pass, nil)
	clear(key)
	return err
}

// ChangePassphrase gives volume name, encrypted with a passphrase given
// per call, a new one: old must open its data key, which is wrapped again
// under value; nothing is re-encrypted. Its clones keep their own
// wrapping, and a node it is attached on its key.
func (n *Node) ChangePassphrase(ctx context.Context, name string, old, value []byte) error {
	if err := spec.ValidateName("volume name", name); err != nil {
		return err
	}
	if len(value) == 0 || len(value) > api.MaxPassphrase {
		return fmt.Errorf("%w: the new passphrase has %d bytes; give 1 to %d", api.ErrInvalid, len(value), api.MaxPassphrase)
	}
	defer n.locks.Lock(name)()
	v, rev, err := n.getVolume(ctx, name)
	if err != nil {
		return err
	}
	switch {
	case v.State != meta.StateReady:
		return fmt.Errorf("volume %s is %s; try again once it is ready: %w", name, v.State, api.ErrConflict)
	case !v.Encrypted:
		return fmt.Errorf("%w: volume %s is not encrypted", api.ErrInvalid, name)
	case !perCall(v):
		return fmt.Errorf("%w: volume %s's key is wrapped by cluster secret %q; change the secret (ballast secret change %s)", api.ErrInvalid, name, v.SecretKey, v.SecretKey)
	case len(old) == 0:
		return fmt.Errorf("%w: give volume %s's passphrase, to open its key", api.ErrInvalid, name)
	}
	w, err := v.Key.Rewrap(old, value)
	if errors.Is(err, crypt.ErrWrongPassphrase) {
		return fmt.Errorf("change the passphrase of volume %s: the passphrase given does not open its key: %w", name, api.ErrInvalid)
	} else if err != nil {
		return fmt.Errorf("change the passphrase of volume %s: %w", name, err)
	}
	v.Key = w
	if err := n.meta.Commit(ctx, meta.PutVolume(v, rev)); err != nil {
		return conflict("change the passphrase of volume "+name, err)
	}
	n.log.Info("volume passphrase changed", "volume", name)
	return nil
}
