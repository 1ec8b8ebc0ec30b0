//go:build amd64 && !purego

package crypt

import "golang.org/x/sys/cpu"

// useAESNI: xts_amd64.s runs the AES of whole data units, eight blocks at
// a time, where the CPU has AES-NI.
var useAESNI = cpu.X86.HasAES && cpu.X86.HasSSE2

// xtsEncrypt8 and xtsDecrypt8 run AES-XTS over groups of eight blocks of
// src into dst (which may be src), with round keys rk (for decryption,
// decryptKeys'), from tweak, the first block's, which they leave as the
// block's after the last. scratch holds a group's tweaks.
//
//go:noescape
func xtsEncrypt8(rk *roundKeys, dst, src *byte, groups int, tweak *[16]byte, scratch *[128]byte)

//go:noescape
func xtsDecrypt8(rk *roundKeys, dst, src *byte, groups int, tweak *[16]byte, scratch *[128]byte)

// aesEncrypt1 encrypts b in place with round keys rk.
//
//go:noescape
func aesEncrypt1(rk *roundKeys, b *[16]byte)
