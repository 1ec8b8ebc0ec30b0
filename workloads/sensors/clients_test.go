package sensors

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"
	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"golang.org/x/sys/unix"
)

// selfSigned writes a CA-less self-signed certificate for 127.0.0.1 and
// returns the server config and the certificate's PEM file.
func selfSigned(t *testing.T) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kafka test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, ca
}

// TestKafkaTLSAndSASL runs the producer, the consumer group (ingester) and
// the verifier's topic reader against a broker that wants TLS and SASL,
// with the settings the CLI flags fill in: SCRAM-SHA-256, SCRAM-SHA-512
// and PLAIN users, the broker's certificate checked against --kafka-ca.
// Wrong credentials and plaintext to a TLS broker fail.
func TestKafkaTLSAndSASL(t *testing.T) {
	srv, ca := selfSigned(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(srv), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-256", "scram", "s3cret"),
		kfake.Superuser("SCRAM-SHA-512", "scram512", "s3cret512"),
		kfake.Superuser("PLAIN", "plain", "pw"),
		kfake.SeedTopics(3, Topic), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	tlsOn := TLSFiles{Enable: true, CAFile: ca}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	scram := KafkaConfig{Brokers: []string{addr}, TLS: tlsOn, Mechanism: "scram-sha-256", User: "scram", Password: "s3cret"}
	if _, err := Produce(ctx, ProducerConfig{Kafka: scram, Sensors: 5, Count: 500}); err != nil {
		t.Fatal(err)
	}
	for _, kc := range []KafkaConfig{
		scram,
		{Brokers: []string{addr}, TLS: tlsOn, Mechanism: "scram-sha-512", User: "scram512", Password: "s3cret512"},
		{Brokers: []string{addr}, TLS: tlsOn, Mechanism: "plain", User: "plain", Password: "pw"},
		{Brokers: []string{addr}, TLS: tlsOn, User: "plain", Password: "pw"}, // PLAIN when only a user is given
	} {
		n, _, err := readTopic(ctx, mustResolveCfg(t, kc), Topic, func(kafka.Message) {})
		if err != nil || n != 500 {
			t.Errorf("%s as %s: read %d messages (%v), want 500", kc.Mechanism, kc.User, n, err)
		}
	}

	store := newMemStore()
	in, err := NewIngester(IngestConfig{Kafka: scram, Cassandra: CassandraConfig{Hosts: []string{"unused"}},
		SessionTimeout: 6 * time.Second, Progress: -1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	in.open = func(context.Context, []string) (sink, error) { return store, nil }
	runIngester(t, in)
	waitFor(t, "the readings stored through TLS and SCRAM", time.Minute, func() bool { return store.count() == 500 })

	for name, kc := range map[string]KafkaConfig{
		"wrong password": {Brokers: []string{addr}, TLS: tlsOn, Mechanism: "scram-sha-256", User: "scram", Password: "nope"},
		"no TLS":         {Brokers: []string{addr}, Mechanism: "scram-sha-256", User: "scram", Password: "s3cret"},
		"unknown CA":     {Brokers: []string{addr}, TLS: TLSFiles{Enable: true}, Mechanism: "scram-sha-256", User: "scram", Password: "s3cret"},
	} {
		sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
		_, _, err := readTopic(sctx, mustResolveCfg(t, kc), Topic, func(kafka.Message) {})
		scancel()
		if err == nil {
			t.Errorf("%s: read the topic", name)
		}
	}
}

func mustResolveCfg(t *testing.T, kc KafkaConfig) *kafkaClient {
	t.Helper()
	c, err := kc.resolve()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestKafkaConfigRejects(t *testing.T) {
	for name, kc := range map[string]KafkaConfig{
		"no broker":          {},
		"bad address":        {Brokers: []string{"localhost"}},
		"unknown mechanism":  {Brokers: []string{"h:1"}, Mechanism: "gssapi", User: "u"},
		"mechanism, no user": {Brokers: []string{"h:1"}, Mechanism: "plain"},
		"CA without TLS":     {Brokers: []string{"h:1"}, TLS: TLSFiles{CAFile: "x"}},
		"missing CA file":    {Brokers: []string{"h:1"}, TLS: TLSFiles{Enable: true, CAFile: "/nonexistent"}},
		"cert without key":   {Brokers: []string{"h:1"}, TLS: TLSFiles{Enable: true, CertFile: "c"}},
	} {
		if _, err := kc.resolve(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// The Cassandra settings the flags fill in end up in gocql's config (the
// embedded server has neither TLS nor authentication to test them on).
func TestCassandraConfig(t *testing.T) {
	_, ca := selfSigned(t)
	cl, err := CassandraConfig{Hosts: []string{"db1", "db2:9142"}, User: "u", Password: "p", Consistency: "quorum",
		TLS: TLSFiles{Enable: true, CAFile: ca}, Timeout: 3 * time.Second}.cluster()
	if err != nil {
		t.Fatal(err)
	}
	if cl.Consistency != gocql.Quorum || cl.Timeout != 3*time.Second || cl.WriteCoalesceWaitTime != 0 || cl.ProtoVersion != 4 {
		t.Errorf("consistency %v timeout %v coalesce %v proto %d", cl.Consistency, cl.Timeout, cl.WriteCoalesceWaitTime, cl.ProtoVersion)
	}
	if a, ok := cl.Authenticator.(gocql.PasswordAuthenticator); !ok || a.Username != "u" || a.Password != "p" {
		t.Errorf("authenticator %#v", cl.Authenticator)
	}
	if cl.SslOpts == nil || cl.SslOpts.Config.RootCAs == nil || !cl.SslOpts.EnableHostVerification {
		t.Errorf("TLS options %+v", cl.SslOpts)
	}
	if strings.Join(cl.Hosts, ",") != "db1,db2:9142" {
		t.Errorf("hosts %v", cl.Hosts)
	}
	for name, c := range map[string]CassandraConfig{
		"no host":           {},
		"bad consistency":   {Hosts: []string{"h"}, Consistency: "most"},
		"bad keyspace":      {Hosts: []string{"h"}, Keyspace: "a-b"},
		"keyspace injected": {Hosts: []string{"h"}, Keyspace: "x; DROP TABLE y"},
	} {
		if _, err := c.cluster(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	cl, _ = CassandraConfig{Hosts: []string{"h"}}.cluster()
	if cl.Consistency != gocql.LocalQuorum || cl.Authenticator != nil || cl.SslOpts != nil {
		t.Errorf("defaults: %v %v %v", cl.Consistency, cl.Authenticator, cl.SslOpts)
	}
}

// TestDialUserTimeout: broker connections carry TCP_USER_TIMEOUT, so one
// to a host that died silently fails instead of hanging for good.
func TestDialUserTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := dialUserTimeout(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	if err := raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT) }); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if want := int(tcpUserTimeout / time.Millisecond); got != want {
		t.Fatalf("TCP_USER_TIMEOUT %d ms, want %d", got, want)
	}
}
