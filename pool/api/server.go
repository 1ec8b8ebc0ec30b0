package api

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"google.golang.org/grpc"

	"github.com/ballast-io/ballast/pool/rpc"
	"github.com/ballast-io/ballast/pool/spec"
)

const serviceName = "ballast.v1.Volumes"

// Request messages. Every method takes one struct and answers another.
type (
	NameReq struct{ Name string }
	// CreateReq embeds the spec, so a request of an older client (the
	// spec alone) still reads.
	CreateReq struct {
		spec.Volume
		Opts CreateOptions `json:"opts,omitempty"`
	}
	AttachReq struct {
		Name string
		Opts AttachOptions
	}
	SnapshotReq struct{ Volume, Name string }
	ResizeReq   struct {
		Name string
		Size int64
	}
	SecretReq struct {
		Name  string
		Value []byte
	}
	PassphraseReq struct {
		Volume     string
		Old, Value []byte
	}
	// Empty is the request or answer that carries nothing.
	Empty = rpc.Empty
)

var methods = []rpc.Method[Service]{
	rpc.Unary(errorTable, "CreateVolume", func(s Service, ctx context.Context, r *CreateReq) (*Volume, error) {
		return s.CreateVolume(ctx, r.Volume, r.Opts)
	}),
	rpc.Unary(errorTable, "DeleteVolume", func(s Service, ctx context.Context, r *NameReq) (*Empty, error) {
		return rpc.NoAnswer(s.DeleteVolume(ctx, r.Name))
	}),
	rpc.Unary(errorTable, "ResizeVolume", func(s Service, ctx context.Context, r *ResizeReq) (*Volume, error) {
		return s.ResizeVolume(ctx, r.Name, r.Size)
	}),
	rpc.Unary(errorTable, "InspectVolume", func(s Service, ctx context.Context, r *NameReq) (*Volume, error) { return s.InspectVolume(ctx, r.Name) }),
	rpc.Unary(errorTable, "ListVolumes", func(s Service, ctx context.Context, _ *Empty) ([]Volume, error) { return s.ListVolumes(ctx) }),
	rpc.Unary(errorTable, "AttachVolume", func(s Service, ctx context.Context, r *AttachReq) (*Attachment, error) {
		return s.AttachVolume(ctx, r.Name, r.Opts)
	}),
	rpc.Unary(errorTable, "DetachVolume", func(s Service, ctx context.Context, r *NameReq) (*Empty, error) {
		return rpc.NoAnswer(s.DetachVolume(ctx, r.Name))
	}),
	rpc.Unary(errorTable, "CreateSnapshot", func(s Service, ctx context.Context, r *SnapshotReq) (*Snapshot, error) {
		return s.CreateSnapshot(ctx, r.Volume, r.Name)
	}),
	rpc.Unary(errorTable, "DeleteSnapshot", func(s Service, ctx context.Context, r *SnapshotReq) (*Empty, error) {
		return rpc.NoAnswer(s.DeleteSnapshot(ctx, r.Volume, r.Name))
	}),
	rpc.Unary(errorTable, "ListSnapshots", func(s Service, ctx context.Context, r *NameReq) ([]Snapshot, error) {
		return s.ListSnapshots(ctx, r.Name)
	}),
	rpc.Unary(errorTable, "SetSecret", func(s Service, ctx context.Context, r *SecretReq) (*Secret, error) {
		return s.SetSecret(ctx, r.Name, r.Value)
	}),
	rpc.Unary(errorTable, "ChangeSecret", func(s Service, ctx context.Context, r *SecretReq) (*Secret, error) {
		return s.ChangeSecret(ctx, r.Name, r.Value)
	}),
	rpc.Unary(errorTable, "ChangePassphrase", func(s Service, ctx context.Context, r *PassphraseReq) (*Empty, error) {
		return rpc.NoAnswer(s.ChangePassphrase(ctx, r.Volume, r.Old, r.Value))
	}),
	rpc.Unary(errorTable, "ListSecrets", func(s Service, ctx context.Context, _ *Empty) ([]Secret, error) { return s.ListSecrets(ctx) }),
	rpc.Unary(errorTable, "DeleteSecret", func(s Service, ctx context.Context, r *NameReq) (*Empty, error) {
		return rpc.NoAnswer(s.DeleteSecret(ctx, r.Name))
	}),
	rpc.Unary(errorTable, "ListPools", func(s Service, ctx context.Context, _ *Empty) ([]Pool, error) { return s.ListPools(ctx) }),
	rpc.Unary(errorTable, "ClusterStatus", func(s Service, ctx context.Context, _ *Empty) ([]Node, error) { return s.ClusterStatus(ctx) }),
}

// Serve answers the Service over gRPC on a unix socket at path (mode 0600,
// root only) until ctx ends, and the BackupService too if svc is one.
func Serve(ctx context.Context, path string, svc Service, log *slog.Logger) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("socket dir: %w", err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		lis.Close()
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(logCalls(log)))
	rpc.Register(srv, serviceName, svc, methods)
	if b, ok := svc.(BackupService); ok {
		rpc.Register(srv, backupServiceName, b, backupMethods)
	}
	go func() {
		<-ctx.Done()
		srv.GracefulStop()
	}()
	log.Info("serving the volume API", "socket", path)
	return srv.Serve(lis)
}

func logCalls(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		if err != nil {
			log.Warn("api call failed", "method", info.FullMethod, "err", err)
		} else {
			log.Debug("api call", "method", info.FullMethod)
		}
		return resp, err
	}
}
