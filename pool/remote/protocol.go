// Package remote serves a replica to other nodes and reaches a replica on
// another node, over one TCP connection per replica.
//
// The protocol is pipelined: a client sends many requests without waiting,
// each with its own request ID, and the server answers each as soon as it is
// done, in any order; the client matches answers to requests by ID. A
// connection starts with a mutual challenge-response proving that both ends
// know the cluster secret (auth.go), then a Hello request that names the
// replica and carries the client's epoch. Every I/O request carries the
// epoch too, and the server refuses requests older than the replica's fenced
// epoch (fence.go), so a former owner of a volume cannot write once the new
// owner has fenced the replica.
//
// What one node asks of another beyond a replica's I/O (creating and
// deleting replicas, joins, volume resizes) is the peer service's
// (pool/peer), not this protocol's.
//
// Both ends must speak the same version. A server refuses a Hello of
// another version with an error answer in the client's version, naming
// both (the header's layout is the same in every version so far).
//
// Frame format (all integers big-endian), see encodeHeader:
//
//	off size field
//	  0    2 magic 0xBA57
//	  2    1 version (2; 1 carried admin operations too)
//	  3    1 op
//	  4    1 status (responses; 0 in requests)
//	  5    1 reserved, 0
//	  6    2 replica ID length (<= MaxReplicaID)
//	  8    8 request ID
//	 16    8 epoch
//	 24    8 offset
//	 32    8 length
//	 40    4 payload length (<= MaxPayload)
//	 44    4 CRC32C (Castagnoli) of replica ID bytes followed by the payload
//	 48    4 reserved, 0
//	 52    4 CRC32C of bytes 0..51 of the header
//	 56      replica ID, then payload
package remote

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
)

// Op is a request type.
type Op uint8

const (
	OpHello          Op = 1 // name the replica; response: length = size, epoch = replica's epoch
	OpRead           Op = 2 // offset, length; response payload: data (+ bad offsets on StatusChecksum)
	OpWrite          Op = 3 // offset; payload: data
	OpFlush          Op = 4
	OpDiscard        Op = 5 // offset, length
	OpRepair         Op = 6 // offset; payload: good data
	OpFence          Op = 7 // epoch: the new epoch; response epoch: the replica's epoch
	OpSnapshot       Op = 8 // payload: snapshot name
	OpDeleteSnapshot Op = 9 // payload: snapshot name

	// OpResize grows the replica to length bytes (with an epoch like
	// I/O); response length: the new size.
	OpResize Op = 10
	opMax       = OpResize
)

var opNames = [...]string{"", "hello", "read", "write", "flush", "discard", "repair", "fence", "snapshot", "delete-snapshot", "resize"}

