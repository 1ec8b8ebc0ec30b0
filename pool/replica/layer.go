package replica

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ballast-io/ballast/pool/block"
)

// layer is one copy-on-write layer: a sparse data file and its checksum
// table, plus the in-memory map of the blocks it holds. A layer may be shared
// by several open replicas of the same store (a clone and its source).
type layer struct {
	id      string
	nblocks int64
	data    *os.File // the layer file, O_DIRECT when the filesystem allows it: reads
	file    *os.File // the same file, buffered: writes, fdatasync, rebuild
	ents    []byte   // the checksum table, mapped shared: see writeEntries
	direct  bool
	present *presence
	dirty   atomic.Bool // written since the last sync
	refs    int         // open replicas using the layer, guarded by Store.mu
}

// layerPath is the file of a layer: its data (block i at offset i*4096)
// followed, at offset size, by its checksum table. One file, so one
// fdatasync makes both durable.
func layerPath(dir, id string) string {
	return filepath.Join(dir, "layers", id+".data")
}

// createLayer creates the empty, sparse file of a layer for a volume of
// size bytes and makes its name durable.
func createLayer(dir, id string, size int64) error {
	fh, err := os.OpenFile(layerPath(dir, id), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	err = fh.Truncate(size + size/block.Size*entrySize)
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		removeLayerFiles(dir, id)
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	if err := syncDir(filepath.Join(dir, "layers")); err != nil {
		removeLayerFiles(dir, id)
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	return nil
}

// removeLayerFiles deletes a layer's file; a missing file is not an error.
func removeLayerFiles(dir, id string) error {
	if err := os.Remove(layerPath(dir, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// openDirect opens path read-write with O_DIRECT, falling back to buffered
// I/O when the filesystem refuses O_DIRECT (EINVAL, e.g. tmpfs).
func openDirect(path string) (*os.File, bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_DIRECT, 0)
	if err == nil {
		return f, true, nil
	}
	if !errors.Is(err, syscall.EINVAL) {
		return nil, false, err
	}
	f, err = os.OpenFile(path, os.O_RDWR, 0)
	return f, false, err
}

// openLayer opens an existing layer of a volume of size bytes and rebuilds
// its presence map from the checksum table.
func openLayer(dir, id string, size int64) (*layer, error) {
	path := layerPath(dir, id)
	data, direct, err := openDirect(path)
	if err != nil {
		return nil, fmt.Errorf("open layer %s: %w", id, err)
	}
	file, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		data.Close()
		return nil, fmt.Errorf("open layer %s: %w", id, err)
	}
	l := &layer{id: id, nblocks: size / block.Size, data: data, file: file, direct: direct, present: newPresence()}
	if l.nblocks > 0 {
		// Reads through a shared mapping see every pwrite at once (one page
		// cache). Writes stay pwrite: ENOSPC is then an error, not SIGBUS.
		l.ents, err = unix.Mmap(int(file.Fd()), l.table(), int(l.nblocks*entrySize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			l.close()
			return nil, fmt.Errorf("open layer %s: map checksums: %w", id, err)
		}
	}
	if err := l.rebuild(); err != nil {
		l.close()
		return nil, fmt.Errorf("open layer %s: %w", id, err)
	}
	return l, nil
}

func (l *layer) close() error {
	var unmap error
	if l.ents != nil {
		unmap = unix.Munmap(l.ents)
		l.ents = nil
	}
	return errors.Join(unmap, l.data.Close(), l.file.Close())
}

// rebuild fills the presence map from the checksum table, reading only its data
// extents (SEEK_DATA/SEEK_HOLE), so a mostly empty volume opens fast.
func (l *layer) rebuild() error {
	end := l.table() + l.nblocks*entrySize
	buf := make([]byte, 1<<20)
	for off := l.table(); off < end; {
		start, err := l.file.Seek(off, unix.SEEK_DATA)
		if errors.Is(err, syscall.ENXIO) {
			break // no data past off
		}
		stop := end
		if err == nil {
			if h, herr := l.file.Seek(start, unix.SEEK_HOLE); herr == nil && h < end {
				stop = h
			}
		} else {
			start = off // SEEK_DATA unsupported: read everything
		}
		start -= (start - l.table()) % entrySize
		for pos := start; pos < stop; {
			n := min(int64(len(buf)), stop-pos)
			n -= n % entrySize
			if n == 0 {
				break
			}
			got, err := l.file.ReadAt(buf[:n], pos)
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read checksums: %w", err)
			}
			for i := 0; i+entrySize <= got; i += entrySize {
				if buf[i+8]&0x0f != stateAbsent {
					l.present.set((pos-l.table()+int64(i))/entrySize, 1)
				}
			}
			if got < int(n) {
				break
			}
			pos += n
		}
		off = stop
	}
	return nil
}

// readEntries returns a copy of the checksum entries of blocks [b, b+n).
func (l *layer) readEntries(b, n int64) ([]byte, error) {
	if b < 0 || n < 0 || b+n > l.nblocks {
		return nil, fmt.Errorf("layer %s: checksum entries %d+%d out of range", l.id, b, n)
	}
	return slices.Clone(l.ents[b*entrySize : (b+n)*entrySize]), nil
}

// writeEntries stores the checksum entries of blocks from b on. They go
// through the shared mapping rather than pwrite: a pwrite of a few bytes
// would read the page first and take the inode lock once more per write
// (when the data was written O_DIRECT, measured: 4 KiB random writes fell
// to half). A fault on
// the mapping (the host disk full when a page of the table is first
// allocated, or an I/O error) becomes an error instead of a crash.
func (l *layer) writeEntries(ents []byte, b int64) (err error) {
	if b < 0 || b+int64(len(ents))/entrySize > l.nblocks {
		return fmt.Errorf("layer %s: checksum entries at %d out of range", l.id, b)
	}
	l.dirty.Store(true)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("layer %s: write checksums: %v", l.id, r)
		}
	}()
	copy(l.ents[b*entrySize:], ents)
	return nil
}

// readData reads the data of blocks starting at b into p in one pread.
func (l *layer) readData(p []byte, b int64) error {
	buf := p
	var bb bounce
	if l.direct && !isAligned(p) {
		bb = getBounce(len(p))
		defer bb.release()
		buf = bb.buf
	}
	n, err := l.data.ReadAt(buf, b*block.Size)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("layer %s: read data: %w", l.id, err)
	}
	clear(buf[n:])
	if bb.buf != nil {
		copy(p, buf)
	}
	return nil
}

