package api

import (
	"context"
	"fmt"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ballast-io/ballast/pool/rpc"
	"github.com/ballast-io/ballast/pool/spec"
)

// Client reaches a daemon's Service over its unix socket. It implements
// Service, so the Docker plugin or the CSI driver can run in or out of the
// daemon's process alike.
type Client struct {
	conn *grpc.ClientConn
}

var _ Service = (*Client)(nil)

// Dial connects to the daemon's socket, an absolute path or one relative to
// the working directory. It does not wait for the daemon: the first call
// fails with a clear error if it is not there.
func Dial(socket string) (*Client, error) {
	if socket == "" {
		return nil, fmt.Errorf("dial: no daemon socket given (--socket or BALLAST_SOCKET)")
	}
	// gRPC reads unix://./b.sock as a host "."; an absolute path has none.
	abs, err := filepath.Abs(socket)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", socket, err)
	}
	conn, err := grpc.NewClient("unix://"+abs,
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", socket, err)
	}
	return &Client{conn: conn}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

func call[Resp any](ctx context.Context, c *Client, method string, req any) (Resp, error) {
	resp, err := rpc.Call[Resp](ctx, c.conn, errorTable, serviceName, method, req)
	return resp, unreachable(err)
}

func (c *Client) CreateVolume(ctx context.Context, v spec.Volume, opts CreateOptions) (*Volume, error) {
	return call[*Volume](ctx, c, "CreateVolume", &CreateReq{Volume: v, Opts: opts})
}

func (c *Client) DeleteVolume(ctx context.Context, name string) error {
	_, err := call[*Empty](ctx, c, "DeleteVolume", &NameReq{Name: name})
	return err
}

func (c *Client) ResizeVolume(ctx context.Context, name string, size int64) (*Volume, error) {
	return call[*Volume](ctx, c, "ResizeVolume", &ResizeReq{Name: name, Size: size})
}

func (c *Client) InspectVolume(ctx context.Context, name string) (*Volume, error) {
	return call[*Volume](ctx, c, "InspectVolume", &NameReq{Name: name})
}

func (c *Client) ListVolumes(ctx context.Context) ([]Volume, error) {
	return call[[]Volume](ctx, c, "ListVolumes", &Empty{})
}

func (c *Client) AttachVolume(ctx context.Context, name string, opts AttachOptions) (*Attachment, error) {
	return call[*Attachment](ctx, c, "AttachVolume", &AttachReq{Name: name, Opts: opts})
}

func (c *Client) DetachVolume(ctx context.Context, name string) error {
	_, err := call[*Empty](ctx, c, "DetachVolume", &NameReq{Name: name})
	return err
}

func (c *Client) CreateSnapshot(ctx context.Context, volume, name string) (*Snapshot, error) {
	return call[*Snapshot](ctx, c, "CreateSnapshot", &SnapshotReq{Volume: volume, Name: name})
}

func (c *Client) DeleteSnapshot(ctx context.Context, volume, name string) error {
	_, err := call[*Empty](ctx, c, "DeleteSnapshot", &SnapshotReq{Volume: volume, Name: name})
	return err
}

func (c *Client) ListSnapshots(ctx context.Context, volume string) ([]Snapshot, error) {
	return call[[]Snapshot](ctx, c, "ListSnapshots", &NameReq{Name: volume})
}

func (c *Client) SetSecret(ctx context.Context, name string, value []byte) (*Secret, error) {
	return call[*Secret](ctx, c, "SetSecret", &SecretReq{Name: name, Value: value})
}

func (c *Client) ChangePassphrase(ctx context.Context, volume string, old, value []byte) error {
	_, err := call[*Empty](ctx, c, "ChangePassphrase", &PassphraseReq{Volume: volume, Old: old, Value: value})
	return err
}

func (c *Client) ChangeSecret(ctx context.Context, name string, value []byte) (*Secret, error) {
	return call[*Secret](ctx, c, "ChangeSecret", &SecretReq{Name: name, Value: value})
}

func (c *Client) ListSecrets(ctx context.Context) ([]Secret, error) {
	return call[[]Secret](ctx, c, "ListSecrets", &Empty{})
}

func (c *Client) DeleteSecret(ctx context.Context, name string) error {
	_, err := call[*Empty](ctx, c, "DeleteSecret", &NameReq{Name: name})
	return err
}

func (c *Client) ListPools(ctx context.Context) ([]Pool, error) {
	return call[[]Pool](ctx, c, "ListPools", &Empty{})
}

func (c *Client) ClusterStatus(ctx context.Context) ([]Node, error) {
	return call[[]Node](ctx, c, "ClusterStatus", &Empty{})
}
