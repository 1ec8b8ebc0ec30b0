//go:build !amd64 || purego

package crypt

// useAESNI: no assembly here; xtsCipher runs crypto/aes block by block.
const useAESNI = false

func xtsEncrypt8(*roundKeys, *byte, *byte, int, *[16]byte, *[128]byte) { panic("no AES-NI") }
func xtsDecrypt8(*roundKeys, *byte, *byte, int, *[16]byte, *[128]byte) { panic("no AES-NI") }
func aesEncrypt1(*roundKeys, *[16]byte)                                { panic("no AES-NI") }