// directWriteMin is the size from which a write bypasses the page cache
// (O_DIRECT, where the filesystem allows it).
const directWriteMin = 64 << 10

// writeData writes p as the data of blocks starting at b in one pwrite.
// Small writes are buffered: the data reaches the disk at the next flush
// (fdatasync), as with any disk with a write cache, which is what the
// filesystem above expects (it flushes before it relies on a write).
// Measured against O_DIRECT writes in interleaved runs here
// (docs/architecture.md, "The data path"): 4 KiB random writes at queue
// depth 16 about 2x, 4 KiB writes with an fsync each 1.2-1.5x, because the
// write no longer waits for the disk and the flush then writes data and
// checksums together. Writes of directWriteMin or more (sequential
// streams, a rebuild's copy) stay O_DIRECT: buffered, a rebuild's dirty
// pages throttled every other writer of the host (the foreground during a
// rebuild fell from 0.9x to 0.3x of its speed before). Reads are O_DIRECT
// (readData); the kernel writes back dirty pages of a range before an
// O_DIRECT read or write of it, so every write is seen.
func (l *layer) writeData(p []byte, b int64) error {
	f, buf := l.file, p
	if l.direct && len(p) >= directWriteMin {
		f = l.data
		if !isAligned(p) {
			bb := getBounce(len(p))
			defer bb.release()
			copy(bb.buf, p)
			buf = bb.buf
		}
	}
	if _, err := f.WriteAt(buf, b*block.Size); err != nil {
		return fmt.Errorf("layer %s: write data: %w", l.id, err)
	}
	return nil // put marked the layer dirty with the new checksums
}

// read reads blocks [b, b+len(v)) into p and verifies them, recording what
// each block means in v. Blocks that read as zeros are zeroed in p. A block
// left half-written by a crash is settled: its entry is rewritten to the
// state the data matches.
func (l *layer) read(p []byte, b int64, v []verdict) error {
	n := int64(len(v))
	ents, err := l.readEntries(b, n)
	if err != nil {
		return err
	}
	hasData := false
	for i := range n {
		if ents[i*entrySize+8]&0x0f == stateData {
			hasData = true
			break
		}
	}
	if hasData {
		if err := l.readData(p, b); err != nil {
			return err
		}
	}
	for i := range n {
		blk := p[i*block.Size : (i+1)*block.Size]
		e := decodeEntry(ents[i*entrySize:])
		var c uint32
		if e.cur.state == stateData {
			c = checksum(blk)
		}
		v[i] = e.judge(c)
		if v[i] == vZero {
			clear(blk)
		}
		if e.cur.state == stateData && c != e.cur.crc && v[i] != vBad {
			l.settle(b+i, e)
		}
	}
	return nil
}

