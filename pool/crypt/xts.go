package crypt

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
)

// xtsCipher is AES-XTS (IEEE 1619) with a data unit of a whole block
// (block.Size bytes) and the block number as the tweak: what
// golang.org/x/crypto/xts computes, byte for byte (TestXTSMatchesXCrypto).
// x/crypto/xts pays a copy, a byte-wise GF(2^128) doubling and more per 16
// bytes; this one whitens the unit with all its tweaks, runs the AES over it
// in one loop, and whitens again. crypto/aes runs one block per call, and
// each call waits out the whole AES latency; where the CPU has AES-NI,
// xts_amd64.s runs eight blocks through the rounds at once, whitening
// included, with the round keys of aeskey.go. BenchmarkXTS, on these
// machines: 10-17 µs per 4 KiB for x/crypto/xts, 4.8-5.7 µs for the Go
// loop, 2.5-3.8 µs for crypto/aes alone, and see there for the assembly.
type xtsCipher struct {
	k1, k2 cipher.Block
	// ek and dk are k1's round keys, tk k2's, for xts_amd64.s; nil
	// without AES-NI.
	ek, dk, tk *roundKeys
}

func newXTS(key []byte) (*xtsCipher, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("crypt: a data key has %d bytes, not %d", KeySize, len(key))
	}
	k1, err := aes.NewCipher(key[:KeySize/2])
	if err != nil {
		return nil, err
	}
	k2, err := aes.NewCipher(key[KeySize/2:])
	if err != nil {
		return nil, err
	}
	c := &xtsCipher{k1: k1, k2: k2}
	if useAESNI {
		c.ek = expandKey(key[:KeySize/2])
		c.dk = decryptKeys(c.ek)
		c.tk = expandKey(key[KeySize/2:])
	}
	return c, nil
}

// Encrypt encrypts src (a multiple of 16 bytes) into dst, which may be
// src, as data unit number unit.
func (c *xtsCipher) Encrypt(dst, src []byte, unit uint64) { c.crypt(dst, src, unit, false) }

// Decrypt decrypts what Encrypt encrypted.
func (c *xtsCipher) Decrypt(dst, src []byte, unit uint64) { c.crypt(dst, src, unit, true) }

// crypt runs XTS over src into dst: with AES-NI, eight blocks at a time,
// where the CPU has it and the unit is a multiple of eight blocks, else
// with crypto/aes one block at a time.
func (c *xtsCipher) crypt(dst, src []byte, unit uint64, decrypt bool) {
	n := len(src) &^ 15
	dst, src = dst[:n], src[:n]
	if c.ek != nil && n > 0 && n%128 == 0 {
		c.cryptAESNI(dst, src, unit, decrypt)
		return
	}
	c.cryptGo(dst, src, unit, decrypt)
}

// cryptAESNI is crypt in assembly, the tweak too: everything it passes
// stays on the stack (a call through cipher.Block or a func value would
// move it to the heap, once per block of I/O).
func (c *xtsCipher) cryptAESNI(dst, src []byte, unit uint64, decrypt bool) {
	var t [16]byte
	binary.LittleEndian.PutUint64(t[:8], unit)
	aesEncrypt1(c.tk, &t)
	var scratch [128]byte
	if decrypt {
		xtsDecrypt8(c.dk, &dst[0], &src[0], len(src)/128, &t, &scratch)
	} else {
		xtsEncrypt8(c.ek, &dst[0], &src[0], len(src)/128, &t, &scratch)
	}
}

// cryptGo is crypt over crypto/aes, for len(src) a multiple of 16.
func (c *xtsCipher) cryptGo(dst, src []byte, unit uint64, decrypt bool) {
	le := binary.LittleEndian
	var t [16]byte
	le.PutUint64(t[:8], unit)
	c.k2.Encrypt(t[:], t[:])
	n := len(src)
	aes := c.k1.Encrypt
	if decrypt {
		aes = c.k1.Decrypt
	}
	t0, t1 := le.Uint64(t[:8]), le.Uint64(t[8:])
	// The tweaks, one per 16 bytes, kept for the second whitening: the
	// AES then runs over the whole unit in one tight loop.
	var tw [2 * 512]uint64 // up to 8 KiB units on the stack
	if n/8 > len(tw) {
		panic("crypt: xts unit larger than 8 KiB")
	}
	for i := 0; i < n; i += 16 {
		k := i / 8
		tw[k], tw[k+1] = t0, t1
		le.PutUint64(dst[i:], le.Uint64(src[i:])^t0)
		le.PutUint64(dst[i+8:], le.Uint64(src[i+8:])^t1)
		// t *= x in GF(2^128), little-endian, as IEEE 1619 doubles it.
		carry := t1 >> 63
		t1 = t1<<1 | t0>>63
		t0 = t0<<1 ^ carry*0x87
	}
	for i := 0; i < n; i += 16 {
		aes(dst[i:i+16], dst[i:i+16])
	}
	for i := 0; i < n; i += 16 {
		k := i / 8
		le.PutUint64(dst[i:], le.Uint64(dst[i:])^tw[k])
		le.PutUint64(dst[i+8:], le.Uint64(dst[i+8:])^tw[k+1])
	}
}