func (o Op) String() string {
	if o >= 1 && o <= opMax {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Status is the outcome of a request, set in its response.
type Status uint8

const (
	StatusOK         Status = 0
	StatusError      Status = 1 // payload: error text
	StatusFenced     Status = 2 // epoch: the replica's epoch; payload: error text
	StatusChecksum   Status = 3 // read: payload = data, then 8 bytes per bad block offset
	StatusUnaligned  Status = 4 // payload: error text
	StatusOutOfRange Status = 5
	StatusNotFound   Status = 6
	StatusExists     Status = 7
	StatusInUse      Status = 8  // replica.ErrInUse
	StatusDropped    Status = 9  // ErrDropped: the server no longer serves the connection's replica
	StatusNoSupport  Status = 10 // errors.ErrUnsupported
	statusMax               = StatusNoSupport
)

const (
	magic   = 0xBA57
	version = 2

	// HeaderSize is the size of a frame header.
	HeaderSize = 56
	// MaxPayload bounds a frame's payload. A decoder never allocates more.
	MaxPayload = 4 << 20
	// MaxIO is the largest read or write sent in one request; larger ones
	// are split. It leaves room in a read response for the bad-block list.
	MaxIO = 1 << 20
	// MaxReplicaID bounds the replica ID carried in a frame.
	MaxReplicaID = 255
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrBadFrame is wrapped by every frame decoding error: the stream is
// corrupt or not speaking this protocol, and the connection must be closed.
var ErrBadFrame = errors.New("bad frame")

// VersionError is the error of reading a frame of another protocol
// version. It wraps ErrBadFrame.
type VersionError struct {
	Got uint8  // the frame's version
	ID  uint64 // the frame's request ID
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("the other end speaks replica protocol version %d, this node %d: run the same Ballast version on every node", e.Got, version)
}

func (e *VersionError) Unwrap() error { return ErrBadFrame }

// Frame is one request or response.
type Frame struct {
	Op        Op
	Status    Status
	ID        uint64 // request ID, echoed in the response
	Epoch     uint64
	Offset    int64
	Length    int64
	ReplicaID string
	Payload   []byte
}

func bodyCRC(id string, payload []byte) uint32 {
	c := crc32.Update(0, castagnoli, []byte(id))
	return crc32.Update(c, castagnoli, payload)
}

// encodeHeader fills hdr (HeaderSize bytes) for f.
func encodeHeader(hdr []byte, f *Frame) { encodeHeaderAs(hdr, f, version) }

// encodeHeaderAs encodes f as a frame of protocol version v.
func encodeHeaderAs(hdr []byte, f *Frame, v uint8) {
	be := binary.BigEndian
	be.PutUint16(hdr[0:], magic)
	hdr[2] = v
	hdr[3] = byte(f.Op)
	hdr[4] = byte(f.Status)
	hdr[5] = 0
	be.PutUint16(hdr[6:], uint16(len(f.ReplicaID)))
	be.PutUint64(hdr[8:], f.ID)
	be.PutUint64(hdr[16:], f.Epoch)
	be.PutUint64(hdr[24:], uint64(f.Offset))
	be.PutUint64(hdr[32:], uint64(f.Length))
	be.PutUint32(hdr[40:], uint32(len(f.Payload)))
	be.PutUint32(hdr[44:], bodyCRC(f.ReplicaID, f.Payload))
	be.PutUint32(hdr[48:], 0)
	be.PutUint32(hdr[52:], crc32.Checksum(hdr[:52], castagnoli))
}

// checkEncodable reports a frame that encodeHeader cannot represent.
func checkEncodable(f *Frame) error {
	if len(f.ReplicaID) > MaxReplicaID {
		return fmt.Errorf("replica ID of %d bytes: %w", len(f.ReplicaID), ErrBadFrame)
	}
	if len(f.Payload) > MaxPayload {
		return fmt.Errorf("payload of %d bytes: %w", len(f.Payload), ErrBadFrame)
	}
	return nil
}

// AppendFrame appends the encoding of f to b.
func AppendFrame(b []byte, f *Frame) ([]byte, error) {
	if err := checkEncodable(f); err != nil {
		return b, err
	}
	var hdr [HeaderSize]byte
	encodeHeader(hdr[:], f)
	b = append(b, hdr[:]...)
	b = append(b, f.ReplicaID...)
	return append(b, f.Payload...), nil
}

// ReadFrame reads and verifies one frame from r. Lengths are checked
// against their bounds before anything is allocated, so a corrupt or
// hostile stream can make it allocate at most MaxPayload+MaxReplicaID bytes.
func ReadFrame(r io.Reader) (*Frame, error) {
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	be := binary.BigEndian
	if be.Uint16(hdr[0:]) != magic {
		return nil, fmt.Errorf("magic %#x: %w", be.Uint16(hdr[0:]), ErrBadFrame)
	}
	if hdr[2] != version {
		return nil, &VersionError{Got: hdr[2], ID: be.Uint64(hdr[8:])}
	}
	if got, want := be.Uint32(hdr[52:]), crc32.Checksum(hdr[:52], castagnoli); got != want {
		return nil, fmt.Errorf("header checksum %#x, computed %#x: %w", got, want, ErrBadFrame)
	}
	f := &Frame{
		Op:     Op(hdr[3]),
		Status: Status(hdr[4]),
		ID:     be.Uint64(hdr[8:]),
		Epoch:  be.Uint64(hdr[16:]),
		Offset: int64(be.Uint64(hdr[24:])),
		Length: int64(be.Uint64(hdr[32:])),
	}
	if f.Op < 1 || f.Op > opMax {
		return nil, fmt.Errorf("%v: %w", f.Op, ErrBadFrame)
	}
	if f.Status > statusMax {
		return nil, fmt.Errorf("status %d: %w", f.Status, ErrBadFrame)
	}
	if hdr[5] != 0 || be.Uint32(hdr[48:]) != 0 {
		return nil, fmt.Errorf("reserved bits set: %w", ErrBadFrame)
	}
	idLen, plen := int(be.Uint16(hdr[6:])), int64(be.Uint32(hdr[40:]))
	if idLen > MaxReplicaID {
		return nil, fmt.Errorf("replica ID length %d > %d: %w", idLen, MaxReplicaID, ErrBadFrame)
	}
	if plen > MaxPayload {
		return nil, fmt.Errorf("payload length %d > %d: %w", plen, MaxPayload, ErrBadFrame)
	}
	body := make([]byte, idLen+int(plen))
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if got, want := be.Uint32(hdr[44:]), crc32.Checksum(body, castagnoli); got != want {
		return nil, fmt.Errorf("%v request %d: payload checksum %#x, computed %#x: %w", f.Op, f.ID, got, want, ErrBadFrame)
	}
	f.ReplicaID = string(body[:idLen])
	if plen > 0 {
		f.Payload = body[idLen:]
	}
	return f, nil
}

// encodeOffsets appends the bad-block offsets of a checksum error.
func encodeOffsets(b []byte, offs []int64) []byte {
	for _, o := range offs {
		b = binary.BigEndian.AppendUint64(b, uint64(o))
	}
	return b
}

func decodeOffsets(b []byte) ([]int64, error) {
	if len(b) == 0 || len(b)%8 != 0 {
		return nil, fmt.Errorf("bad-block list of %d bytes: %w", len(b), ErrBadFrame)
	}
	offs := make([]int64, len(b)/8)
	for i := range offs {
		offs[i] = int64(binary.BigEndian.Uint64(b[8*i:]))
	}
	return offs, nil
}

// writeFrame writes f to w with one vectored write where w is a
// connection, without copying the payload.
func writeFrame(w io.Writer, f *Frame) error {
	if err := checkEncodable(f); err != nil {
		return err
	}
	hdr := make([]byte, HeaderSize)
	encodeHeader(hdr, f)
	bufs := net.Buffers{hdr}
	if f.ReplicaID != "" {
		bufs = append(bufs, []byte(f.ReplicaID))
	}
	if len(f.Payload) > 0 {
		bufs = append(bufs, f.Payload)
	}
	_, err := bufs.WriteTo(w)
	return err
}
