package peer

import (
	"io/fs"

	"google.golang.org/grpc/codes"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/replica"
	"github.com/ballast-io/ballast/pool/rpc"
)

// errorTable maps the errors of the service's calls to gRPC codes and
// back. Replica calls fail with the replica store's sentinels, a resize
// with the volume service's; a caller's errors.Is matches either.
var errorTable = append(rpc.Errors{
	rpc.Map(codes.InvalidArgument, api.ErrInvalid),
	rpc.Map(codes.NotFound, replica.ErrNotFound, api.ErrNotFound, fs.ErrNotExist),
	rpc.Map(codes.AlreadyExists, replica.ErrExists, api.ErrExists),
	rpc.Map(codes.FailedPrecondition, replica.ErrInUse, api.ErrInUse),
	rpc.Map(codes.FailedPrecondition, api.ErrGrowAtAttach),
	rpc.Map(codes.ResourceExhausted, api.ErrNoCapacity),
	rpc.Map(codes.Aborted, api.ErrConflict),
	rpc.Map(codes.Unauthenticated, ErrAuth),
	rpc.Map(codes.OutOfRange, ErrVersion),
}, rpc.Common...)
