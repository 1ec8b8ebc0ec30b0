package peer

import (
	"io/fs"

	"google.golang.org/grpc/codes"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/replica"
	"github.com/ballast-io/ballast/pool/rpc"
)

// errorTable maps the errors of the service's calls to gRPC codes and
// reasons and back. Replica calls fail with the replica store's sentinels,
// a resize with the volume service's: they keep apart across the wire, so
// that a replica the store could not find is not a volume the user named
// that does not exist.
var errorTable = append(rpc.Errors{
	rpc.Map(codes.InvalidArgument, "INVALID", api.ErrInvalid),
	rpc.Map(codes.NotFound, "REPLICA_NOT_FOUND", replica.ErrNotFound, fs.ErrNotExist),
	rpc.Map(codes.AlreadyExists, "REPLICA_EXISTS", replica.ErrExists),
	rpc.Map(codes.FailedPrecondition, "REPLICA_IN_USE", replica.ErrInUse),
	rpc.Map(codes.NotFound, "NOT_FOUND", api.ErrNotFound),
	rpc.Map(codes.AlreadyExists, "EXISTS", api.ErrExists),
	rpc.Map(codes.FailedPrecondition, "IN_USE", api.ErrInUse),
	rpc.Map(codes.FailedPrecondition, "GROW_AT_ATTACH", api.ErrGrowAtAttach),
	rpc.Map(codes.ResourceExhausted, "NO_CAPACITY", api.ErrNoCapacity),
	rpc.Map(codes.Aborted, "CONFLICT", api.ErrConflict),
	rpc.Map(codes.Unauthenticated, "AUTH", ErrAuth),
	rpc.Map(codes.OutOfRange, "VERSION", ErrVersion),
}, rpc.Common...)
