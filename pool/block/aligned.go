package block

import "unsafe"

// Aligned allocates n bytes aligned to Size, as O_DIRECT I/O needs.
func Aligned(n int) []byte {
	b := make([]byte, n+Size)
	off := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) % Size); r != 0 {
		off = Size - r
	}
	return b[off : off+n : off+n]
}