// settle rewrites the entry of a block whose last write never landed so
// that it describes the content actually there (the previous slot). Errors
// are only logged: the entry stays readable as it is.
func (l *layer) settle(b int64, e entry) {
	e.cur = e.prev
	var buf [entrySize]byte
	e.encode(buf[:])
	if err := l.writeEntries(buf[:], b); err != nil {
		slog.Warn("replica: settle torn block", "layer", l.id, "block", b, "err", err)
		return
	}
	if e.cur.state == stateAbsent {
		l.present.clear(b, 1)
	}
}

// advance moves each entry of blocks [b, b+n) on: its current slot
// becomes the previous one and next(i, current) the current one, so that
// after a crash the data matches one of the two (see crc.go).
func (l *layer) advance(b, n int64, next func(i int64, cur slot) slot) error {
	ents, err := l.readEntries(b, n)
	if err != nil {
		return err
	}
	for i := range n {
		eb := ents[i*entrySize : (i+1)*entrySize]
		e := decodeEntry(eb)
		e.prev, e.cur = e.cur, next(i, e.cur)
		e.encode(eb)
	}
	return l.writeEntries(ents, b)
}

// put writes blocks [b, b+n) of p into the layer: new checksums first
// (keeping the previous state of each block), then the data. Blocks with
// zeroed[i] set (zeroed may be nil) are recorded as zeroed instead.
func (l *layer) put(p []byte, b, n int64, zeroed []bool) error {
	err := l.advance(b, n, func(i int64, cur slot) slot {
		if zeroed != nil && zeroed[i] {
			return slot{state: stateZeroed, crc: cur.crc}
		}
		return slot{state: stateData, crc: checksum(p[i*block.Size : (i+1)*block.Size])}
	})
	if err != nil {
		return err
	}
	if err := l.writeData(p[:n*block.Size], b); err != nil {
		return err
	}
	l.present.set(b, n)
	return nil
}

// discard records blocks [b, b+len(lower)) as discarded: zeroed where a
// lower layer holds the block (lower[i]), absent otherwise. The caller
// punches the data afterwards.
func (l *layer) discard(b int64, lower []bool) error {
	n := int64(len(lower))
	err := l.advance(b, n, func(i int64, cur slot) slot {
		next := slot{state: stateAbsent, crc: cur.crc} // crc: stale content until punched
		if lower[i] {
			next.state = stateZeroed
		}
		return next
	})
	if err != nil {
		return err
	}
	for i := int64(0); i < n; {
		j := i + 1
		for j < n && lower[j] == lower[i] {
			j++
		}
		if lower[i] {
			l.present.set(b+i, j-i)
		} else {
			l.present.clear(b+i, j-i)
		}
		i = j
	}
	return nil
}

// punch deallocates the data of blocks [b, b+n).
func (l *layer) punch(b, n int64) error {
	err := unix.Fallocate(int(l.data.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, b*block.Size, n*block.Size)
	if err != nil {
		return fmt.Errorf("layer %s: punch hole: %w", l.id, err)
	}
	return nil
}

// sync makes the layer's data and checksums durable.
// table is the offset of the checksum table in the layer file.
func (l *layer) table() int64 { return l.nblocks * block.Size }

// sync makes the layer's data and checksums durable with one fdatasync of
// the file. The dirty mark is cleared first, so a write that lands during
// the sync marks the layer for the next one.
func (l *layer) sync() error {
	l.dirty.Store(false)
	if err := unix.Fdatasync(int(l.file.Fd())); err != nil {
		l.dirty.Store(true)
		return fmt.Errorf("layer %s: fdatasync: %w", l.id, err)
	}
	return nil
}

// allocated returns the bytes the layer's files occupy on disk.
func (l *layer) allocated() int64 {
	var total int64
	var st unix.Stat_t
	if unix.Fstat(int(l.data.Fd()), &st) == nil {
		total += st.Blocks * 512
	}
	return total
}
