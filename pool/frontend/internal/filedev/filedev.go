// Package filedev is a block.Device over a plain host file opened with
// O_DIRECT. It stands in for a real replica in the frontend tests: the
// child process that plays a daemon in the crash tests serves one through
// fuseloop.
package filedev

import (
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ballast-io/ballast/pool/block"
)

// File is a block.Device backed by a host file opened O_RDWR|O_DIRECT.
type File struct {
	f    *os.File
	fd   int
	size int64
}

var _ block.Device = (*File)(nil)

// Open opens (creating if needed) path as a device of size bytes. The file
// is truncated up to size (sparse), never down.
func Open(path string, size int64) (*File, error) {
	if size <= 0 || size%block.Size != 0 {
		return nil, fmt.Errorf("filedev: size %d is not a positive multiple of %d", size, block.Size)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_DIRECT, 0o600)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.Size() < size {
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, err
		}
	}
	return &File{f: f, fd: int(f.Fd()), size: size}, nil
}

func (d *File) Size() int64 { return d.size }

func (d *File) Close() error { return d.f.Close() }

var bounce = sync.Pool{New: func() any { return block.Aligned(1 << 20) }}

func aligned(p []byte) bool {
	return len(p) == 0 || uintptr(unsafe.Pointer(&p[0]))&(512-1) == 0
}

func (d *File) ReadAt(p []byte, off int64) (int, error) {
	if err := block.Check(off, int64(len(p)), d.size); err != nil {
		return 0, err
	}
	if aligned(p) {
		return d.pread(p, off)
	}
	done := 0
	for done < len(p) {
		b := bounce.Get().([]byte)
		n := min(len(b), len(p)-done)
		_, err := d.pread(b[:n], off+int64(done))
		copy(p[done:], b[:n])
		bounce.Put(b)
		if err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

func (d *File) pread(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Pread(d.fd, p[done:], off+int64(done))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, &os.PathError{Op: "pread", Path: d.f.Name(), Err: err}
		}
		if n == 0 { // hole past EOF cannot happen (file is sized), treat as zeros
			clear(p[done:])
			return len(p), nil
		}
		done += n
	}
	return done, nil
}

func (d *File) WriteAt(p []byte, off int64) (int, error) {
	if err := block.Check(off, int64(len(p)), d.size); err != nil {
		return 0, err
	}
	if aligned(p) {
		return d.pwrite(p, off)
	}
	done := 0
	for done < len(p) {
		b := bounce.Get().([]byte)
		n := copy(b, p[done:])
		_, err := d.pwrite(b[:n], off+int64(done))
		bounce.Put(b)
		if err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

func (d *File) pwrite(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Pwrite(d.fd, p[done:], off+int64(done))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, &os.PathError{Op: "pwrite", Path: d.f.Name(), Err: err}
		}
		done += n
	}
	return done, nil
}

func (d *File) Flush() error { return unix.Fdatasync(d.fd) }

func (d *File) Discard(off, length int64) error {
	if err := block.Check(off, length, d.size); err != nil {
		return err
	}
	return unix.Fallocate(d.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
}
