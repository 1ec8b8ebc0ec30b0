package sensors

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/gocql/gocql"
	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"golang.org/x/sys/unix"
)

// TLSFiles names the files of a TLS client setup; all optional.
type TLSFiles struct {
	Enable   bool
	CAFile   string // PEM CA bundle to verify the server with (default: system roots)
	CertFile string // client certificate (mutual TLS), with KeyFile
	KeyFile  string
	Insecure bool // do not verify the server's certificate
}

// Config returns the tls.Config, or nil when TLS is off.
func (f TLSFiles) Config() (*tls.Config, error) {
	if !f.Enable {
		if f.CAFile != "" || f.CertFile != "" || f.KeyFile != "" || f.Insecure {
			return nil, errors.New("TLS files or options given but TLS is not enabled")
		}
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: f.Insecure} //nolint:gosec // only when asked
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate in it", f.CAFile)
		}
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, errors.New("a client certificate needs both the cert and the key file")
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// KafkaConfig says how to reach the Kafka cluster.
type KafkaConfig struct {
	Brokers []string // host:port of one or more brokers
	TLS     TLSFiles
	// SASL: Mechanism is "" (none), "plain", "scram-sha-256" or
	// "scram-sha-512".
	Mechanism string
	User      string
	Password  string
}

// kafkaClient is a KafkaConfig resolved into what kafka-go takes.
type kafkaClient struct {
	brokers []string
	tls     *tls.Config
	sasl    sasl.Mechanism
}

func (k KafkaConfig) resolve() (*kafkaClient, error) {
	if len(k.Brokers) == 0 {
		return nil, errors.New("kafka: no broker address given")
	}
	for _, b := range k.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return nil, fmt.Errorf("kafka broker address %q: %w", b, err)
		}
	}
	tc, err := k.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("kafka TLS: %w", err)
	}
	mech, err := saslMechanism(k.Mechanism, k.User, k.Password)
	if err != nil {
		return nil, err
	}
	return &kafkaClient{brokers: k.Brokers, tls: tc, sasl: mech}, nil
}

func saslMechanism(name, user, pass string) (sasl.Mechanism, error) {
	name = strings.ToLower(name)
	if name == "" && user == "" {
		return nil, nil
	}
	if user == "" {
		return nil, fmt.Errorf("kafka SASL %s: no user given", name)
	}
	switch name {
	case "", "plain":
		return plain.Mechanism{Username: user, Password: pass}, nil
	case "scram-sha-256":
		return scram.Mechanism(scram.SHA256, user, pass)
	case "scram-sha-512":
		return scram.Mechanism(scram.SHA512, user, pass)
	}
	return nil, fmt.Errorf("kafka SASL mechanism %q: want plain, scram-sha-256 or scram-sha-512", name)
}

func (k *kafkaClient) dialer() *kafka.Dialer {
	return &kafka.Dialer{DialFunc: dialUserTimeout, Timeout: 10 * time.Second, DualStack: true, TLS: k.tls, SASLMechanism: k.sasl, ClientID: "ballast-workload"}
}

func (k *kafkaClient) transport() *kafka.Transport {
	return &kafka.Transport{Dial: dialUserTimeout, DialTimeout: 10 * time.Second, TLS: k.tls, SASL: k.sasl, ClientID: "ballast-workload", MetadataTTL: 10 * time.Second}
}

// tcpUserTimeout is how long data sent on a broker connection may go
// unacknowledged before the connection fails.
const tcpUserTimeout = 5 * time.Second

// connectTimeout bounds a TCP connect to a broker; a live one on the
// network answers in milliseconds (TLS and SASL come after, within the
// dialer's own timeout).
const connectTimeout = 2 * time.Second

