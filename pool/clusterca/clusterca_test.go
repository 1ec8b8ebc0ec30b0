package clusterca

import (
	"bytes"
	"crypto/x509"
	"testing"
)

// TestSameSecretSameCA: every node derives the same CA from the secret,
// another secret another CA, and a certificate issued with the secret
// verifies against its CA only.
func TestSameSecretSameCA(t *testing.T) {
	a1, _, err := Derive([]byte("the-cluster-secret-a"))
	if err != nil {
		t.Fatal(err)
	}
	a2, _, err := Derive([]byte("the-cluster-secret-a"))
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := Derive([]byte("the-cluster-secret-b"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a1.Raw, a2.Raw) || bytes.Equal(a1.Raw, b.Raw) {
		t.Fatal("the CA does not follow the secret")
	}
	_, der, _, err := Issue([]byte("the-cluster-secret-a"), "n1", []string{PeerName, "10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	verify := func(ca *x509.Certificate) error {
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		_, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: PeerName, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		return err
	}
	if err := verify(a1); err != nil {
		t.Fatalf("certificate does not verify against its CA: %v", err)
	}
	if err := verify(b); err == nil {
		t.Fatal("certificate verifies against another cluster's CA")
	}
	if len(cert.IPAddresses) != 1 || cert.Subject.CommonName != "n1" {
		t.Fatalf("certificate names %v, %q", cert.IPAddresses, cert.Subject.CommonName)
	}
	if _, _, err := Derive([]byte("short")); err == nil {
		t.Fatal("CA derived from a short secret")
	}
}
