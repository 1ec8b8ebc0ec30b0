package rpc

import (
	"encoding/json"

	"google.golang.org/grpc/encoding"
)

// The services' messages are their plain Go types, carried as JSON: gRPC's
// framing, deadlines and status codes without a protobuf toolchain or a
// second set of types to keep in step. Calls use content-subtype CodecName
// (Call sets it).
type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)   { return json.Marshal(v) }
func (jsonCodec) Unmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
func (jsonCodec) Name() string                    { return CodecName }

// CodecName is the content-subtype of Ballast's gRPC calls.
const CodecName = "json"

func init() { encoding.RegisterCodec(jsonCodec{}) }
