package crypt

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// ErrSealedElsewhere is the error of opening a sealed secret with another
// cluster secret than the one it was sealed with, or a tampered one.
var ErrSealedElsewhere = errors.New("the secret was sealed under another cluster secret, or changed")

// Seal seals value, the secret called name, under a key derived from the
// cluster secret (AES-256-GCM, the name as associated data, so that a
// sealed value cannot pass for another name's). It returns the nonce and
// the sealed bytes.
func Seal(clusterSecret []byte, name string, value []byte) (nonce, sealed []byte, err error) {
	aead, err := secretsAEAD(clusterSecret)
	if err != nil {
		return nil, nil, err
	}
	nonce = make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, err
	}
	return nonce, aead.Seal(nil, nonce, value, []byte(name)), nil
}

// Open opens what Seal sealed.
func Open(clusterSecret []byte, name string, nonce, sealed []byte) ([]byte, error) {
	aead, err := secretsAEAD(clusterSecret)
	if err != nil {
		return nil, err
	}
	if len(nonce) != aead.NonceSize() {
		return nil, fmt.Errorf("crypt: secret %s: nonce of %d bytes: %w", name, len(nonce), ErrSealedElsewhere)
	}
	value, err := aead.Open(nil, nonce, sealed, []byte(name))
	if err != nil {
		return nil, fmt.Errorf("crypt: secret %s: %w", name, ErrSealedElsewhere)
	}
	return value, nil
}

func secretsAEAD(clusterSecret []byte) (cipher.AEAD, error) {
	if len(clusterSecret) == 0 {
		return nil, errors.New("crypt: no cluster secret to seal secrets under (start the daemon with --cluster-secret-file)")
	}
	key, err := hkdf.Key(sha256.New, clusterSecret, []byte("ballast-secrets"), "ballast secrets v1", 32)
	if err != nil {
		return nil, err
	}
	return gcm(key)
}
