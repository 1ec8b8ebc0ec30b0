package cql

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/datastax/go-cassandra-native-protocol/message"
	"github.com/datastax/go-cassandra-native-protocol/primitive"
)

// rawErrorFrame is an ERROR frame parsed by hand, for the versions the
// protocol library cannot decode (v1, v6, ...).
type rawErrorFrame struct {
	version  byte // without the direction bit
	response bool
	stream   int16
	code     primitive.ErrorCode
	msg      string
}

// parseRawError parses one ERROR frame at the start of b, in the header
// layout of its version (v1/v2: one-byte stream id, 8-byte header), and
// returns the bytes after it. The body must be exactly [int code][string].
func parseRawError(b []byte) (rawErrorFrame, []byte, error) {
	if len(b) == 0 {
		return rawErrorFrame{}, nil, io.ErrUnexpectedEOF
	}
	f := rawErrorFrame{version: b[0] & 0x7f, response: b[0]&0x80 != 0}
	hl := 9
	if f.version == 1 || f.version == 2 {
		hl = 8
	}
	if len(b) < hl {
		return f, nil, fmt.Errorf("truncated header: %d bytes", len(b))
	}
	var op byte
	var n uint32
	if hl == 9 {
		f.stream = int16(binary.BigEndian.Uint16(b[2:4]))
		op, n = b[4], binary.BigEndian.Uint32(b[5:9])
	} else {
		f.stream = int16(int8(b[2]))
		op, n = b[3], binary.BigEndian.Uint32(b[4:8])
	}
	if b[1] != 0 {
		return f, nil, fmt.Errorf("header flags %#x, want none", b[1])
	}
	if op != byte(primitive.OpCodeError) {
		return f, nil, fmt.Errorf("opcode %#x, want ERROR", op)
	}
	body := b[hl:]
	if uint64(n) > uint64(len(body)) || n < 6 {
		return f, nil, fmt.Errorf("body length %d with %d bytes left", n, len(body))
	}
	body, rest := body[:n], body[n:]
	f.code = primitive.ErrorCode(binary.BigEndian.Uint32(body))
	if l := int(binary.BigEndian.Uint16(body[4:])); l != len(body)-6 {
		return f, nil, fmt.Errorf("error message of %d bytes in a %d-byte body", l, len(body))
	}
	f.msg = string(body[6:])
	return f, rest, nil
}

// requestFrame builds a request frame in the header layout of version.
func requestFrame(version byte, stream int16, op primitive.OpCode, body []byte) []byte {
	if v := version & 0x7f; v == 1 || v == 2 {
		b := []byte{version, 0, byte(stream), byte(op)}
		b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
		return append(b, body...)
	}
	return rawFrame(version, stream, byte(op), body)
}

// A request in a protocol version the server does not speak is refused
// with a Protocol error in the version it was asked in, so that a driver
// can read it and step down (drivers start with v5 these days). Garbage
// versions are answered in v4. The connection is then closed.
func TestProtocolVersionErrorInAskedVersion(t *testing.T) {
	ts := startServer(t, t.TempDir())
	startup := []byte{0, 1, 0, 11}
	startup = append(startup, "CQL_VERSION"...)
	startup = append(startup, 0, 5)
	startup = append(startup, "3.0.0"...)
	for _, c := range []struct {
		asked, want byte
	}{
		{5, 5}, {6, 6}, {3, 3}, {2, 2}, {1, 1},
		{byte(primitive.ProtocolVersionDse2), byte(primitive.ProtocolVersionDse2)},
		{0x7f, 4}, {0, 4}, {0x20, 4},
	} {
		for _, req := range []struct {
			op   primitive.OpCode
			body []byte
		}{{primitive.OpCodeStartup, startup}, {primitive.OpCodeOptions, nil}} {
			t.Run(fmt.Sprintf("v%d %v", c.asked, req.op), func(t *testing.T) {
				stream := int16(0x0123)
				if c.asked == 1 || c.asked == 2 {
					stream = 0x12
				}
				r := dialRaw(t, ts.addr)
				// A v1/v2 OPTIONS is an 8-byte header alone: the server
				// must answer it without waiting for a ninth byte.
				r.write(requestFrame(c.asked, stream, req.op, req.body))
				r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
				got, err := io.ReadAll(r.c) // the answer, then the server closes
				if err != nil {
					t.Fatalf("reading the answer: %v (got %x)", err, got)
				}
				f, rest, err := parseRawError(got)
				if err != nil {
					t.Fatalf("answer %x: %v", got, err)
				}
				if len(rest) != 0 {
					t.Errorf("%d bytes after the ERROR frame", len(rest))
				}
				if f.version != c.want || !f.response || f.stream != stream || f.code != primitive.ErrorCodeProtocolError {
					t.Errorf("got version %d response %v stream %#x code %#x, want version %d response true stream %#x code %#x (protocol error)",
						f.version, f.response, f.stream, uint32(f.code), c.want, stream, uint32(primitive.ErrorCodeProtocolError))
				}
				want := fmt.Sprintf("Invalid or unsupported protocol version (%d); the lowest supported version is 4 and the greatest is 4", c.asked)
				if f.msg != want {
					t.Errorf("message %q, want %q", f.msg, want)
				}
				// Where the protocol library knows the version, it reads
				// the frame the same way.
				if primitive.ProtocolVersion(f.version).IsSupported() {
					lf, err := r.codec.DecodeFrame(bytes.NewReader(got))
					if err != nil {
						t.Fatalf("library decoding %x: %v", got, err)
					}
					if lf.Header.Version != primitive.ProtocolVersion(c.want) {
						t.Errorf("library sees version %v", lf.Header.Version)
					}
					expectError(t, lf, stream, primitive.ErrorCodeProtocolError, want)
				}
			})
		}
	}

	// The server speaks v4 to the next client as before.
	r := dialRaw(t, ts.addr)
	r.send(1, &message.Options{})
	if f := r.mustRecv(); f.Header.Version != primitive.ProtocolVersion4 || f.Header.OpCode != primitive.OpCodeSupported {
		t.Fatalf("v4 OPTIONS answered %v", f)
	}
}

// The refusal is encoded without the server: every version a header can
// carry, with and without the direction bit, gives one well-formed ERROR
// frame.
func TestEncodeHeaderErrorAllVersions(t *testing.T) {
	for b0 := 0; b0 < 256; b0++ {
		hb := requestFrame(byte(b0), 7, primitive.OpCodeOptions, nil)
		if len(hb) < headerLen {
			hb = append(hb, 0)
		}
		h := parseHeader(hb)
		err := checkHeader(h)
		if err == nil {
			continue // a v4 request
		}
		var buf bytes.Buffer
		encodeHeaderError(&buf, h, err)
		f, rest, perr := parseRawError(buf.Bytes())
		if perr != nil || len(rest) != 0 {
			t.Fatalf("first byte %#x: %x: %v (%d bytes left)", b0, buf.Bytes(), perr, len(rest))
		}
		if f.stream != 7 || !f.response || f.code != primitive.ErrorCodeProtocolError || !strings.Contains(f.msg, "Invalid or unsupported protocol version") && !strings.Contains(f.msg, "response frame") {
			t.Errorf("first byte %#x: %+v", b0, f)
		}
		if b0&0x7f != 4 && f.version != versionErrorReplyVersion(byte(b0&0x7f)) {
			t.Errorf("first byte %#x: answered in v%d", b0, f.version)
		}
	}
}
