package meta

import (
	"context"
	"time"
)

// Secret is a named secret of the cluster (the passphrase of encrypted
// volumes), sealed under a key derived from the cluster secret
// (crypt.Seal): etcd never holds it in clear.
type Secret struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Nonce   []byte    `json:"nonce"`
	Sealed  []byte    `json:"sealed"`
	// Deleting is set while a delete checks that no volume uses it: a
	// volume made with it meanwhile would fail its transaction, which
	// guards on the secret's record (SecretUnchanged).
	Deleting bool `json:"deleting,omitempty"`
	// NextNonce and NextSealed hold the new value while a change rewraps
	// the keys of the volumes that use the secret: no volume is made with
	// it meanwhile, and an attach tries both values.
	NextNonce  []byte `json:"next_nonce,omitempty"`
	NextSealed []byte `json:"next_sealed,omitempty"`
}

func secretKey(name string) string { return Prefix + "secrets/" + name }

// PutSecret writes sec if its record is still at rev (0: absent).
func PutSecret(sec *Secret, rev Rev) Op { return put(secretKey(sec.Name), sec, rev) }

// SecretUnchanged guards a transaction on secret name still being at rev,
// changing nothing: a volume is made with a secret only while it is there.
func SecretUnchanged(name string, rev Rev) Op { return Op{key: secretKey(name), rev: rev, check: true} }

// DeleteSecret deletes secret name if its record is still at rev.
func DeleteSecret(name string, rev Rev) Op { return Op{key: secretKey(name), rev: rev} }

// Secret reads secret name.
func (s *Store) Secret(ctx context.Context, name string) (*Secret, Rev, error) {
	return get[Secret](ctx, s, secretKey(name))
}

// Secrets lists the secrets, by name.
func (s *Store) Secrets(ctx context.Context) ([]Secret, error) {
	return list[Secret](ctx, s, Prefix+"secrets/")
}

// UpdateSecret changes secret name's record with fn (see update).
func (s *Store) UpdateSecret(ctx context.Context, name string, fn func(*Secret) bool) (*Secret, error) {
	return update(ctx, s, secretKey(name), fn)
}
