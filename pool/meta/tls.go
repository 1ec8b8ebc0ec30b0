package meta

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ballast-io/ballast/pool/atomicfile"
	"github.com/ballast-io/ballast/pool/clusterca"
)

// TLSFiles are the PEM files of a node's etcd TLS identity: the cluster's
// CA certificate and the node's own certificate and key, signed by it.
type TLSFiles struct {
	CA, Cert, Key string
}

// Config returns the client side TLS configuration for these files.
func (f TLSFiles) Config() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("etcd tls: %w", err)
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("etcd tls: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("etcd tls: no certificate in %s", f.CA)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS13}, nil
}

// WriteTLS writes into dir the cluster CA derived from secret and a new
// certificate for this node, valid for hosts (IP addresses or DNS names)
// as both server and client, and returns the files.
func WriteTLS(dir string, secret []byte, node string, hosts []string) (TLSFiles, error) {
	f := TLSFiles{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, "node.crt"), Key: filepath.Join(dir, "node.key")}
	ca, der, key, err := clusterca.Issue(secret, node, hosts)
	if err != nil {
		return f, fmt.Errorf("etcd tls: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return f, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, fmt.Errorf("etcd tls: %w", err)
	}
	for _, w := range []struct {
		path, kind string
		der        []byte
		mode       os.FileMode
	}{{f.CA, "CERTIFICATE", ca.Raw, 0o644}, {f.Cert, "CERTIFICATE", der, 0o644}, {f.Key, "PRIVATE KEY", keyDER, 0o600}} {
		b := pem.EncodeToMemory(&pem.Block{Type: w.kind, Bytes: w.der})
		if err := atomicfile.Write(w.path, b, w.mode); err != nil {
			return f, fmt.Errorf("etcd tls: %w", err)
		}
	}
	return f, nil
}
