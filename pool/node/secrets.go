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
// secret. Secrets do not change: a passphrase change would have to rewrap
// the keys of the volumes that use it, which is not built.
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
		return nil, fmt.Errorf("secret %q exists; secrets do not change (delete it, when no volume uses it, and set it again): %w", name, api.ErrExists)
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
	value, err := crypt.Open(n.cfg.Secret, name, sec.Nonce, sec.Sealed)
	if err != nil {
		return nil, 0, err
	}
	return value, rev, nil
}

// newVolumeKey makes the data key of new encrypted volume v, wrapped by
// the passphrase in its secret, and returns the guard its record's
// transaction must carry.
func (n *Node) newVolumeKey(ctx context.Context, v *meta.Volume) (meta.Op, error) {
	pass, rev, err := n.openSecret(ctx, v.SecretKey)
	if err != nil {
		return meta.Op{}, fmt.Errorf("create encrypted volume %s: %w", v.Name, err)
	}
	defer clear(pass)
	key, err := crypt.NewKey()
	if err != nil {
		return meta.Op{}, err
	}
	defer clear(key)
	if v.Key, err = crypt.Wrap(key, pass); err != nil {
		return meta.Op{}, err
	}
	return meta.SecretUnchanged(v.SecretKey, rev), nil
}

// volumeKey unwraps the data key of encrypted volume v; the caller clears
// it once used.
func (n *Node) volumeKey(ctx context.Context, v *meta.Volume) ([]byte, error) {
	if v.Key == nil {
		return nil, fmt.Errorf("encrypted volume %s has no key in its record", v.Name)
	}
	pass, _, err := n.openSecret(ctx, v.SecretKey)
	if err != nil {
		return nil, fmt.Errorf("volume %s: %w", v.Name, err)
	}
	defer clear(pass)
	key, err := v.Key.Unwrap(pass)
	if errors.Is(err, crypt.ErrWrongPassphrase) {
		return nil, fmt.Errorf("volume %s: the passphrase in secret %q does not open its key: %w", v.Name, v.SecretKey, api.ErrInvalid)
	}
	return key, err
}
