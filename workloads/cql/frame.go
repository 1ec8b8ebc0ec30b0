package cql

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/datastax/go-cassandra-native-protocol/frame"
	"github.com/datastax/go-cassandra-native-protocol/message"
	"github.com/datastax/go-cassandra-native-protocol/primitive"
)

// Frames of native protocol v4. Responses are encoded with the protocol
// library's frame codec (except the refusal of another protocol version,
// see encodeHeaderError). Request bodies are decoded here into the library's
// message types, with every length checked against the bytes actually
// received: the library's decoders allocate whatever length a frame claims
// before reading it (a 20-byte frame could ask for 2 GiB), and sub-slicing
// the body keeps bound values free of copies.

const (
	headerLen    = 9         // v3 and later; v1 and v2 headers have 8 bytes
	maxBodyLen   = 256 << 20 // like Cassandra's native_transport_max_frame_size
	protoVersion = primitive.ProtocolVersion4

	flagCompression   = 0x01
	flagCustomPayload = 0x04
)

// header is a decoded frame header.
type header struct {
	version  uint8 // without the direction bit
	response bool
	flags    uint8
	stream   int16
	opcode   primitive.OpCode
	length   int32
}

// headerSize is the length of a header whose first byte is b0: v1 and v2
// have one-byte stream ids. Anything else is read as a v3+ header.
func headerSize(b0 byte) int {
	if v := b0 & 0x7f; v == 1 || v == 2 {
		return headerLen - 1
	}
	return headerLen
}

// parseHeader decodes the header at the start of b, which holds at least
// headerSize(b[0]) bytes.
func parseHeader(b []byte) header {
	h := header{version: b[0] & 0x7f, response: b[0]&0x80 != 0, flags: b[1]}
	if headerSize(b[0]) == headerLen {
		h.stream = int16(binary.BigEndian.Uint16(b[2:4]))
		h.opcode = primitive.OpCode(b[4])
		h.length = int32(binary.BigEndian.Uint32(b[5:9]))
	} else { // v1/v2: only read to answer "unsupported version" in kind
		h.stream = int16(int8(b[2]))
		h.opcode = primitive.OpCode(b[3])
		h.length = int32(binary.BigEndian.Uint32(b[4:8]))
	}
	return h
}

// checkHeader validates a request header; a non-nil error means the
// connection cannot go on (the client speaks something else). Answer it
// with encodeHeaderError.
func checkHeader(h header) error {
	if h.version != uint8(protoVersion) {
		return newError(codeProtocol, "Invalid or unsupported protocol version (%d); the lowest supported version is 4 and the greatest is 4", h.version)
	}
	if h.response {
		return newError(codeProtocol, "received a response frame (opcode %#x) where a request was expected", uint8(h.opcode))
	}
	if h.length < 0 || h.length > maxBodyLen {
		return newError(codeProtocol, "frame body length %d is out of range (at most %d bytes)", h.length, maxBodyLen)
	}
	return nil
}

// versionErrorReplyVersion is the protocol version in which a request of
// version v that this server does not speak is refused. Like Cassandra, the
// answer to a version a driver may really ask for (the retired v1-v3, the
// newer v5 and v6, DSE v1 and v2) is in that same version: a driver reads
// frames of the version it asked with, finds the protocol error there and
// retries with a lower version. Anything else is garbage and is answered
// in v4, the version this server speaks.
func versionErrorReplyVersion(v uint8) uint8 {
	switch primitive.ProtocolVersion(v) {
	case 1, primitive.ProtocolVersion2, primitive.ProtocolVersion3, primitive.ProtocolVersion5, 6,
		primitive.ProtocolVersionDse1, primitive.ProtocolVersionDse2:
		return v
	}
	return uint8(protoVersion)
}

// encodeHeaderError appends the ERROR frame answering a request whose
// header checkHeader refused with err. A header of another protocol
// version is answered with a frame encoded by hand in the version chosen by
// versionErrorReplyVersion (the protocol library encodes neither v1 nor
// v6): the v1/v2 or v3+ header layout, then the body [int code][string
// message], which is the same in every version.
func encodeHeaderError(buf *bytes.Buffer, h header, err error) {
	if h.version == uint8(protoVersion) {
		encodeResponse(buf, h.stream, errorMessage(err))
		return
	}
	e := errorMessage(err)
	msg := e.GetErrorMessage()
	if len(msg) > 0xffff {
		msg = msg[:0xffff]
	}
	v := versionErrorReplyVersion(h.version)
	b := buf.AvailableBuffer()
	b = append(b, v|0x80, 0)
	if headerSize(v) == headerLen {
		b = binary.BigEndian.AppendUint16(b, uint16(h.stream))
	} else {
		b = append(b, byte(h.stream))
	}
	b = append(b, byte(primitive.OpCodeError))
	b = binary.BigEndian.AppendUint32(b, uint32(4+2+len(msg)))
	b = binary.BigEndian.AppendUint32(b, uint32(e.GetErrorCode()))
	b = binary.BigEndian.AppendUint16(b, uint16(len(msg)))
	b = append(b, msg...)
	buf.Write(b)
}

