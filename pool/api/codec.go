package api

import (
	"encoding/json"

	"google.golang.org/grpc/encoding"
)

// The service's messages are its plain Go types, carried as JSON: gRPC's
// framing, deadlines and status codes without a protobuf toolchain or a
// second set of types to keep in step. Calls use content-subtype "json".
type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)   { return json.Marshal(v) }
func (jsonCodec) Unmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
func (jsonCodec) Name() string                    { return codecName }

const codecName = "json"

func init() { encoding.RegisterCodec(jsonCodec{}) }
