package api

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"

	"github.com/ballast-io/ballast/pool/rpc"
)

// errorTable maps the service's errors to gRPC codes and back.
var errorTable = append(rpc.Errors{
	rpc.Map(codes.InvalidArgument, "INVALID", ErrInvalid),
	rpc.Map(codes.NotFound, "NOT_FOUND", ErrNotFound),
	rpc.Map(codes.AlreadyExists, "EXISTS", ErrExists),
	rpc.Map(codes.FailedPrecondition, "IN_USE", ErrInUse),
	rpc.Map(codes.FailedPrecondition, "GROW_AT_ATTACH", ErrGrowAtAttach),
	rpc.Map(codes.ResourceExhausted, "NO_CAPACITY", ErrNoCapacity),
	rpc.Map(codes.Aborted, "CONFLICT", ErrConflict),
}, rpc.Common...)

// Code is the gRPC code of a service error: the one its sentinel maps to,
// Internal for any other error. The CSI driver answers with the same codes.
func Code(err error) codes.Code { return errorTable.Code(err) }

// unreachable says what an Unavailable status means to a client of the
// daemon's socket.
func unreachable(err error) error {
	var re *rpc.Error
	if errors.As(err, &re) && re.Status == codes.Unavailable {
		return fmt.Errorf("ballast daemon unreachable (is it running, and is --socket / BALLAST_SOCKET right?): %w", err)
	}
	return err
}
