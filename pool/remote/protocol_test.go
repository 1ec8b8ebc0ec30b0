package remote

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"testing"
)

func sampleFrames() []*Frame {
	return []*Frame{
		{Op: OpHello, ID: 0, Epoch: 3, ReplicaID: "vol-1"},
		{Op: OpWrite, ID: 42, Epoch: 9, Offset: 8192, Payload: bytes.Repeat([]byte{7}, 64)},
		{Op: OpRead, ID: 1 << 60, Offset: 1 << 40, Length: 1 << 20},
		{Op: OpRead, Status: StatusChecksum, ID: 5, Length: 16, Payload: encodeOffsets(make([]byte, 16), []int64{0})},
		{Op: OpFence, Status: StatusFenced, ID: 6, Epoch: ^uint64(0), Payload: []byte("fenced")},
		{Op: OpDiscard, ID: 7, Offset: 0, Length: -1},
		{Op: OpResize, ID: 8, ReplicaID: "new", Length: 1 << 30},
		{Op: OpSnapshot, Status: StatusInUse, ID: 10, ReplicaID: "old", Payload: []byte("in use")},
		{Op: OpWrite, Status: StatusDropped, ID: 11, Payload: []byte("dropped")},
		{Op: OpDeleteSnapshot, Status: StatusNoSupport, ID: 12, Payload: []byte("no support")},
	}
}

func TestFrameRoundTrip(t *testing.T) {
	var stream []byte
	for _, f := range sampleFrames() {
		var err error
		if stream, err = AppendFrame(stream, f); err != nil {
			t.Fatal(err)
		}
	}
	r := bytes.NewReader(stream)
	for i, want := range sampleFrames() {
		got, err := ReadFrame(r)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got.Op != want.Op || got.Status != want.Status || got.ID != want.ID || got.Epoch != want.Epoch ||
			got.Offset != want.Offset || got.Length != want.Length || got.ReplicaID != want.ReplicaID ||
			!bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("frame %d: got %+v, want %+v", i, got, want)
		}
	}
	if _, err := ReadFrame(r); err != io.EOF {
		t.Fatalf("after last frame: %v, want EOF", err)
	}
}

// fixHeaderCRC recomputes the header checksum of b's first frame header.
func fixHeaderCRC(b []byte) {
	binary.BigEndian.PutUint32(b[52:], crc32.Checksum(b[:52], castagnoli))
}

func TestReadFrameRejects(t *testing.T) {
	good, _ := AppendFrame(nil, &Frame{Op: OpWrite, ID: 1, ReplicaID: "r", Payload: []byte("hello")})
	tests := []struct {
		name   string
		mutate func([]byte) []byte
		want   error
	}{
		{"payload bit flip", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, ErrBadFrame},
		{"replica ID bit flip", func(b []byte) []byte { b[HeaderSize] ^= 1; return b }, ErrBadFrame},
		{"header bit flip", func(b []byte) []byte { b[20] ^= 1; return b }, ErrBadFrame},
		{"magic", func(b []byte) []byte { b[0] = 0; fixHeaderCRC(b); return b }, ErrBadFrame},
		{"version", func(b []byte) []byte { b[2] = 9; fixHeaderCRC(b); return b }, ErrBadFrame},
		{"op 0", func(b []byte) []byte { b[3] = 0; fixHeaderCRC(b); return b }, ErrBadFrame},
		{"op too big", func(b []byte) []byte { b[3] = 200; fixHeaderCRC(b); return b }, ErrBadFrame},
		{"status", func(b []byte) []byte { b[4] = 99; fixHeaderCRC(b); return b }, ErrBadFrame},
		{"reserved", func(b []byte) []byte { b[49] = 1; fixHeaderCRC(b); return b }, ErrBadFrame},
		{"huge payload", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[40:], 0xffffffff)
			fixHeaderCRC(b)
			return b
		}, ErrBadFrame},
		{"long replica ID", func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[6:], 256)
			fixHeaderCRC(b)
			return b
		}, ErrBadFrame},
		{"truncated header", func(b []byte) []byte { return b[:30] }, io.ErrUnexpectedEOF},
		{"truncated body", func(b []byte) []byte { return b[:len(b)-2] }, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.mutate(bytes.Clone(good))
			_, err := ReadFrame(bytes.NewReader(b))
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := AppendFrame(nil, &Frame{Op: OpWrite, Payload: make([]byte, MaxPayload+1)}); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("encoding an oversized payload: %v", err)
	}
}

// FuzzDecodeFrame feeds arbitrary bytes to the decoder: it must never
// panic, never allocate beyond its bounds, and whatever it accepts must
// encode back to the same bytes. With fix set, the header checksum is
// recomputed so the fuzzer reaches the checks behind it.
func FuzzDecodeFrame(f *testing.F) {
	for _, fr := range sampleFrames() {
		b, _ := AppendFrame(nil, fr)
		f.Add(b, false)
		f.Add(b[:len(b)/2], true)
	}
	f.Add([]byte{}, false)
	f.Add(make([]byte, HeaderSize), true)
	f.Fuzz(func(t *testing.T, data []byte, fix bool) {
		if fix && len(data) >= HeaderSize {
			data = bytes.Clone(data)
			fixHeaderCRC(data)
		}
		r := bytes.NewReader(data)
		fr, err := ReadFrame(r)
		if err != nil {
			if fr != nil {
				t.Fatal("frame returned with an error")
			}
			return
		}
		if len(fr.Payload) > MaxPayload || len(fr.ReplicaID) > MaxReplicaID {
			t.Fatalf("decoded beyond bounds: payload %d, id %d", len(fr.Payload), len(fr.ReplicaID))
		}
		used := len(data) - r.Len()
		enc, err := AppendFrame(nil, fr)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, data[:used]) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", enc, data[:used])
		}
		if fr.Status == StatusChecksum {
			statusError(fr) // must not panic either
		}
	})
}

func TestStatusErrorBadChecksumPayload(t *testing.T) {
	for _, f := range []*Frame{
		{Op: OpRead, Status: StatusChecksum, Length: 4096, Payload: make([]byte, 100)},
		{Op: OpRead, Status: StatusChecksum, Length: 4096, Payload: make([]byte, 4096)},
		{Op: OpRead, Status: StatusChecksum, Length: 4096, Payload: make([]byte, 4099)},
		{Op: OpRepair, Status: StatusChecksum},
		{Op: OpRead, Status: StatusChecksum, Length: -8, Payload: make([]byte, 16)},
	} {
		if err := statusError(f); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%+v: %v, want ErrBadFrame", f.Length, err)
		}
	}
}
