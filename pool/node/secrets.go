package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/crypt"
	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/spec"
)

// maxSecret bounds a secret's value.
const maxSecret = 4096

// SetSecret stores a new secret of the cluster, sealed under the cluster
// secret. An existing one changes only through ChangeSecret, which
// rewraps the keys of the volumes that use it.
func (n *Node) SetSecret(ctx context.Context, name string, value []byte) (*api.Secret, error) {
	if err := spec.ValidateName("secret name", name); err != nil {
		return nil, err
	}
	if len(value) == 0 || len(value) > maxSecret {
		return nil, fmt.Errorf("%w: secret %q has %d bytes; give 1 to %d", api.ErrInvalid, name, len(value), maxSecret)
	}
	nonce, sealed, err := crypt.Seal(n.cfg.Secret, name, value)
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w: %w", name, err, errors.ErrUnsupported)
	}
	sec := &meta.Secret{Name: name, Created: time.Now().UTC(), Nonce: nonce, Sealed: sealed}
	err = n.meta.Commit(ctx, meta.PutSecret(sec, 0))
	if errors.Is(err, meta.ErrConflict) {
		return nil, fmt.Errorf("secret %q exists (ballast secret change %s gives it a new value): %w", name, name, api.ErrExists)
	}
	if err != nil {
		return nil, err
	}
	n.log.Info("secret set", "secret", name)
	return &api.Secret{Name: name, Created: sec.Created}, nil
}

// ListSecrets lists the secrets and the volumes that use each.
func (n *Node) ListSecrets(ctx context.Context) ([]api.Secret, error) {
	secs, err := n.meta.Secrets(ctx)
	if err != nil {
		return nil, err
	}
	vols, err := n.meta.Volumes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.Secret, 0, len(secs))
	for _, s := range secs {
		out = append(out, api.Secret{Name: s.Name, Created: s.Created, UsedBy: usersOf(vols, s.Name)})
	}
	return out, nil
}

func usersOf(vols []meta.Volume, secret string) []string {
	var users []string
	for _, v := range vols {
		if v.Encrypted && v.SecretKey == secret {
			users = append(users, v.Name)
		}
	}
	return users
}

// DeleteSecret deletes a secret no volume uses. It first marks the secret
// as being deleted, so that no volume can be made with it while it looks
// for users (a volume's transaction guards on the secret's record).
func (n *Node) DeleteSecret(ctx context.Context, name string) error {
	if err := spec.ValidateName("secret name", name); err != nil {
		return err
	}
	sec, rev, err := n.meta.Secret(ctx, name)
	if errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("secret %q does not exist: %w", name, api.ErrNotFound)
	}
	if err != nil {
		return err
	}
	sec.Deleting = true
	if err := n.meta.Commit(ctx, meta.PutSecret(sec, rev)); err != nil {
		return conflict("delete secret "+name, err)
	}
	_, rev, err = n.meta.Secret(ctx, name)
	if err != nil {
		return err
	}
	vols, err := n.meta.Volumes(ctx)
	if err == nil {
		if users := usersOf(vols, name); len(users) > 0 {
			err = fmt.Errorf("secret %q wraps the keys of volumes %s; without it their data is lost: delete them first: %w", name, strings.Join(users, ", "), api.ErrInUse)
		}
	}
	if err != nil {
		sec.Deleting = false
		if rerr := n.meta.Commit(ctx, meta.PutSecret(sec, rev)); rerr != nil {
			n.log.Error("secret left marked as being deleted", "secret", name, "err", rerr)
		}
		return err
	}
	if err := n.meta.Commit(ctx, meta.DeleteSecret(name, rev)); err != nil {
		return conflict("delete secret "+name, err)
	}
	n.log.Info("secret deleted", "secret", name)
	return nil
}

