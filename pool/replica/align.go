package replica

import (
	"sync"
	"unsafe"

	"github.com/ballast-io/ballast/pool/block"
)

// O_DIRECT I/O needs buffers aligned to the block size. Callers' buffers
// that are not aligned are copied through pooled aligned buffers.

// poolBufSize is the size of pooled bounce buffers: the largest FUSE request.
const poolBufSize = 1 << 20

var bouncePool = sync.Pool{New: func() any {
	b := block.Aligned(poolBufSize)
	return &b
}}

func isAligned(p []byte) bool {
	return len(p) == 0 || uintptr(unsafe.Pointer(&p[0]))%block.Size == 0
}

// bounce is an aligned buffer of n bytes; release returns it to the pool.
type bounce struct {
	buf  []byte
	pool *[]byte
}

func getBounce(n int) bounce {
	if n > poolBufSize {
		return bounce{buf: block.Aligned(n)}
	}
	pb := bouncePool.Get().(*[]byte)
	return bounce{buf: (*pb)[:n], pool: pb}
}

func (b bounce) release() {
	if b.pool != nil {
		bouncePool.Put(b.pool)
	}
}
