// Package clusterca derives a Ballast cluster's certificate authority from
// its secret and issues node certificates signed by it. The same secret
// gives every node the same CA key, so each node can sign its own
// certificate, and a peer that trusts only that CA lets in exactly the
// holders of the secret. The embedded etcd (pool/meta) and the node-to-node
// peer service (pool/peer) both authenticate with it.
package clusterca

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"time"
)

// MinSecret is the shortest cluster secret accepted.
const MinSecret = 16

// CheckSecret refuses a secret too short to derive a CA from.
func CheckSecret(secret []byte) error {
	if len(secret) < MinSecret {
		return fmt.Errorf("cluster secret of %d bytes, need at least %d", len(secret), MinSecret)
	}
	return nil
}

// Derive derives the cluster's CA certificate and key from its secret.
func Derive(secret []byte) (*x509.Certificate, ed25519.PrivateKey, error) {
	if err := CheckSecret(secret); err != nil {
		return nil, nil, err
	}
	seed, err := hkdf.Key(sha256.New, secret, []byte("ballast-etcd-ca"), "ballast etcd CA v1", ed25519.SeedSize)
	if err != nil {
		return nil, nil, err
	}
	key := ed25519.NewKeyFromSeed(seed)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ballast cluster CA"},
		NotBefore:             time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2120, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	// Ed25519 signatures are deterministic: every node derives the same
	// certificate, byte for byte.
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(der)
	return ca, key, err
}

// Issue derives the CA from secret and signs with it a new certificate for
// node, valid for ten years for hosts (IP addresses or DNS names) as both
// server and client. It returns the CA, the certificate (DER) and its key.
func Issue(secret []byte, node string, hosts []string) (ca *x509.Certificate, cert []byte, key ed25519.PrivateKey, err error) {
	ca, caKey, err := Derive(secret)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("derive the cluster CA: %w", err)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: node},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	cert, err = x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("sign the certificate of %s: %w", node, err)
	}
	return ca, cert, key, nil
}

// PeerName is the name every node's peer certificate carries and every
// peer client checks, in place of a host name: nodes are reached by
// address, and what a client must know is only that the server holds a
// certificate of the cluster's CA.
const PeerName = "ballast-peer"

// MutualTLS returns the TLS configurations of a node's peer server and
// client: both present a fresh certificate of the cluster's CA for node,
// and both require the other end to present one too (TLS 1.3).
func MutualTLS(secret []byte, node string) (server, client *tls.Config, err error) {
	ca, der, key, err := Issue(secret, node, []string{PeerName})
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	server = &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
	client = &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   PeerName,
		MinVersion:   tls.VersionTLS13,
	}
	return server, client, nil
}