// openSecret reads and opens secret name, with its record's revision.
func (n *Node) openSecret(ctx context.Context, name string) ([]byte, meta.Rev, error) {
	sec, rev, err := n.meta.Secret(ctx, name)
	if errors.Is(err, meta.ErrNotFound) {
		return nil, 0, fmt.Errorf("secret %q does not exist (ballast secret set %s): %w", name, name, api.ErrNotFound)
	}
	if err != nil {
		return nil, 0, err
	}
	if sec.Deleting {
		return nil, 0, fmt.Errorf("secret %q is being deleted: %w", name, api.ErrConflict)
	}
	if sec.NextSealed != nil {
		return nil, 0, fmt.Errorf("secret %q is being changed; try again in a moment: %w", name, api.ErrConflict)
	}
	value, err := crypt.Open(n.cfg.Secret, name, sec.Nonce, sec.Sealed)
	if err != nil {
		return nil, 0, err
	}
	return value, rev, nil
}

// newVolumeKey makes the data key of new encrypted volume v, wrapped by
// pass (a passphrase given per call) or, without, by the passphrase in
// v's secret; it returns the guards its record's transaction must carry.
func (n *Node) newVolumeKey(ctx context.Context, v *meta.Volume, pass []byte) ([]meta.Op, error) {
	var guards []meta.Op
	if v.SecretKey != "" {
		var rev meta.Rev
		var err error
		if pass, rev, err = n.openSecret(ctx, v.SecretKey); err != nil {
			return nil, fmt.Errorf("create encrypted volume %s: %w", v.Name, err)
		}
		defer clear(pass)
		guards = append(guards, meta.SecretUnchanged(v.SecretKey, rev))
	}
	key, err := crypt.NewKey()
	if err != nil {
		return nil, err
	}
	defer clear(key)
	if v.Key, err = crypt.Wrap(key, pass); err != nil {
		return nil, err
	}
	return guards, nil
}

// volumeKey unwraps the data key of encrypted volume v with pass, the
// passphrase given with the call (passphraseFits checked it may be), or
// kept, its key kept by this node (a volume attached here before a
// restart), or the passphrase in v's secret. The caller clears it once
// used.
func (n *Node) volumeKey(ctx context.Context, v *meta.Volume, pass, kept []byte) ([]byte, error) {
	if v.Key == nil {
		return nil, fmt.Errorf("encrypted volume %s has no key in its record", v.Name)
	}
	if perCall(v) {
		return givenKey(v, pass, kept)
	}
	passes, err := n.secretValues(ctx, v.SecretKey)
	if err != nil {
		return nil, fmt.Errorf("volume %s: %w", v.Name, err)
	}
	var key []byte
	for _, pass := range passes {
		if key, err = v.Key.Unwrap(pass); !errors.Is(err, crypt.ErrWrongPassphrase) {
			break
		}
	}
	for _, pass := range passes {
		clear(pass)
	}
	if errors.Is(err, crypt.ErrWrongPassphrase) {
		return nil, fmt.Errorf("volume %s: the passphrase in secret %q does not open its key: %w", v.Name, v.SecretKey, api.ErrInvalid)
	}
	return key, err
}