// reader decodes protocol primitives from a request body, failing on
// truncation instead of allocating.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = newError(codeProtocol, "malformed request: truncated or invalid %s", what)
	}
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail(what)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) byte1(what string) byte {
	if b := r.take(1, what); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) short(what string) uint16 {
	if b := r.take(2, what); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) int32(what string) int32 {
	if b := r.take(4, what); b != nil {
		return int32(binary.BigEndian.Uint32(b))
	}
	return 0
}

func (r *reader) int64(what string) int64 {
	if b := r.take(8, what); b != nil {
		return int64(binary.BigEndian.Uint64(b))
	}
	return 0
}

func (r *reader) string(what string) string {
	n := int(r.short(what))
	b := r.take(n, what)
	if r.err == nil && !utf8.Valid(b) {
		r.fail(what + " (not UTF-8)")
	}
	return string(b)
}

func (r *reader) longString(what string) string {
	n := int(r.int32(what))
	b := r.take(n, what)
	if r.err == nil && !utf8.Valid(b) {
		r.fail(what + " (not UTF-8)")
	}
	return string(b)
}

func (r *reader) shortBytes(what string) []byte {
	return r.take(int(r.short(what)), what)
}

// bytes reads [bytes]: nil for a negative length.
func (r *reader) bytes(what string) []byte {
	n := r.int32(what)
	if n < 0 {
		return nil
	}
	return r.take(int(n), what)
}

// values reads n [value]s into one slab.
func (r *reader) values(n int, names bool) ([]*primitive.Value, map[string]*primitive.Value) {
	if n*4 > len(r.b) {
		r.fail("values")
		return nil, nil
	}
	slab := make([]primitive.Value, n)
	var named map[string]*primitive.Value
	var vals []*primitive.Value
	if names {
		named = make(map[string]*primitive.Value, n)
	} else {
		vals = make([]*primitive.Value, n)
	}
	for i := 0; i < n && r.err == nil; i++ {
		var name string
		if names {
			name = r.string("value name")
		}
		l := r.int32("value")
		v := &slab[i]
		switch {
		case l == primitive.ValueTypeNull:
			v.Type = primitive.ValueTypeNull
		case l == primitive.ValueTypeUnset:
			v.Type = primitive.ValueTypeUnset
		case l < 0:
			r.fail("value length")
		default:
			v.Type = primitive.ValueTypeRegular
			v.Contents = r.take(int(l), "value")
		}
		if names {
			named[name] = v
		} else {
			vals[i] = v
		}
	}
	return vals, named
}

// Query flags (protocol v4, one byte).
const (
	qfValues            = 0x01
	qfSkipMetadata      = 0x02
	qfPageSize          = 0x04
	qfPagingState       = 0x08
	qfSerialConsistency = 0x10
	qfDefaultTimestamp  = 0x20
	qfValueNames        = 0x40
)

func (r *reader) queryOptions() *message.QueryOptions {
	o := &message.QueryOptions{Consistency: primitive.ConsistencyLevel(r.short("consistency"))}
	flags := r.byte1("query flags")
	if flags&qfValues != 0 {
		n := int(r.short("value count"))
		o.PositionalValues, o.NamedValues = r.values(n, flags&qfValueNames != 0)
		if o.PositionalValues == nil && o.NamedValues == nil && r.err == nil {
			o.PositionalValues = []*primitive.Value{}
		}
	}
	o.SkipMetadata = flags&qfSkipMetadata != 0
	if flags&qfPageSize != 0 {
		o.PageSize = r.int32("page size")
	}
	if flags&qfPagingState != 0 {
		o.PagingState = r.bytes("paging state")
	}
	if flags&qfSerialConsistency != 0 {
		c := primitive.ConsistencyLevel(r.short("serial consistency"))
		o.SerialConsistency = &c
	}
	if flags&qfDefaultTimestamp != 0 {
		ts := r.int64("default timestamp")
		o.DefaultTimestamp = &ts
	}
	return o
}

