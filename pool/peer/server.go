package peer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/tap"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/clusterca"
	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/rpc"
)

const serviceName = "ballast.peer.v1.Peer"

// versionKey is the metadata key that carries a node's protocol version,
// in every request and in every answer.
const versionKey = "ballast-peer-version"

func validName(kind, s string) error {
	if s == "" {
		return fmt.Errorf("%w: no %s given", errorTable.Invalid(), kind)
	}
	return nil
}

var methods = []rpc.Method[Service]{
	rpc.Unary(errorTable, "CreateReplica", func(s Service, ctx context.Context, r *CreateReq) (*rpc.Empty, error) {
		if err := errors.Join(validName("pool", r.Pool), validName("replica ID", r.ID)); err != nil {
			return nil, err
		}
		return rpc.NoAnswer(s.CreateReplica(ctx, r.Pool, r.ID, r.Size))
	}),
	rpc.Unary(errorTable, "CloneReplica", func(s Service, ctx context.Context, r *CloneReq) (*rpc.Empty, error) {
		if err := errors.Join(validName("pool", r.Pool), validName("replica ID", r.ID), validName("source replica", r.Source), validName("snapshot", r.Snapshot)); err != nil {
			return nil, err
		}
		return rpc.NoAnswer(s.CloneReplica(ctx, r.Pool, r.ID, r.Source, r.Snapshot))
	}),
	rpc.Unary(errorTable, "DeleteReplica", func(s Service, ctx context.Context, r *DeleteReq) (*rpc.Empty, error) {
		if err := validName("replica ID", r.ID); err != nil {
			return nil, err
		}
		return rpc.NoAnswer(s.DeleteReplica(ctx, r.ID))
	}),
	rpc.Unary(errorTable, "Join", func(s Service, ctx context.Context, r *JoinReq) (*meta.JoinAnswer, error) {
		if err := validName("node ID", r.Node); err != nil {
			return nil, err
		}
		ans, err := s.Join(ctx, r.Node, r.Request)
		return &ans, err
	}),
	rpc.Unary(errorTable, "ResizeVolume", func(s Service, ctx context.Context, r *ResizeReq) (*rpc.Empty, error) {
		if err := validName("volume", r.Volume); err != nil {
			return nil, err
		}
		return rpc.NoAnswer(s.ResizeVolume(ctx, r.Volume, r.Size))
	}),
	rpc.Unary(errorTable, "CreateBackup", func(s Service, ctx context.Context, r *api.BackupSpec) (*api.Backup, error) {
		if err := validName("volume", r.Volume); err != nil {
			return nil, err
		}
		return s.CreateBackup(ctx, *r)
	}),
	rpc.Unary(errorTable, "CreateSnapshot", func(s Service, ctx context.Context, r *SnapshotReq) (*api.Snapshot, error) {
		if err := validName("volume", r.Volume); err != nil {
			return nil, err
		}
		return s.CreateSnapshot(ctx, r.Volume, r.Name)
	}),
}

// Server serves a node's Service to the other nodes.
type Server struct {
	grpc *grpc.Server
	log  *slog.Logger
}

// NewServer returns a server of svc that lets in the holders of the
// cluster secret. node names this node in its certificate.
func NewServer(secret []byte, node string, svc Service, log *slog.Logger) (*Server, error) {
	srvTLS, _, err := clusterca.MutualTLS(secret, node)
	if err != nil {
		return nil, fmt.Errorf("peer server: %w", err)
	}
	s := &Server{log: log}
	s.grpc = grpc.NewServer(grpc.Creds(credentials.NewTLS(srvTLS)), grpc.InTapHandle(s.checkVersion),
		grpc.ChainUnaryInterceptor(s.sayVersion, s.logCalls))
	rpc.Register(s.grpc, serviceName, svc, methods)
	return s, nil
}

// Serve answers calls on ln until Stop. It returns nil once stopped.
func (s *Server) Serve(ln net.Listener) error {
	err := s.grpc.Serve(ln)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Stop closes the listeners and the connections, ending calls in flight.
func (s *Server) Stop() { s.grpc.Stop() }

// checkVersion refuses a call from a node that speaks another protocol
// version, before anything of it is read.
func (s *Server) checkVersion(ctx context.Context, info *tap.Info) (context.Context, error) {
	if got := info.Header.Get(versionKey); len(got) != 1 || got[0] != fmt.Sprint(Version) {
		err := fmt.Errorf("%s: the calling node speaks peer protocol version %v, this node %d: run the same Ballast version on every node: %w", info.FullMethodName, got, Version, ErrVersion)
		s.log.Warn("peer call refused", "err", err)
		return ctx, errorTable.ToStatus(err)
	}
	return ctx, nil
}

// sayVersion answers every call with this node's protocol version.
func (s *Server) sayVersion(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	mine := metadata.Pairs(versionKey, fmt.Sprint(Version))
	grpc.SetHeader(ctx, mine)
	grpc.SetTrailer(ctx, mine)
	return h(ctx, req)
}

func (s *Server) logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	if err != nil {
		s.log.Warn("peer call failed", "method", info.FullMethod, "from", caller(ctx), "err", err)
	} else {
		s.log.Info("peer call", "method", info.FullMethod, "from", caller(ctx))
	}
	return resp, err
}

// caller names the other end of a call: its certificate's node name and
// its address.
func caller(ctx context.Context) string {
	p, ok := grpcpeer.FromContext(ctx)
	if !ok {
		return "?"
	}
	if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
		return ti.State.PeerCertificates[0].Subject.CommonName + "@" + p.Addr.String()
	}
	return p.Addr.String()
}
