package replica

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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
	data    *os.File // O_DIRECT when the filesystem allows it
	crc     *os.File // buffered: small, page-cached entries
	direct  bool
	present *presence
	dirty   atomic.Bool // written since the last sync
	refs    int         // open replicas using the layer, guarded by Store.mu
}

func layerPaths(dir, id string) (data, crc string) {
	base := filepath.Join(dir, "layers", id)
	return base + ".data", base + ".crc"
}

// createLayer creates the empty, sparse files of a layer for a volume of
// size bytes and makes their names durable.
func createLayer(dir, id string, size int64) error {
	dataPath, crcPath := layerPaths(dir, id)
	for _, f := range []struct {
		path string
		size int64
	}{{dataPath, size}, {crcPath, size / block.Size * entrySize}} {
		fh, err := os.OpenFile(f.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			removeLayerFiles(dir, id)
			return fmt.Errorf("create layer %s: %w", id, err)
		}
		err = fh.Truncate(f.size)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			removeLayerFiles(dir, id)
			return fmt.Errorf("create layer %s: %w", id, err)
		}
	}
	if err := syncDir(filepath.Join(dir, "layers")); err != nil {
		removeLayerFiles(dir, id)
		return fmt.Errorf("create layer %s: %w", id, err)
	}
	return nil
}

// removeLayerFiles deletes a layer's files; missing files are not an error.
func removeLayerFiles(dir, id string) error {
	dataPath, crcPath := layerPaths(dir, id)
	var errs []error
	for _, p := range []string{dataPath, crcPath} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
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
	dataPath, crcPath := layerPaths(dir, id)
	data, direct, err := openDirect(dataPath)
	if err != nil {
		return nil, fmt.Errorf("open layer %s: %w", id, err)
	}
	crc, err := os.OpenFile(crcPath, os.O_RDWR, 0)
	if err != nil {
		data.Close()
		return nil, fmt.Errorf("open layer %s: %w", id, err)
	}
	l := &layer{id: id, nblocks: size / block.Size, data: data, crc: crc, direct: direct, present: newPresence()}
	if err := l.rebuild(); err != nil {
		l.close()
		return nil, fmt.Errorf("open layer %s: %w", id, err)
	}
	return l, nil
}

func (l *layer) close() error {
	return errors.Join(l.data.Close(), l.crc.Close())
}

// rebuild fills the presence map from the .crc file, reading only its data
// extents (SEEK_DATA/SEEK_HOLE), so a mostly empty volume opens fast.
func (l *layer) rebuild() error {
	end := l.nblocks * entrySize
	buf := make([]byte, 1<<20)
	for off := int64(0); off < end; {
		start, err := l.crc.Seek(off, unix.SEEK_DATA)
		if errors.Is(err, syscall.ENXIO) {
			break // no data past off
		}
		stop := end
		if err == nil {
			if h, herr := l.crc.Seek(start, unix.SEEK_HOLE); herr == nil && h < end {
				stop = h
			}
		} else {
			start = off // SEEK_DATA unsupported: read everything
		}
		start -= start % entrySize
		for pos := start; pos < stop; {
			n := min(int64(len(buf)), stop-pos)
			n -= n % entrySize
			if n == 0 {
				break
			}
			got, err := l.crc.ReadAt(buf[:n], pos)
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read checksums: %w", err)
			}
			for i := 0; i+entrySize <= got; i += entrySize {
				if buf[i+8]&0x0f != stateAbsent {
					l.present.set((pos+int64(i))/entrySize, 1)
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

func (l *layer) readEntries(b, n int64) ([]byte, error) {
	ents := make([]byte, n*entrySize)
	if _, err := l.crc.ReadAt(ents, b*entrySize); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("layer %s: read checksums: %w", l.id, err)
	}
	return ents, nil
}

func (l *layer) writeEntries(ents []byte, b int64) error {
	l.dirty.Store(true)
	if _, err := l.crc.WriteAt(ents, b*entrySize); err != nil {
		return fmt.Errorf("layer %s: write checksums: %w", l.id, err)
	}
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

// writeData writes p as the data of blocks starting at b in one pwrite.
func (l *layer) writeData(p []byte, b int64) error {
	buf := p
	if l.direct && !isAligned(p) {
		bb := getBounce(len(p))
		defer bb.release()
		copy(bb.buf, p)
		buf = bb.buf
	}
	if _, err := l.data.WriteAt(buf, b*block.Size); err != nil {
		return fmt.Errorf("layer %s: write data: %w", l.id, err)
	}
	return nil
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

// put writes blocks [b, b+n) of p into the layer: new checksums first
// (keeping the previous state of each block), then the data. Blocks with
// zeroed[i] set (zeroed may be nil) are recorded as zeroed instead.
func (l *layer) put(p []byte, b, n int64, zeroed []bool) error {
	ents, err := l.readEntries(b, n)
	if err != nil {
		return err
	}
	for i := range n {
		eb := ents[i*entrySize : (i+1)*entrySize]
		e := decodeEntry(eb)
		e.prev = e.cur
		if zeroed != nil && zeroed[i] {
			e.cur = slot{state: stateZeroed, crc: e.cur.crc}
		} else {
			e.cur = slot{state: stateData, crc: checksum(p[i*block.Size : (i+1)*block.Size])}
		}
		e.encode(eb)
	}
	if err := l.writeEntries(ents, b); err != nil {
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
	ents, err := l.readEntries(b, n)
	if err != nil {
		return err
	}
	for i := range n {
		eb := ents[i*entrySize : (i+1)*entrySize]
		e := decodeEntry(eb)
		e.prev = e.cur
		e.cur = slot{state: stateAbsent, crc: e.cur.crc} // crc: stale content until punched
		if lower[i] {
			e.cur.state = stateZeroed
		}
		e.encode(eb)
	}
	if err := l.writeEntries(ents, b); err != nil {
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
func (l *layer) sync() error {
	l.dirty.Store(false)
	if err := unix.Fdatasync(int(l.data.Fd())); err != nil {
		return fmt.Errorf("layer %s: fdatasync data: %w", l.id, err)
	}
	if err := unix.Fdatasync(int(l.crc.Fd())); err != nil {
		return fmt.Errorf("layer %s: fdatasync checksums: %w", l.id, err)
	}
	return nil
}

// allocated returns the bytes the layer's files occupy on disk.
func (l *layer) allocated() int64 {
	var total int64
	for _, f := range []*os.File{l.data, l.crc} {
		var st unix.Stat_t
		if unix.Fstat(int(f.Fd()), &st) == nil {
			total += st.Blocks * 512
		}
	}
	return total
}