// decodeRequest decodes the body of a request frame.
func decodeRequest(h header, body []byte) (message.Message, error) {
	if h.flags&flagCompression != 0 {
		return nil, newError(codeProtocol, "compressed frame received, but no compression was negotiated in STARTUP")
	}
	r := &reader{b: body}
	if h.flags&flagCustomPayload != 0 {
		n := int(r.short("custom payload"))
		for i := 0; i < n && r.err == nil; i++ {
			r.string("custom payload key")
			r.bytes("custom payload value")
		}
	}
	var msg message.Message
	switch h.opcode {
	case primitive.OpCodeStartup:
		n := int(r.short("startup options"))
		opts := make(map[string]string, min(n, 16))
		for i := 0; i < n && r.err == nil; i++ {
			k := r.string("startup option")
			opts[k] = r.string("startup option value")
		}
		msg = &message.Startup{Options: opts}
	case primitive.OpCodeOptions:
		msg = &message.Options{}
	case primitive.OpCodeQuery:
		q := r.longString("query string")
		msg = &message.Query{Query: q, Options: r.queryOptions()}
	case primitive.OpCodePrepare:
		msg = &message.Prepare{Query: r.longString("query string")}
	case primitive.OpCodeExecute:
		id := r.shortBytes("prepared id")
		msg = &message.Execute{QueryId: id, Options: r.queryOptions()}
	case primitive.OpCodeRegister:
		n := int(r.short("event types"))
		reg := &message.Register{}
		for i := 0; i < n && r.err == nil; i++ {
			reg.EventTypes = append(reg.EventTypes, primitive.EventType(r.string("event type")))
		}
		msg = reg
	case primitive.OpCodeBatch:
		msg = r.batch()
	case primitive.OpCodeAuthResponse:
		msg = &message.AuthResponse{Token: r.bytes("auth token")}
	default:
		return nil, newError(codeProtocol, "unknown or unexpected request opcode %#x", uint8(h.opcode))
	}
	if r.err != nil {
		return nil, r.err
	}
	return msg, nil
}

func (r *reader) batch() message.Message {
	b := &message.Batch{Type: primitive.BatchType(r.byte1("batch type"))}
	n := int(r.short("batch statement count"))
	if n*3 > len(r.b) {
		r.fail("batch statement count")
		return nil
	}
	b.Children = make([]*message.BatchChild, n)
	for i := 0; i < n && r.err == nil; i++ {
		c := &message.BatchChild{}
		switch kind := r.byte1("batch statement kind"); kind {
		case 0:
			c.Query = r.longString("batch query string")
			if c.Query == "" && r.err == nil {
				r.err = newError(codeProtocol, "empty query string in BATCH")
			}
		case 1:
			c.Id = r.shortBytes("batch prepared id")
			if c.Id == nil && r.err == nil {
				c.Id = []byte{}
			}
		default:
			if r.err == nil {
				r.err = newError(codeProtocol, "invalid BATCH statement kind %d", kind)
			}
		}
		nv := int(r.short("batch value count"))
		c.Values, _ = r.values(nv, false)
		b.Children[i] = c
	}
	b.Consistency = primitive.ConsistencyLevel(r.short("batch consistency"))
	flags := r.byte1("batch flags")
	if flags&qfValueNames != 0 && r.err == nil {
		r.err = newError(codeProtocol, "named values are not supported in BATCH")
	}
	if flags&qfSerialConsistency != 0 {
		c := primitive.ConsistencyLevel(r.short("batch serial consistency"))
		b.SerialConsistency = &c
	}
	if flags&qfDefaultTimestamp != 0 {
		ts := r.int64("batch default timestamp")
		b.DefaultTimestamp = &ts
	}
	if r.err == nil && b.Type != primitive.BatchTypeLogged && b.Type != primitive.BatchTypeUnlogged && b.Type != primitive.BatchTypeCounter {
		r.err = newError(codeProtocol, "invalid BATCH type %d", b.Type)
	}
	return b
}

// responseCodec encodes response frames (the library's codec).
var responseCodec = frame.NewRawCodec()

// encodeResponse appends the frame for msg on stream to buf.
func encodeResponse(buf *bytes.Buffer, stream int16, msg message.Message) {
	start := buf.Len()
	f := frame.NewFrame(protoVersion, stream, msg)
	if err := responseCodec.EncodeFrame(f, buf); err != nil {
		buf.Truncate(start)
		f = frame.NewFrame(protoVersion, stream, &message.ServerError{ErrorMessage: fmt.Sprintf("cannot encode the response: %v", err)})
		if err := responseCodec.EncodeFrame(f, buf); err != nil {
			panic(fmt.Sprintf("cql: encoding a server error frame: %v", err)) // a plain error message always encodes
		}
	}
}