// secretValues opens secret name: its value and, while a change runs,
// the new one (a volume's key is wrapped by one or the other).
func (n *Node) secretValues(ctx context.Context, name string) ([][]byte, error) {
	sec, _, err := n.meta.Secret(ctx, name)
	if errors.Is(err, meta.ErrNotFound) {
		return nil, fmt.Errorf("secret %q does not exist (ballast secret set %s): %w", name, name, api.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	value, err := crypt.Open(n.cfg.Secret, name, sec.Nonce, sec.Sealed)
	if err != nil {
		return nil, err
	}
	out := [][]byte{value}
	if sec.NextSealed != nil {
		next, err := crypt.Open(n.cfg.Secret, name, sec.NextNonce, sec.NextSealed)
		if err != nil {
			return nil, err
		}
		out = append(out, next)
	}
	return out, nil
}

// maxRewrap bounds the volumes one secret change rewraps: they change in
// one etcd transaction, which takes at most 128 operations.
const maxRewrap = 100

// ChangeSecret gives secret name a new value and rewraps, under it, the
// data key of every volume that uses it; nothing is re-encrypted. First
// the new value is recorded beside the old one, which stops volumes being
// made with the secret and lets attaches try both; then every volume's
// key and the secret change in one transaction.
func (n *Node) ChangeSecret(ctx context.Context, name string, value []byte) (*api.Secret, error) {
	if err := spec.ValidateName("secret name", name); err != nil {
		return nil, err
	}
	if len(value) == 0 || len(value) > maxSecret {
		return nil, fmt.Errorf("%w: secret %q has %d bytes; give 1 to %d", api.ErrInvalid, name, len(value), maxSecret)
	}
	sec, rev, err := n.meta.Secret(ctx, name)
	if errors.Is(err, meta.ErrNotFound) {
		return nil, fmt.Errorf("secret %q does not exist: %w", name, api.ErrNotFound)
	} else if err != nil {
		return nil, err
	}
	if sec.Deleting {
		return nil, fmt.Errorf("secret %q is being deleted: %w", name, api.ErrConflict)
	}
	old, err := crypt.Open(n.cfg.Secret, name, sec.Nonce, sec.Sealed)
	if err != nil {
		return nil, err
	}
	defer clear(old)
	if vols, err := n.meta.Volumes(ctx); err != nil {
		return nil, err
	} else if users := usersOf(vols, name); len(users) > maxRewrap {
		return nil, fmt.Errorf("secret %q is used by %d volumes; a change rewraps at most %d at once: %w", name, len(users), maxRewrap, errors.ErrUnsupported)
	}
	if sec.NextNonce, sec.NextSealed, err = crypt.Seal(n.cfg.Secret, name, value); err != nil {
		return nil, err
	}
	if err := n.meta.Commit(ctx, meta.PutSecret(sec, rev)); err != nil {
		return nil, conflict("change secret "+name, err)
	}
	out, err := n.rewrapAll(ctx, sec, old, value)
	if err != nil {
		// The change stops: the secret keeps its value, and volumes can
		// be made with it again.
		n.clearNext(context.WithoutCancel(ctx), name)
		return nil, err
	}
	return out, nil
}

// rewrapAll rewraps, from old to value, the key of every volume using
// secret sec (recorded with its next value), and makes value the
// secret's, all in one transaction.
func (n *Node) rewrapAll(ctx context.Context, sec *meta.Secret, old, value []byte) (*api.Secret, error) {
	name := sec.Name
	_, rev, err := n.meta.Secret(ctx, name)
	if err != nil {
		return nil, err
	}
	vols, err := n.meta.Volumes(ctx)
	if err != nil {
		return nil, err
	}
	users := usersOf(vols, name)
	if len(users) > maxRewrap {
		return nil, fmt.Errorf("secret %q is used by %d volumes; a change rewraps at most %d at once: %w", name, len(users), maxRewrap, errors.ErrUnsupported)
	}
	var ops []meta.Op
	for _, vn := range users {
		v, vrev, err := n.meta.Volume(ctx, vn)
		if err != nil {
			return nil, err
		}
		if v.Key, err = v.Key.Rewrap(old, value); err != nil {
			return nil, fmt.Errorf("change secret %s: volume %s: %w", name, vn, err)
		}
		ops = append(ops, meta.PutVolume(v, vrev))
	}
	sec.Nonce, sec.Sealed, sec.NextNonce, sec.NextSealed = sec.NextNonce, sec.NextSealed, nil, nil
	if err := n.meta.Commit(ctx, append(ops, meta.PutSecret(sec, rev))...); err != nil {
		return nil, conflict("change secret "+name+" (a volume changed meanwhile; run it again)", err)
	}
	n.log.Info("secret changed", "secret", name, "volumes_rewrapped", len(users))
	return &api.Secret{Name: name, Created: sec.Created, UsedBy: users}, nil
}

// clearNext drops the next value a failed change of secret name left.
func (n *Node) clearNext(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := n.meta.UpdateSecret(ctx, name, func(sec *meta.Secret) bool {
		if sec.NextSealed == nil {
			return false
		}
		sec.NextNonce, sec.NextSealed = nil, nil
		return true
	})
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		n.log.Error("secret left with a change half-made; run the change again", "secret", name, "err", err)
	}
}
