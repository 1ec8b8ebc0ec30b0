package rpc

import (
	"context"
	"errors"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Code maps sentinel errors to a gRPC status code and a reason. An error
// matching any of Errs goes out with Code and, in the status's details,
// Reason; an error coming back with Reason matches all of Errs with
// errors.Is. Several entries may share a code: the reason tells them
// apart.
type Code struct {
	Code   codes.Code
	Reason string // unique in a table, stable across versions
	Errs   []error
}

// Map maps errs to code and reason.
func Map(code codes.Code, reason string, errs ...error) Code {
	return Code{Code: code, Reason: reason, Errs: errs}
}

// Errors is a service's error table, searched in order: the first entry an
// error matches gives its code and reason; an error coming back matches
// the sentinels of the entry with its reason, or, when it has none (a
// status gRPC itself made), of the first entry with its code. Its first
// entry must be the service's invalid-argument error.
type Errors []Code

// Common are the entries every service shares, appended to its own.
var Common = []Code{
	Map(codes.Unimplemented, "UNSUPPORTED", errors.ErrUnsupported),
	Map(codes.DeadlineExceeded, "DEADLINE_EXCEEDED", context.DeadlineExceeded),
	Map(codes.Canceled, "CANCELED", context.Canceled),
}

// Invalid is the error of a request that does not decode.
func (t Errors) Invalid() error { return t[0].Errs[0] }

// entry is the entry err matches, nil for none.
func (t Errors) entry(err error) *Code {
	for i, c := range t {
		for _, e := range c.Errs {
			if errors.Is(err, e) {
				return &t[i]
			}
		}
	}
	return nil
}

// Code is the gRPC code of err: the one its sentinel maps to, Internal for
// any other error.
func (t Errors) Code(err error) codes.Code {
	if c := t.entry(err); c != nil {
		return c.Code
	}
	return codes.Internal
}

// ToStatus turns an error into a gRPC status with its code, message and
// reason.
func (t Errors) ToStatus(err error) error {
	if err == nil {
		return nil
	}
	c := t.entry(err)
	if c == nil {
		return status.Error(codes.Internal, err.Error())
	}
	st := status.New(c.Code, err.Error())
	if withReason, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: c.Reason, Domain: domain}); derr == nil {
		st = withReason
	}
	return st.Err()
}

// domain is the ErrorInfo domain of Ballast's reasons.
const domain = "ballast.io"

// FromStatus turns a gRPC status back into an error with the server's
// message that errors.Is matches against the sentinels of its reason (or
// code). An error that is not a status is returned as it is.
func (t Errors) FromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.Domain == domain {
			for _, c := range t {
				if c.Reason == ei.Reason {
					return &Error{Status: st.Code(), msg: st.Message(), sentinels: c.Errs}
				}
			}
		}
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
