package rpc

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Code maps sentinel errors to a gRPC status code. An error matching any of
// Errs goes out with Code; an error coming back with Code matches all of
// Errs with errors.Is.
type Code struct {
	Code codes.Code
	Errs []error
}

// Map maps errs to code.
func Map(code codes.Code, errs ...error) Code { return Code{Code: code, Errs: errs} }

// Errors is a service's error table, searched in order: the first entry an
// error matches gives its code, and the first entry with a code gives the
// sentinels an error coming back with it matches. Its first entry must be
// the service's invalid-argument error.
type Errors []Code

// Common are the entries every service shares, appended to its own.
var Common = []Code{
	Map(codes.Unimplemented, errors.ErrUnsupported),
	Map(codes.DeadlineExceeded, context.DeadlineExceeded),
	Map(codes.Canceled, context.Canceled),
}

// Invalid is the error of a request that does not decode.
func (t Errors) Invalid() error { return t[0].Errs[0] }

// Code is the gRPC code of err: the one its sentinel maps to, Internal for
// any other error.
func (t Errors) Code(err error) codes.Code {
	for _, c := range t {
		for _, e := range c.Errs {
			if errors.Is(err, e) {
				return c.Code
			}
		}
	}
	return codes.Internal
}

// ToStatus turns an error into a gRPC status with its code and message.
func (t Errors) ToStatus(err error) error {
	if err == nil {
		return nil
	}
	return status.Error(t.Code(err), err.Error())
}

// FromStatus turns a gRPC status back into an error with the server's
// message that errors.Is matches against the sentinels of its code. An
// error that is not a status is returned as it is.
func (t Errors) FromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, c := range t {
		if c.Code == st.Code() {
			return &Error{Status: st.Code(), msg: st.Message(), sentinels: c.Errs}
		}
	}
	return &Error{Status: st.Code(), msg: st.Message()}
}

// Error is a service error that crossed the wire.
type Error struct {
	Status    codes.Code
	msg       string
	sentinels []error
}

func (e *Error) Error() string   { return e.msg }
func (e *Error) Unwrap() []error { return e.sentinels }
