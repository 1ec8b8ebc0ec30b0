package rpc

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	errBad     = errors.New("bad request")
	errMissing = errors.New("not found")
	errGone    = errors.New("gone")
	errBusy    = errors.New("busy")
	errLater   = errors.New("grows later")
)

var table = append(Errors{
	Map(codes.InvalidArgument, "BAD", errBad),
	Map(codes.NotFound, "MISSING", errMissing, errGone),
	Map(codes.FailedPrecondition, "BUSY", errBusy),
	Map(codes.FailedPrecondition, "LATER", errLater),
}, Common...)

// TestErrorsRoundTrip: an error goes out with its sentinel's code, reason
// and message and comes back matching the sentinels of that reason, though
// another entry shares its code; an unknown error is Internal and matches
// none.
func TestErrorsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		err     error
		code    codes.Code
		matches []error
		not     []error
	}{
		{fmt.Errorf("volume v: %w", errBad), codes.InvalidArgument, []error{errBad}, []error{errMissing}},
		{fmt.Errorf("replica r: %w", errGone), codes.NotFound, []error{errMissing, errGone}, []error{errBad}},
		{fmt.Errorf("v: %w", errLater), codes.FailedPrecondition, []error{errLater}, []error{errBusy}},
		{fmt.Errorf("v: %w", errBusy), codes.FailedPrecondition, []error{errBusy}, []error{errLater}},
		{fmt.Errorf("call: %w", context.DeadlineExceeded), codes.DeadlineExceeded, []error{context.DeadlineExceeded}, nil},
		{fmt.Errorf("op: %w", errors.ErrUnsupported), codes.Unimplemented, []error{errors.ErrUnsupported}, nil},
		{errors.New("disk on fire"), codes.Internal, nil, []error{errBad, errMissing, errBusy}},
	} {
		st := table.ToStatus(tc.err)
		if got := status.Code(st); got != tc.code {
			t.Errorf("%v: code %v, want %v", tc.err, got, tc.code)
		}
		back := table.FromStatus(st)
		if back.Error() != tc.err.Error() {
			t.Errorf("%v: came back as %q", tc.err, back)
		}
		for _, s := range tc.matches {
			if !errors.Is(back, s) {
				t.Errorf("%v: came back not matching %v", tc.err, s)
			}
		}
		for _, s := range tc.not {
			if errors.Is(back, s) {
				t.Errorf("%v: came back matching %v", tc.err, s)
			}
		}
	}
	if table.ToStatus(nil) != nil {
		t.Error("nil error became a status")
	}
	plain := errors.New("dial tcp: refused")
	if table.FromStatus(plain) != plain {
		t.Error("an error that is not a status was changed")
	}
	// A status with no reason (gRPC's own) matches the first entry of its
	// code.
	if err := table.FromStatus(status.Error(codes.FailedPrecondition, "x")); !errors.Is(err, errBusy) || errors.Is(err, errLater) {
		t.Errorf("a status without a reason came back as %v", err)
	}
}
