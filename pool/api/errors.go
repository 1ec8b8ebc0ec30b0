package api

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var codeOf = []struct {
	err  error
	code codes.Code
}{
	{ErrInvalid, codes.InvalidArgument},
	{ErrNotFound, codes.NotFound},
	{ErrExists, codes.AlreadyExists},
	{ErrInUse, codes.FailedPrecondition},
	{ErrGrowAtAttach, codes.FailedPrecondition},
	{ErrNoCapacity, codes.ResourceExhausted},
	{ErrConflict, codes.Aborted},
	{errors.ErrUnsupported, codes.Unimplemented},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
}

// Code is the gRPC code of a service error: the one its sentinel maps to,
// Internal for any other error. The CSI driver answers with the same codes.
func Code(err error) codes.Code {
	for _, c := range codeOf {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return codes.Internal
}

// toStatus turns a service error into a gRPC status with the matching code.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	return status.Error(Code(err), err.Error())
}

// remoteError is a service error that crossed the socket: its message is
// the server's, and errors.Is matches the sentinel its code stands for.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// fromStatus turns a gRPC status back into an error that errors.Is matches
// against the service's sentinels.
func fromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	if st.Code() == codes.Unavailable {
		return errors.New("ballast daemon unreachable (is it running, and is --socket / BALLAST_SOCKET right?): " + st.Message())
	}
	for _, c := range codeOf {
		if c.code == st.Code() {
			return &remoteError{msg: st.Message(), sentinel: c.err}
		}
	}
	return &remoteError{msg: st.Message()}
}