// dialUserTimeout dials with TCP_USER_TIMEOUT set to tcpUserTimeout. A
// broker whose node died silently never answers nor resets: a client
// that gives each request less time than the transport's own timeout
// (the lag publisher gives 1 s) abandoned the request but kept the
// connection, and every later request went to the dead broker (measured
// in the demo: no lag was published after the broker moved, and the
// autoscaler never scaled). The kernel now fails such a connection, and
// the transport dials the broker's new address.
//
// The TCP connect itself gets connectTimeout: a broker that moved leaves
// its old address in DNS for a few seconds, and a connect to a dead node
// is never refused.
func dialUserTimeout(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: connectTimeout, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(tcpUserTimeout/time.Millisecond))
		})
		return errors.Join(err, serr)
	}}
	return d.DialContext(ctx, network, addr)
}

func (k *kafkaClient) client() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(k.brokers...), Transport: k.transport(), Timeout: 10 * time.Second}
}

// CassandraConfig says how to reach Cassandra (or the embedded CQL server)
// and where the tables are.
type CassandraConfig struct {
	Hosts             []string // host or host:port (default port 9042)
	User, Password    string   // PasswordAuthenticator, when User is set
	TLS               TLSFiles
	Consistency       string // any consistency level name, e.g. LOCAL_QUORUM
	Keyspace          string // default "sensors"
	ReplicationFactor int    // for CREATE KEYSPACE (SimpleStrategy), default 1
	Timeout           time.Duration
}

// DefaultKeyspace is the keyspace of the reference demo.
const DefaultKeyspace = "sensors"

func (c CassandraConfig) keyspace() string {
	if c.Keyspace == "" {
		return DefaultKeyspace
	}
	return c.Keyspace
}

// cluster returns the gocql settings. The session is opened without a
// keyspace (the schema may not exist yet); statements name it.
func (c CassandraConfig) cluster() (*gocql.ClusterConfig, error) {
	if len(c.Hosts) == 0 {
		return nil, errors.New("cassandra: no host given")
	}
	if !validIdent(c.keyspace()) {
		return nil, fmt.Errorf("cassandra keyspace %q: letters, digits and _ only, starting with a letter", c.Keyspace)
	}
	cl := gocql.NewCluster(c.Hosts...)
	cl.ProtoVersion = 4
	// The default 200 µs coalescing wait caps a synchronous writer near
	// 800 writes/s.
	cl.WriteCoalesceWaitTime = 0
	// Down hosts are retried every second, not every minute: the ingester
	// waits for a restarted store rather than for gocql.
	cl.ReconnectInterval = time.Second
	cl.ConnectTimeout = 5 * time.Second
	cl.Timeout = 10 * time.Second
	if c.Timeout > 0 {
		cl.Timeout = c.Timeout
	}
	cl.Consistency = gocql.LocalQuorum
	if c.Consistency != "" {
		cons, err := parseConsistency(c.Consistency)
		if err != nil {
			return nil, err
		}
		cl.Consistency = cons
	}
	cl.RetryPolicy = &gocql.SimpleRetryPolicy{NumRetries: 2}
	if c.User != "" {
		cl.Authenticator = gocql.PasswordAuthenticator{Username: c.User, Password: c.Password}
	}
	tc, err := c.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("cassandra TLS: %w", err)
	}
	if tc != nil {
		cl.SslOpts = &gocql.SslOptions{Config: tc, EnableHostVerification: !c.TLS.Insecure}
	}
	return cl, nil
}

func parseConsistency(s string) (gocql.Consistency, error) {
	c, err := gocql.ParseConsistencyWrapper(s)
	if err != nil {
		return 0, fmt.Errorf("consistency %q: want ANY, ONE, TWO, THREE, QUORUM, ALL, LOCAL_QUORUM, EACH_QUORUM or LOCAL_ONE", s)
	}
	return c, nil
}

// validIdent reports whether s is a plain, unquoted CQL identifier.
func validIdent(s string) bool {
	if s == "" || len(s) > 48 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case (r >= '0' && r <= '9' || r == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}
