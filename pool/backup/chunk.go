package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// ChunkSize is the unit of a backup: each 2 MiB of the volume is one
// object, or none when it holds only zeros. (Longhorn chose 2 MiB too:
// small enough that an incremental backup uploads little more than what
// changed, large enough that a 4 GiB volume is 2048 objects.)
const ChunkSize = 2 << 20

// chunkMagic starts every stored chunk, before its checksum and payload.
var chunkMagic = []byte("BLSTCHK1")

const chunkHeader = 8 + 4 // magic, CRC-32C of the payload

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	encOnce sync.Once
	enc     *zstd.Encoder
	dec     *zstd.Decoder
)

func codec() (*zstd.Encoder, *zstd.Decoder) {
	encOnce.Do(func() {
		var err error
		// Fastest: the backup's CPU is shared with the volume's I/O.
		if enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1)); err != nil {
			panic(err)
		}
		if dec, err = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(ChunkSize), zstd.WithDecoderConcurrency(0)); err != nil {
			panic(err)
		}
	})
	return enc, dec
}

// Address is the name of a chunk's content: the hex SHA-256 of its bytes
// before compression. Equal content is stored once.
func Address(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// chunkKey is where the chunk of an address is kept, spread over 256
// directories.
func chunkKey(addr string) string { return "chunks/" + addr[:2] + "/" + addr }

// addrOfKey returns the address of a chunk key, or "" if key is not one.
func addrOfKey(key string) string {
	if len(key) != len("chunks/xx/")+64 || key[:7] != "chunks/" || key[7:9] != key[10:12] {
		return ""
	}
	return key[10:]
}

// encodeChunk compresses data and frames it with its checksum.
func encodeChunk(data []byte) []byte {
	e, _ := codec()
	out := make([]byte, chunkHeader, chunkHeader+len(data)/2)
	copy(out, chunkMagic)
	out = e.EncodeAll(data, out)
	binary.BigEndian.PutUint32(out[8:12], crc32.Checksum(out[chunkHeader:], castagnoli))
	return out
}

// decodeChunk checks a stored chunk's frame and checksum, decompresses it
// and checks its content against addr.
func decodeChunk(stored []byte, addr string) ([]byte, error) {
	if len(stored) < chunkHeader || !bytes.Equal(stored[:8], chunkMagic) {
		return nil, fmt.Errorf("chunk %s: %w: not a chunk (bad header)", addr, ErrCorrupt)
	}
	if got, want := crc32.Checksum(stored[chunkHeader:], castagnoli), binary.BigEndian.Uint32(stored[8:12]); got != want {
		return nil, fmt.Errorf("chunk %s: %w: checksum %08x, stored %08x", addr, ErrCorrupt, got, want)
	}
	_, d := codec()
	data, err := d.DecodeAll(stored[chunkHeader:], make([]byte, 0, ChunkSize))
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w: %w", addr, ErrCorrupt, err)
	}
	if got := Address(data); got != addr {
		return nil, fmt.Errorf("chunk %s: %w: content hashes to %s", addr, ErrCorrupt, got)
	}
	return data, nil
}
