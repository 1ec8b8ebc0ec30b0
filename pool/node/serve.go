package node

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/peer"
	"github.com/ballast-io/ballast/pool/remote"
	"github.com/soheilhy/cmux"
)

// ServeReplicas serves this node to the other nodes on ln until the node is
// shut down: the replica protocol (pool/remote) and the peer service
// (pool/peer), told apart by a connection's first byte (the peer
// service's TLS handshake starts with a TLS record). It needs
// Config.Secret.
func (n *Node) ServeReplicas(ln net.Listener) error {
	if n.srv == nil {
		return errors.New("node has no cluster secret: it cannot serve replicas")
	}
	m := cmux.New(ln)
	// A connection that sends nothing for 10 s goes to the replica
	// server, whose handshake timeout ends it.
	m.SetReadTimeout(10 * time.Second)
	peers := m.Match(cmux.TLS())
	replicas := m.Match(cmux.Any())
	errc := make(chan error, 3)
	go func() { errc <- ignoreClosed(n.peerSrv.Serve(peers)) }()
	go func() {
		err := n.srv.Serve(writeThrough{replicas})
		if errors.Is(err, remote.ErrServerClosed) {
			err = nil
		}
		errc <- ignoreClosed(err)
	}()
	go func() { errc <- ignoreClosed(m.Serve()) }()
	// Whichever stops first (Shutdown closes the replica server, maybe
	// before it took its listener), the port closes and the rest stop.
	first := <-errc
	ln.Close()
	n.peerSrv.Stop()
	return errors.Join(first, <-errc, <-errc)
}

func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) || errors.Is(err, cmux.ErrServerClosed) || errors.Is(err, cmux.ErrListenerClosed) {
		return nil
	}
	return err
}

// writeThrough hands the replica server connections whose writes go
// straight to the TCP connection (remote.WriteThrougher): the mux read a
// connection's first bytes, so reads must go through it, but writes need
// not, and a frame then still goes out in one writev.
type writeThrough struct{ net.Listener }

func (l writeThrough) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if mc, ok := c.(*cmux.MuxConn); ok {
		return sniffed{mc}, nil
	}
	return c, nil
}

type sniffed struct{ *cmux.MuxConn }

// WriteThrough is the connection under the mux's.
func (c sniffed) WriteThrough() net.Conn { return c.MuxConn.Conn }

var _ remote.WriteThrougher = sniffed{}

// makeReplica creates (or, with src, clones) replica r wherever it was
// placed: on this node's pool directly, on another node through its peer
// service.
func (n *Node) makeReplica(ctx context.Context, r meta.Replica, size int64, srcID, snap string) error {
	return n.onNode(ctx, r.Node, remote.DefaultTimeout, func(ctx context.Context, s peer.Service) error {
		if srcID != "" {
			return s.CloneReplica(ctx, r.Pool, r.ID, srcID, snap)
		}
		return s.CreateReplica(ctx, r.Pool, r.ID, size)
	})
}

// removeReplica deletes replica r wherever it is. A missing replica is not
// an error.
func (n *Node) removeReplica(ctx context.Context, r meta.Replica) error {
	return n.onNode(ctx, r.Node, remote.DefaultTimeout, func(ctx context.Context, s peer.Service) error {
		return s.DeleteReplica(ctx, r.ID)
	})
}

// deleteServed deletes replica id of pool p, first ending the replica
// server's use of it, with no client opening it again in between.
func (n *Node) deleteServed(p *pool, id string) error {
	del := func() error { return p.store.Delete(id) }
	if n.srv == nil {
		return del()
	}
	return n.srv.Remove(id, del)
}

// onNode runs fn with node's peer service: this node's own when node is
// this one, else a client of the other node's, bounded by timeout.
func (n *Node) onNode(ctx context.Context, node string, timeout time.Duration, fn func(context.Context, peer.Service) error) error {
	if node == n.cfg.ID {
		return fn(ctx, peerService{n})
	}
	return n.withPeer(ctx, node, timeout, func(ctx context.Context, c *peer.Client) error { return fn(ctx, c) })
}
