// Package block defines the interface that every piece of Ballast's data path
// speaks: a replica on a disk (pool/replica), a replica across the network
// (pool/remote), the replicated volume engine (pool/engine) and the wrapper
// that counts a volume's I/O for Prometheus (pool/metrics). The pieces
// compose the way io.ReaderAt and io.WriterAt do. See docs/architecture.md,
// "The block layer".
package block

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Size is the unit of checksumming, allocation and I/O alignment: 4 KiB.
// The loop device in front of a volume uses 4096-byte sectors, so the kernel
// never sends a request that is not a whole number of blocks.
const Size = 4096

// Device is a fixed-size array of bytes that can be read, written, flushed to
// stable storage and discarded (returned to the pool, reading back as zeros).
//
// Offsets and lengths passed to a Device are multiples of Size. ReadAt and
// WriteAt follow io.ReaderAt and io.WriterAt, and may be called concurrently
// for non-overlapping ranges. Flush returns only after every write that
// completed before it was called is on stable storage.
type Device interface {
	io.ReaderAt
	io.WriterAt
	Flush() error
	Discard(off, length int64) error
	Size() int64
}

// ErrUnaligned is returned for an offset or length that is not a multiple
// of Size.
var ErrUnaligned = errors.New("unaligned block I/O")

// ErrOutOfRange is returned for I/O past the end of the device.
var ErrOutOfRange = errors.New("block I/O out of range")

// Check validates an I/O request of n bytes at off against a device of size
// total. Every Device implementation calls it first.
func Check(off, n, total int64) error {
	if off%Size != 0 || n%Size != 0 {
		return fmt.Errorf("offset %d length %d: %w", off, n, ErrUnaligned)
	}
	if off < 0 || n < 0 || off+n > total {
		return fmt.Errorf("offset %d length %d size %d: %w", off, n, total, ErrOutOfRange)
	}
	return nil
}

// ChecksumError reports blocks whose stored checksum does not match their
// data. The engine repairs them from another replica.
type ChecksumError struct {
	Offsets []int64 // byte offsets of the bad blocks
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("checksum mismatch in %d block(s), first at offset %d", len(e.Offsets), e.Offsets[0])
}

// zeros is what AllZero compares with, a piece at a time.
var zeros [64 << 10]byte

// AllZero reports whether b holds only zeros. It compares with a buffer
// of zeros (bytes.Equal uses vector instructions: a loop over the bytes
// costs a read about as much as decrypting it).
func AllZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}
