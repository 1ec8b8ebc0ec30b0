package csi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	mount "k8s.io/mount-utils"

	"github.com/ballast-io/ballast/pool/api"
)

// DriverName is the CSI driver's name, what a StorageClass's provisioner
// and a CSIDriver object name.
const DriverName = "csi.ballast.io"

// shutdownGrace is how long Serve lets calls in progress finish (an attach
// may be formatting a filesystem) once its context is done.
const shutdownGrace = 30 * time.Second

// Driver holds what the three CSI services share: the node's volume
// service, the node's ID, a mounter and the volumes with a call in
// progress.
type Driver struct {
	svc     api.Service
	nodeID  string
	log     *slog.Logger
	mounter mount.Interface
	busy    busy
}

// New returns a driver serving svc, the service of the node whose ID is
// nodeID. A nil log discards the driver's messages.
func New(svc api.Service, nodeID string, log *slog.Logger) *Driver {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Driver{svc: svc, nodeID: nodeID, log: log.With("component", "csi"), mounter: mount.New(""), busy: busy{held: map[string]bool{}}}
}

// Serve serves the Identity, Controller and Node services of d on the unix
// socket of endpoint (unix:///path/csi.sock, unix:/path or a plain path)
// until ctx is done, then lets calls in progress finish for up to 30 s and
// removes the socket. A stale socket left by a crashed daemon is replaced;
// a socket another process answers on is not.
func Serve(ctx context.Context, d *Driver, endpoint string) error {
	path, err := SocketPath(endpoint)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("csi socket directory: %w", err)
	}
	if err := removeStale(path); err != nil {
		return err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("csi socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("csi socket: %w", err)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(d.logCalls))
	csipb.RegisterIdentityServer(srv, &Identity{Driver: d})
	csipb.RegisterControllerServer(srv, &Controller{Driver: d})
	csipb.RegisterNodeServer(srv, &Node{Driver: d})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	d.log.Info("csi driver listening", "socket", path, "driver", DriverName, "node", d.nodeID)

	select {
	case err := <-done:
		os.Remove(path)
		return fmt.Errorf("csi driver on %s: %w", path, err)
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(shutdownGrace):
		d.log.Warn("csi calls still running at shutdown were cut off")
		srv.Stop()
	}
	<-done
	os.Remove(path)
	d.log.Info("csi driver stopped", "socket", path)
	return nil
}

// SocketPath returns the file of a unix endpoint: unix:///path/csi.sock,
// unix:/path/csi.sock, /path/csi.sock, or a path relative to the working
// directory (unix:csi.sock, csi.sock), made absolute.
func SocketPath(endpoint string) (string, error) {
	p := endpoint
	if rest, ok := strings.CutPrefix(endpoint, "unix://"); ok {
		if !strings.HasPrefix(rest, "/") {
			// unix://csi.sock would name a host "csi.sock".
			return "", fmt.Errorf("csi endpoint %q: a unix:// endpoint takes an absolute path (unix:///path/csi.sock); write a relative one as unix:%s", endpoint, rest)
		}
		p = rest
	} else if rest, ok := strings.CutPrefix(endpoint, "unix:"); ok {
		p = rest
	} else if strings.Contains(endpoint, "://") {
		return "", fmt.Errorf("csi endpoint %q: only unix sockets are served (unix:///path/csi.sock)", endpoint)
	}
	if p == "" {
		return "", fmt.Errorf("csi endpoint %q: no socket path", endpoint)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("csi endpoint %q: %w", endpoint, err)
	}
	return abs, nil
}

// removeStale removes a socket nobody answers on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("csi socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("csi socket %s exists and is not a socket; remove it or choose another --csi-endpoint", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("csi socket %s is in use by another process (is another ballast daemon running?)", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale csi socket: %w", err)
	}
	return nil
}

// logCalls logs every call: failures at warn, the rest at debug, and
// turns a panic into an INTERNAL error instead of a dead daemon.
func (d *Driver) logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("csi call panicked", "method", info.FullMethod, "panic", p)
			resp, err = nil, status.Errorf(codes.Internal, "%s: internal error: %v", info.FullMethod, p)
		}
		method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
		if err != nil {
			d.log.Warn("csi call failed", "method", method, "code", status.Code(err).String(), "err", status.Convert(err).Message(), "took", time.Since(start))
		} else if !strings.HasPrefix(method, "Probe") && !strings.HasSuffix(method, "GetCapabilities") {
			d.log.Debug("csi call", "method", method, "took", time.Since(start))
		}
	}()
	return h(ctx, req)
}

// toStatus turns a volume service error into the gRPC status CSI asks for.
// An error that already is a status passes unchanged.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		return err
	}
	return status.Error(api.Code(err), err.Error())
}

// invalid is an INVALID_ARGUMENT error.
func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// busy is the set of volumes (and snapshots) with a call in progress. CSI
// asks a plugin to answer ABORTED to a second call for the same volume
// rather than run both; the CO retries it.
type busy struct {
	mu   sync.Mutex
	held map[string]bool
}

// try marks key busy and returns its release, or an ABORTED error when a
// call holds it already.
func (b *busy) try(key string) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held[key] {
		return nil, status.Errorf(codes.Aborted, "an operation on %s is already in progress; try again", key)
	}
	b.held[key] = true
	return func() {
		b.mu.Lock()
		delete(b.held, key)
		b.mu.Unlock()
	}, nil
}
