// Package blocktest has the helpers the block-layer tests share: blocks
// whose content names them, written and read back through any device.
package blocktest

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/ballast-io/ballast/pool/block"
)

// Fill returns n blocks whose content identifies tag and the block
// numbers first to first+n-1, so that a block read from the wrong place,
// or from another write, differs.
func Fill(tag string, first, n int64) []byte {
	const bs = block.Size
	p := make([]byte, n*bs)
	for i := range n {
		blk := p[i*bs : (i+1)*bs]
		copy(blk, fmt.Sprintf("%s block %d ", tag, first+i))
		for j := 64; j < bs; j++ {
			blk[j] = byte(j) ^ byte(first+i) ^ byte(len(tag))
		}
	}
	return p
}

// Write writes Fill(tag, first, n) at block first of d and returns it.
func Write(t testing.TB, d io.WriterAt, tag string, first, n int64) []byte {
	t.Helper()
	p := Fill(tag, first, n)
	if _, err := d.WriteAt(p, first*block.Size); err != nil {
		t.Fatal(err)
	}
	return p
}

// Read reads n blocks from block first of d.
func Read(t testing.TB, d io.ReaderAt, first, n int64) []byte {
	t.Helper()
	p := make([]byte, n*block.Size)
	if _, err := d.ReadAt(p, first*block.Size); err != nil {
		t.Fatal(err)
	}
	return p
}

// Replica makes d a block.Replica for tests: Repair and Resize use d's
// own methods where it has them (Repair writes the good data back
// otherwise, Resize is unsupported), Snapshot and DeleteSnapshot are
// unsupported, and Fence and Close do nothing.
func Replica(d block.Device) block.Replica { return replica{d} }

type replica struct{ block.Device }

func (r replica) Repair(off int64, good []byte) error {
	if rp, ok := r.Device.(interface{ Repair(int64, []byte) error }); ok {
		return rp.Repair(off, good)
	}
	_, err := r.WriteAt(good, off)
	return err
}

func (r replica) Resize(size int64) error {
	if rs, ok := r.Device.(interface{ Resize(int64) error }); ok {
		return rs.Resize(size)
	}
	return fmt.Errorf("resize: %w", errors.ErrUnsupported)
}

func (r replica) Snapshot(string) error { return fmt.Errorf("snapshot: %w", errors.ErrUnsupported) }
func (r replica) DeleteSnapshot(string) error {
	return fmt.Errorf("delete snapshot: %w", errors.ErrUnsupported)
}
func (r replica) Fence(uint64) error { return nil }
func (r replica) Close() error       { return nil }
