package remote

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
)

// ErrAuth is wrapped by the errors of a failed handshake: the other end does
// not know the cluster secret (or is not a Ballast node).
var ErrAuth = errors.New("authentication failed")

const (
	authMagic = "BALLAST-AUTH-1\n"
	// tlsMagic starts a connection that goes on in TLS 1.3 with
	// certificates of the cluster CA on both ends (tlsClient), instead of
	// the HMAC handshake: the replica traffic is then encrypted too.
	tlsMagic  = "BALLAST-TLS-01\n"
	nonceSize = 32
	macSize   = sha256.Size

	authOK      = 1
	authRefused = 0
)

// The handshake is a mutual HMAC-SHA256 challenge-response:
//
//	client -> server  authMagic, client nonce (32 bytes)
//	server -> client  server nonce (32), HMAC(secret, "server" | cn | sn)
//	client -> server  HMAC(secret, "client" | cn | sn)   (zeros if the server's proof was wrong)
//	server -> client  1 byte: 1 accepted, 0 refused
//
// Each side proves knowledge of the secret over a nonce the other side
// chose, so neither proof can be replayed. It authenticates the ends only;
// the stream is neither encrypted nor bound to the handshake.
//
// A connection that starts with tlsMagic instead goes on in TLS 1.3, each
// end presenting a certificate of the cluster CA (pool/clusterca) and
// requiring the other's: authenticated and encrypted. A server given a TLS
// configuration that requires it (Server.UseTLS) refuses the HMAC
// handshake.

func proof(secret []byte, role string, cn, sn []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(role))
	m.Write(cn)
	m.Write(sn)
	return m.Sum(nil)
}

// authClient runs the client side of the handshake on conn. The caller sets
// the deadline.
func authClient(conn net.Conn, secret []byte) (net.Conn, error) {
	cn := make([]byte, nonceSize)
	if _, err := rand.Read(cn); err != nil {
		return nil, err
	}
	if _, err := conn.Write(append([]byte(authMagic), cn...)); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	buf := make([]byte, nonceSize+macSize)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	sn, smac := buf[:nonceSize], buf[nonceSize:]
	serverOK := hmac.Equal(smac, proof(secret, "server", cn, sn))
	cmac := make([]byte, macSize) // zeros: tells the server we refuse it
	if serverOK {
		cmac = proof(secret, "client", cn, sn)
	}
	if _, err := conn.Write(cmac); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if !serverOK {
		return nil, fmt.Errorf("server did not prove the cluster secret (wrong secret?): %w", ErrAuth)
	}
	var verdict [1]byte
	if _, err := io.ReadFull(conn, verdict[:]); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if verdict[0] != authOK {
		return nil, fmt.Errorf("server refused the connection (wrong cluster secret?): %w", ErrAuth)
	}
	return conn, nil
}

// authServer runs the server side of the handshake on conn. The caller
// sets the deadline.
func authServer(conn net.Conn, secret []byte) (net.Conn, error) {
	hello := make([]byte, len(authMagic))
	if _, err := io.ReadFull(conn, hello); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if string(hello) != authMagic {
		return nil, fmt.Errorf("handshake: not a Ballast client (got %q): %w", hello, ErrAuth)
	}
	return authServerAfterMagic(conn, secret)
}

// authServerAfterMagic is authServer once the client's magic was read.
func authServerAfterMagic(conn net.Conn, secret []byte) (net.Conn, error) {
	cn := make([]byte, nonceSize)
	if _, err := io.ReadFull(conn, cn); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	sn := make([]byte, nonceSize)
	if _, err := rand.Read(sn); err != nil {
		return nil, err
	}
	if _, err := conn.Write(append(sn, proof(secret, "server", cn, sn)...)); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	cmac := make([]byte, macSize)
	if _, err := io.ReadFull(conn, cmac); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if !hmac.Equal(cmac, proof(secret, "client", cn, sn)) {
		conn.Write([]byte{authRefused})
		return nil, fmt.Errorf("client did not prove the cluster secret (wrong secret?): %w", ErrAuth)
	}
	if _, err := conn.Write([]byte{authOK}); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	return conn, nil
}

// tlsClient starts TLS on conn, after telling the server so. The caller
// sets the deadline.
func tlsClient(ctx context.Context, conn net.Conn, cfg *tls.Config) (net.Conn, error) {
	if _, err := conn.Write([]byte(tlsMagic)); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake (wrong cluster secret, or a server that takes no replica TLS?): %v: %w", err, ErrAuth)
	}
	return tc, nil
}
