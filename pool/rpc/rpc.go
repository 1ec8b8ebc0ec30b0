// Package rpc is the gRPC plumbing Ballast's services share: the daemon's
// volume service (pool/api) and the node-to-node peer service (pool/peer).
// Messages are plain Go types carried as JSON (codec.go), every method is a
// generic unary handler (Unary), and errors cross the wire through one table
// per service that maps sentinel errors to status codes and back
// (errors.go), so errors.Is works on both ends.
package rpc

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
)

// Method binds one call of a service implementation S to gRPC.
type Method[S any] struct {
	desc grpc.MethodDesc
}

// Unary makes method name call call on the service, decoding its request
// into a Req and answering Resp; errors go out through errs, and a request
// that does not decode is refused with errs' invalid-argument error.
func Unary[S, Req, Resp any](errs Errors, name string, call func(S, context.Context, *Req) (Resp, error)) Method[S] {
	return Method[S]{desc: grpc.MethodDesc{
		MethodName: name,
		Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
			req := new(Req)
			if err := dec(req); err != nil {
				return nil, errs.ToStatus(fmt.Errorf("%w: %s request: %v", errs.Invalid(), name, err))
			}
			h := func(ctx context.Context, req any) (any, error) {
				resp, err := call(srv.(S), ctx, req.(*Req))
				if err != nil {
					return nil, errs.ToStatus(err)
				}
				return resp, nil
			}
			if icpt == nil {
				return h(ctx, req)
			}
			full, _ := grpc.Method(ctx)
			return icpt(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: full}, h)
		},
	}}
}

// Register registers service name, answered by impl with methods, on srv.
// S is the service's interface type.
func Register[S any](srv *grpc.Server, name string, impl S, methods []Method[S]) {
	desc := grpc.ServiceDesc{ServiceName: name, HandlerType: (*S)(nil)}
	for _, m := range methods {
		desc.Methods = append(desc.Methods, m.desc)
	}
	srv.RegisterService(&desc, impl)
}

// Call invokes method of service on conn and decodes its answer; an error
// status comes back through errs.
func Call[Resp any](ctx context.Context, conn *grpc.ClientConn, errs Errors, service, method string, req any, opts ...grpc.CallOption) (Resp, error) {
	var resp Resp
	opts = append(opts, grpc.CallContentSubtype(CodecName))
	if err := conn.Invoke(ctx, "/"+service+"/"+method, req, &resp, opts...); err != nil {
		return resp, errs.FromStatus(err)
	}
	return resp, nil
}

// Name is the method's name.
func (m Method[S]) Name() string { return m.desc.MethodName }

// Handle runs the method on impl with a request decoded by dec, as a server
// would: for fuzzing the handlers without a connection.
func (m Method[S]) Handle(ctx context.Context, impl S, dec func(any) error) (any, error) {
	return m.desc.Handler(impl, ctx, dec, nil)
}

// Empty is the request or answer of a call that carries nothing.
type Empty struct{}

// NoAnswer is the answer of a call that returns only an error.
func NoAnswer(err error) (*Empty, error) { return &Empty{}, err }
