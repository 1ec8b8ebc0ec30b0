package crypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// ErrWrongPassphrase is the error of unwrapping a data key with another
// passphrase than the one it was wrapped with.
var ErrWrongPassphrase = errors.New("wrong passphrase for the volume's key")

// Argon2id parameters of new wrappings: RFC 9106's second recommended
// option (64 MiB, 3 passes), with the parallelism of these machines.
const (
	argonTime    = 3
	argonMemory  = 64 << 10 // KiB
	argonThreads = 2
)

// Wrapped is a data key sealed with AES-256-GCM under a key derived from a
// passphrase by Argon2id: what is stored (in etcd) instead of the key. The
// derivation's parameters are kept with it, so that later changes to the
// defaults still unwrap old keys.
type Wrapped struct {
	Salt    []byte `json:"salt"`
	Time    uint32 `json:"time"`
	Memory  uint32 `json:"memory_kib"`
	Threads uint8  `json:"threads"`
	Nonce   []byte `json:"nonce"`
	Sealed  []byte `json:"sealed"` // the data key and GCM's tag
}

// NewKey returns a random data key.
func NewKey() ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("crypt: new key: %w", err)
	}
	return key, nil
}

// Wrap seals key under passphrase.
func Wrap(key, passphrase []byte) (*Wrapped, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("crypt: a data key has %d bytes, not %d", KeySize, len(key))
	}
	if len(passphrase) == 0 {
		return nil, errors.New("crypt: the passphrase is empty")
	}
	w := &Wrapped{Salt: make([]byte, 16), Time: argonTime, Memory: argonMemory, Threads: argonThreads}
	if _, err := rand.Read(w.Salt); err != nil {
		return nil, err
	}
	aead, err := w.aead(passphrase)
	if err != nil {
		return nil, err
	}
	w.Nonce = make([]byte, aead.NonceSize())
	if _, err := rand.Read(w.Nonce); err != nil {
		return nil, err
	}
	w.Sealed = aead.Seal(nil, w.Nonce, key, nil)
	return w, nil
}

// Unwrap opens w with passphrase and returns the data key, or
// ErrWrongPassphrase.
func (w *Wrapped) Unwrap(passphrase []byte) ([]byte, error) {
	if w == nil || len(w.Salt) == 0 || w.Time == 0 || w.Memory == 0 || w.Threads == 0 {
		return nil, errors.New("crypt: the wrapped key is incomplete")
	}
	aead, err := w.aead(passphrase)
	if err != nil {
		return nil, err
	}
	if len(w.Nonce) != aead.NonceSize() {
		return nil, fmt.Errorf("crypt: the wrapped key's nonce has %d bytes", len(w.Nonce))
	}
	key, err := aead.Open(nil, w.Nonce, w.Sealed, nil)
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("crypt: the wrapped key has %d bytes", len(key))
	}
	return key, nil
}

// Rewrap wraps the key of w, unwrapped with old, under passphrase new: a
// change of passphrase, with nothing re-encrypted.
func (w *Wrapped) Rewrap(old, new []byte) (*Wrapped, error) {
	key, err := w.Unwrap(old)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	return Wrap(key, new)
}

// aead derives the key-encryption key from passphrase with w's parameters.
func (w *Wrapped) aead(passphrase []byte) (cipher.AEAD, error) {
	if w.Memory > 1<<20 || w.Time > 64 {
		return nil, fmt.Errorf("crypt: the wrapped key asks for Argon2id with %d KiB and %d passes: refused", w.Memory, w.Time)
	}
	kek := argon2.IDKey(passphrase, w.Salt, w.Time, w.Memory, w.Threads, 32)
	defer clear(kek)
	return gcm(kek)
}

// gcm is AES-256-GCM under key.
func gcm(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}
