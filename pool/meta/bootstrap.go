package meta

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"

	"github.com/ballast-io/ballast/pool/atomicfile"
)

// ClusterConfig is how a node of a multi-node cluster finds or starts its
// etcd.
type ClusterConfig struct {
	Name    string // the node ID, also its etcd member name
	DataDir string // the etcd dir: member data, TLS files, joined.json
	// ClientAddr and PeerAddr are the HOST:PORT the node's member would
	// serve etcd clients and peers on, reachable by the other nodes.
	ClientAddr, PeerAddr string
	Secret               []byte // the cluster secret: etcd's TLS CA derives from it
	// Join asks a node of the cluster to let this one in; nil: this is
	// the cluster's first node.
	Join func(ctx context.Context, req JoinRequest) (JoinAnswer, error)
}

// Cluster is a node's way into the cluster's etcd.
type Cluster struct {
	Member    *Embedded // nil when this node is an etcd client only
	Endpoints []string
	TLS       *tls.Config
}

// Close stops the member, if any.
func (c *Cluster) Close() {
	if c.Member != nil {
		c.Member.Close()
	}
}

// joinedFile records what a join answered, so that a restarted node goes
// back to the same role without asking again.
const joinedFile = "joined.json"

// StartCluster starts this node's etcd member or finds the cluster's:
//   - a node that was a member restarts its member from its data;
//   - a node that joined as a client reconnects to the endpoints it was given;
//   - otherwise a node with Join asks to join, and becomes a member or a
//     client as answered; one without starts the cluster's first member.
//
// All etcd traffic is TLS with certificates from the cluster CA.
func StartCluster(ctx context.Context, c ClusterConfig, log *slog.Logger) (*Cluster, error) {
	host, _, err := net.SplitHostPort(c.ClientAddr)
	if err != nil {
		return nil, fmt.Errorf("etcd client address %q: %w", c.ClientAddr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return nil, fmt.Errorf("etcd client address %q: give the address other nodes reach this node at, not an unspecified one", c.ClientAddr)
	}
	files, err := WriteTLS(filepath.Join(c.DataDir, "tls"), c.Secret, c.Name, []string{host})
	if err != nil {
		return nil, err
	}
	tlsc, err := files.Config()
	if err != nil {
		return nil, err
	}
	mc := EmbedConfig{Name: c.Name, DataDir: c.DataDir, ClientURL: "https://" + c.ClientAddr, PeerURL: "https://" + c.PeerAddr, TLS: &files}
	joinedPath := filepath.Join(c.DataDir, joinedFile)
	var ans JoinAnswer
	switch b, err := os.ReadFile(joinedPath); {
	case err == nil:
		if err := json.Unmarshal(b, &ans); err != nil {
			return nil, fmt.Errorf("%s: %w", joinedPath, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	_, statErr := os.Stat(filepath.Join(c.DataDir, "member"))
	hasMember := statErr == nil
	switch {
	case hasMember, ans.Member:
		// etcd restarts from its own data and ignores the initial cluster;
		// a member that died while joining starts with what it was told.
		mc.InitialCluster, mc.Existing = ans.InitialCluster, ans.Member
	case ans.Endpoints != nil:
		log.Info("joined the cluster's etcd as a client", "endpoints", ans.Endpoints)
		return &Cluster{Endpoints: ans.Endpoints, TLS: tlsc}, nil
	case c.Join != nil:
		ans, err = c.Join(ctx, JoinRequest{PeerURL: mc.PeerURL})
		if err != nil {
			return nil, err
		}
		b, _ := json.Marshal(ans)
		if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
			return nil, err
		}
		if err := atomicfile.Write(joinedPath, b, 0o600); err != nil {
			return nil, fmt.Errorf("record the join: %w", err)
		}
		if !ans.Member {
			log.Info("joined the cluster's etcd as a client", "endpoints", ans.Endpoints, "members", MaxMembers)
			return &Cluster{Endpoints: ans.Endpoints, TLS: tlsc}, nil
		}
		mc.InitialCluster, mc.Existing = ans.InitialCluster, true
		log.Info("joining the cluster's etcd as a member", "initial_cluster", ans.InitialCluster)
	}
	m, err := StartEmbedded(ctx, mc, log)
	if err != nil {
		return nil, err
	}
	if ans.Member {
		others := slices.DeleteFunc(ans.Endpoints, func(e string) bool { return e == mc.ClientURL })
		if err := m.promote(ctx, others, tlsc); err != nil {
			m.Close()
			return nil, err
		}
	}
	// A member node talks to its own member only: cut off from the
	// others, it must lose its lease like its member loses the quorum,
	// and no request of it hangs on a peer it cannot reach.
	return &Cluster{Member: m, Endpoints: []string{mc.ClientURL}, TLS: tlsc}, nil
}
