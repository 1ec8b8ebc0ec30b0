package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/clusterca"
	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/rpc"
)

// Dialer reaches other nodes' peer services as one node of the cluster.
type Dialer struct {
	tls *tls.Config
}

// NewDialer returns a dialer that proves to the other nodes that this node,
// node, holds the cluster secret.
func NewDialer(secret []byte, node string) (*Dialer, error) {
	_, cli, err := clusterca.MutualTLS(secret, node)
	if err != nil {
		return nil, fmt.Errorf("peer client: %w", err)
	}
	return &Dialer{tls: cli}, nil
}

// Client calls one other node's Service. It connects on its first call;
// calls are bounded by their context.
type Client struct {
	addr string
	conn *grpc.ClientConn
}

// Dial returns a client of the node at addr (host:port, its --listen).
func (d *Dialer) Dial(addr string) (*Client, error) {
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(d.tls)))
	if err != nil {
		return nil, fmt.Errorf("peer %s: %w", addr, err)
	}
	return &Client{addr: addr, conn: conn}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// call makes one call, carrying this node's protocol version and checking
// the one the other node answers with.
func call[Resp any](ctx context.Context, c *Client, method string, req any) (Resp, error) {
	ctx = metadata.AppendToOutgoingContext(ctx, versionKey, fmt.Sprint(Version))
	var header, trailer metadata.MD
	resp, err := rpc.Call[Resp](ctx, c.conn, errorTable, serviceName, method, req, grpc.Header(&header), grpc.Trailer(&trailer))
	theirs := append(header.Get(versionKey), trailer.Get(versionKey)...)
	if len(theirs) > 0 && theirs[0] != fmt.Sprint(Version) {
		return resp, fmt.Errorf("peer %s: %s: the node there speaks peer protocol version %s, this node %d: run the same Ballast version on every node: %w", c.addr, method, theirs[0], Version, ErrVersion)
	}
	var re *rpc.Error
	if errors.As(err, &re) && re.Status == codes.Unimplemented && len(theirs) == 0 {
		return resp, fmt.Errorf("peer %s: %s: the node there does not serve peer protocol version %d (does it run another Ballast version?): %v: %w", c.addr, method, Version, err, ErrVersion)
	}
	if err != nil {
		return resp, fmt.Errorf("peer %s: %s: %w", c.addr, method, explain(err))
	}
	return resp, nil
}

// explain says what a failure to reach the other node at all means.
func explain(err error) error {
	var re *rpc.Error
	if !errors.As(err, &re) || re.Status != codes.Unavailable {
		return err
	}
	msg := err.Error()
	if strings.Contains(msg, "tls: ") || strings.Contains(msg, "x509: ") || strings.Contains(msg, "certificate") {
		return fmt.Errorf("the other end does not hold this cluster's secret, or is not a Ballast node (check --cluster-secret-file): %v: %w", err, ErrAuth)
	}
	return fmt.Errorf("node unreachable, or not a Ballast node speaking peer protocol %d: %w", Version, err)
}

func (c *Client) CreateReplica(ctx context.Context, pool, id string, size int64) error {
	_, err := call[*rpc.Empty](ctx, c, "CreateReplica", &CreateReq{Pool: pool, ID: id, Size: size})
	return err
}

func (c *Client) CloneReplica(ctx context.Context, pool, id, src, snap string) error {
	_, err := call[*rpc.Empty](ctx, c, "CloneReplica", &CloneReq{Pool: pool, ID: id, Source: src, Snapshot: snap})
	return err
}

func (c *Client) DeleteReplica(ctx context.Context, id string) error {
	_, err := call[*rpc.Empty](ctx, c, "DeleteReplica", &DeleteReq{ID: id})
	return err
}

func (c *Client) Join(ctx context.Context, node string, req meta.JoinRequest) (meta.JoinAnswer, error) {
	ans, err := call[*meta.JoinAnswer](ctx, c, "Join", &JoinReq{Node: node, Request: req})
	if err != nil {
		return meta.JoinAnswer{}, err
	}
	return *ans, nil
}

func (c *Client) ResizeVolume(ctx context.Context, volume string, size int64) error {
	_, err := call[*rpc.Empty](ctx, c, "ResizeVolume", &ResizeReq{Volume: volume, Size: size})
	return err
}

func (c *Client) CreateBackup(ctx context.Context, b api.BackupSpec) (*api.Backup, error) {
	return call[*api.Backup](ctx, c, "CreateBackup", &b)
}

func (c *Client) CreateSnapshot(ctx context.Context, volume, name string) (*api.Snapshot, error) {
	return call[*api.Snapshot](ctx, c, "CreateSnapshot", &SnapshotReq{Volume: volume, Name: name})
}

var _ Service = (*Client)(nil)
