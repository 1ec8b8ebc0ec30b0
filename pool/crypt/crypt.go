// Package crypt is encryption at rest for a volume: a block.Device wrapper
// that encrypts every 4 KiB block with AES-XTS-256, the block number as the
// tweak (Device, over xts.go), and the volume's data key, random per volume, kept only
// wrapped by a key derived from a passphrase with Argon2id (Wrapped), as
// LUKS keeps its master key. The wrapper sits on the attach node above the
// engine, so replicas, the network, snapshots, clones, rebuilds and
// backups only ever see ciphertext, and checksums cover the ciphertext.
package crypt

import (
	"fmt"
	"sync"

	"github.com/ballast-io/ballast/pool/block"
)

// KeySize is the size of a data key: two AES-256 keys, as XTS takes.
const KeySize = 64

// Device encrypts what it writes to the device under it and decrypts what
// it reads. A block that reads back as all zeros under it (never written,
// or discarded) reads as all zeros: that shows which blocks were ever
// written, as dm-crypt with discards does, but nothing of their content;
// every write is encrypted, zeros too.
type Device struct {
	dev    block.Device
	cipher *xtsCipher
	bufs   sync.Pool // []byte of block.Size multiples, for writes
}

var _ block.Device = (*Device)(nil)

// New returns dev encrypted with key (KeySize bytes).
func New(dev block.Device, key []byte) (*Device, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("crypt: a data key has %d bytes, not %d", KeySize, len(key))
	}
	c, err := newXTS(key)
	if err != nil {
		return nil, err
	}
	return &Device{dev: dev, cipher: c}, nil
}

func (d *Device) Size() int64  { return d.dev.Size() }
func (d *Device) Flush() error { return d.dev.Flush() }

// Discard discards under d: the blocks then read as zeros.
func (d *Device) Discard(off, length int64) error { return d.dev.Discard(off, length) }

func checkAligned(op string, off int64, n int) error {
	if off%block.Size != 0 || n%block.Size != 0 {
		return fmt.Errorf("crypt: %s of %d bytes at %d: %w", op, n, off, block.ErrUnaligned)
	}
	return nil
}

// ReadAt reads whole blocks and decrypts them in place.
func (d *Device) ReadAt(p []byte, off int64) (int, error) {
	if err := checkAligned("read", off, len(p)); err != nil {
		return 0, err
	}
	n, err := d.dev.ReadAt(p, off)
	if err != nil {
		return n, err
	}
	for i := 0; i < len(p); i += block.Size {
		b := p[i : i+block.Size]
		if !block.AllZero(b) {
			d.cipher.Decrypt(b, b, uint64(off/block.Size)+uint64(i/block.Size))
		}
	}
	return n, nil
}

// WriteAt encrypts p into a buffer of its own (p is the caller's) and
// writes that.
func (d *Device) WriteAt(p []byte, off int64) (int, error) {
	if err := checkAligned("write", off, len(p)); err != nil {
		return 0, err
	}
	buf := d.buffer(len(p))
	defer d.bufs.Put(buf)
	c := (*buf)[:len(p)]
	for i := 0; i < len(p); i += block.Size {
		d.cipher.Encrypt(c[i:i+block.Size], p[i:i+block.Size], uint64(off/block.Size)+uint64(i/block.Size))
	}
	if _, err := d.dev.WriteAt(c, off); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (d *Device) buffer(n int) *[]byte {
	if b, ok := d.bufs.Get().(*[]byte); ok && cap(*b) >= n {
		return b
	}
	b := make([]byte, n)
	return &b
}
