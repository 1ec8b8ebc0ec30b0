package meta

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Embedded is an etcd member running inside the daemon.
type Embedded struct {
	etcd  *embed.Etcd
	close sync.Once
	// Endpoint is the client URL other processes can reach it on.
	Endpoint string
}

// EmbedConfig says where an embedded member keeps its data and listens.
type EmbedConfig struct {
	Name    string // member name, the node ID
	DataDir string // the member's directory
	// ClientURL and PeerURL default to unix sockets inside DataDir, so a
	// lone node needs no TCP port.
	ClientURL string
	PeerURL   string
	// InitialCluster is etcd's --initial-cluster; empty: this member
	// alone. Existing says the member joins a running cluster.
	InitialCluster string
	Existing       bool
	// TLS, when set, makes the member require client and peer
	// certificates signed by the cluster CA, and serve its own.
	TLS *TLSFiles
}

// StartEmbedded starts (or restarts, from its data dir) a single-member
// etcd and waits until it serves.
func StartEmbedded(ctx context.Context, c EmbedConfig, log *slog.Logger) (*Embedded, error) {
	if c.ClientURL == "" {
		c.ClientURL = "unix://" + filepath.Join(c.DataDir, "client.sock")
	}
	if c.PeerURL == "" {
		c.PeerURL = "unix://" + filepath.Join(c.DataDir, "peer.sock")
	}
	cu, err := url.Parse(c.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("etcd client url %q: %w", c.ClientURL, err)
	}
	pu, err := url.Parse(c.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("etcd peer url %q: %w", c.PeerURL, err)
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd data dir: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = c.Name
	cfg.Dir = c.DataDir
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(c.Name)
	if c.InitialCluster != "" {
		cfg.InitialCluster = c.InitialCluster
	}
	if c.Existing {
		cfg.ClusterState = embed.ClusterStateFlagExisting
	}
	if c.TLS != nil {
		info := transport.TLSInfo{CertFile: c.TLS.Cert, KeyFile: c.TLS.Key, TrustedCAFile: c.TLS.CA, ClientCertAuth: true}
		cfg.ClientTLSInfo = info
		cfg.PeerTLSInfo = info
	}
	// etcd logs every listener it closes at shutdown as an error; its real
	// failures reach the daemon as errors from its client calls.
	cfg.LogLevel = "fatal"
	if log.Enabled(context.Background(), slog.LevelDebug) {
		cfg.LogLevel = "info"
	}
	cfg.Logger = "zap"
	// Metrics and the v2 HTTP endpoints stay off: the daemon exposes its own.
	cfg.ListenMetricsUrls = nil

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", c.DataDir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s: %w", c.DataDir, err)
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s: not ready: %w", c.DataDir, ctx.Err())
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s: not ready after 60s", c.DataDir)
	}
	log.Info("embedded etcd ready", "dir", c.DataDir, "client", c.ClientURL)
	return &Embedded{etcd: e, Endpoint: c.ClientURL}, nil
}

// promote makes the member a voting one if it joined as a learner.
func (e *Embedded) promote(ctx context.Context, endpoints []string, tlsc *tls.Config) error {
	// The member's own endpoint answers only once it is a voter; ask the
	// others.
	cli, err := Connect(endpoints, tlsc)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return promoteSelf(ctx, cli, uint64(e.etcd.Server.MemberID()))
}

// Close stops the member.
func (e *Embedded) Close() { e.close.Do(e.etcd.Close) }

// Connect opens a client to etcd endpoints, over TLS when tlsc is set.
// The client learns the cluster's other members as they join.
func Connect(endpoints []string, tlsc *tls.Config) (*clientv3.Client, error) {
	// The client's own zap logging would bypass slog; its failures reach
	// the daemon as errors from each call.
	cfg := clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(), TLS: tlsc}
	if len(endpoints) > 0 && !strings.HasPrefix(endpoints[0], "unix") {
		// A peer cut off by the network sends no reset: find out by
		// keepalive, so that requests move to an endpoint that answers.
		cfg.DialKeepAliveTime, cfg.DialKeepAliveTimeout = 2*time.Second, 2*time.Second
		if len(endpoints) > 1 {
			cfg.AutoSyncInterval = 30 * time.Second
		}
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %v: %w", endpoints, err)
	}
	return cli, nil
}
