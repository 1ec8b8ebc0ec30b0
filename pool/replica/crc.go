package replica

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/ballast-io/ballast/pool/block"
)

// castagnoli is the CRC32C table (hardware accelerated on amd64 and arm64).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crcZero is the checksum of a block of zeros: what a hole reads back as.
var crcZero = checksum(make([]byte, block.Size))

func checksum(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// entrySize is the size of one block's entry in a layer's checksum table.
//
// Entry format (little endian), entry i at offset size+i*16 of the layer file:
//
//	bytes 0-3   current slot: CRC32C
//	bytes 4-7   previous slot: CRC32C
//	byte  8     low nibble: current state, high nibble: previous state
//	bytes 9-15  reserved, zero
//
// A state is one of stateAbsent, stateData or stateZeroed. For stateData the
// slot's CRC is the checksum of the block's content. For stateAbsent and
// stateZeroed it is the checksum of stale content that may still be in the
// data file because a discard was interrupted before its hole punch (0 when
// there is none); a hole (crcZero) is always acceptable too.
//
// An all-zero entry (a hole in the table) is a block never written.
//
// A write moves current to previous, stores the new checksum as current, and
// only then writes the data, so after a crash the data matches one of the two
// slots. A read accepts:
//
//	current data, CRC matches current        the new content
//	previous data, CRC matches previous      the old content (write never landed)
//	previous absent, hole or stale content   fall through to the lower layers
//	previous zeroed, hole or stale content   zeros
//
// and anything else is a checksum error. A read that finds a block in one of
// the previous-slot cases settles it: the entry is rewritten to describe what
// is really there.
//
// Known limits: a block written once whose data is later lost to zeros is
// indistinguishable from a write that never landed and reads as absent
// rather than as a checksum error; and two crashes interrupting writes to the
// same block with no read of it in between leave a mismatch (reported, and
// repaired from another replica, like power loss).
const entrySize = 16

// Block states, as stored in an entry's state nibbles.
const (
	stateAbsent uint8 = 0 // not in this layer: read falls through
	stateData   uint8 = 1 // data in this layer, checksummed
	stateZeroed uint8 = 2 // discarded over a lower layer: reads as zeros
)

// slot is one of the two (state, checksum) pairs of an entry.
type slot struct {
	state uint8
	crc   uint32
}

// entry is the decoded checksum/state record of one block.
type entry struct {
	cur, prev slot
}

func decodeEntry(b []byte) entry {
	return entry{
		cur:  slot{state: b[8] & 0x0f, crc: binary.LittleEndian.Uint32(b[0:4])},
		prev: slot{state: b[8] >> 4, crc: binary.LittleEndian.Uint32(b[4:8])},
	}
}

func (e entry) encode(b []byte) {
	binary.LittleEndian.PutUint32(b[0:4], e.cur.crc)
	binary.LittleEndian.PutUint32(b[4:8], e.prev.crc)
	b[8] = e.cur.state&0x0f | e.prev.state<<4
	clear(b[9:entrySize])
}

// verdict is what a read makes of one block.
type verdict uint8

const (
	vData verdict = iota // the data read is the block's content
	vZero                // the block reads as zeros
	vFall                // the block is not in this layer: read the lower layers
	vBad                 // checksum mismatch
)

// judge decides what a block read from a layer means, given its entry and
// the checksum c of the data read from the data file.
func (e entry) judge(c uint32) verdict {
	switch e.cur.state {
	case stateAbsent:
		return vFall
	case stateZeroed:
		return vZero
	}
	if c == e.cur.crc {
		return vData
	}
	stale := c == crcZero || (e.prev.crc != 0 && c == e.prev.crc)
	switch e.prev.state {
	case stateData:
		if c == e.prev.crc {
			return vData
		}
	case stateAbsent:
		if stale {
			return vFall
		}
	case stateZeroed:
		if stale {
			return vZero
		}
	}
	return vBad
}
