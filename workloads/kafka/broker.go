// Package kafka is the embedded Kafka-protocol broker Ballast's workload
// runs on a machine with no Kafka installed: a single kfake broker
// (github.com/twmb/franz-go/pkg/kfake) whose log, topics and committed group
// offsets live in a data directory (in the demo, a Ballast volume), so a
// restarted broker carries on where it stopped.
package kafka

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Topic is a topic the broker creates on its first start.
type Topic struct {
	Name       string
	Partitions int32
}

// Config says where the broker keeps its data and where it listens.
type Config struct {
	// Dir holds the log, topics and group offsets; it is created if
	// missing and reloaded if it holds an earlier broker's state.
	Dir string
	// Listen is the host:port to listen on ("127.0.0.1:9092"). Port 0
	// picks a free port (see Broker.Addr).
	Listen string
	// Advertise is the host:port clients are told to connect to (in
	// metadata answers); default the address listened on, which must
	// then be one clients can reach (not 0.0.0.0).
	Advertise string
	// Topics are created on the first start (an existing Dir keeps its
	// own topics). Other topics are created on first use with
	// DefaultPartitions partitions.
	Topics            []Topic
	DefaultPartitions int
	// SyncWrites fsyncs every produced batch before acknowledging it, so
	// an acknowledged record survives a machine crash, not only a crash
	// of the broker process (the page cache keeps that).
	SyncWrites bool
	// MaxRequestBytes is the largest request a client may send (Apache
	// Kafka's socket.request.max.bytes); a client claiming more, or a
	// negative size, is disconnected before anything is allocated for
	// it. Default (0) DefaultMaxRequestBytes, 100 MiB. The broker still
	// allocates a request's full claimed size when it starts reading it,
	// so this also bounds the memory each connection can make it hold.
	MaxRequestBytes int
	Logger          *slog.Logger
}

// Broker is a running embedded broker.
type Broker struct {
	cluster *kfake.Cluster
	addr    string
	guard   *guard
}

// Start opens (or creates) the broker's data dir and starts serving.
func Start(cfg Config) (*Broker, error) {
	if cfg.Dir == "" {
		return nil, errors.New("kafka broker: no data dir given")
	}
	if cfg.Listen == "" {
		return nil, errors.New("kafka broker: no listen address given")
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return nil, fmt.Errorf("kafka broker: listen address %q: %w", cfg.Listen, err)
	}
	maxSize := cfg.MaxRequestBytes
	switch {
	case maxSize == 0:
		maxSize = DefaultMaxRequestBytes
	case maxSize < minRequestSize:
		return nil, fmt.Errorf("kafka broker: max request size %d bytes: give at least %d", maxSize, minRequestSize)
	case maxSize > math.MaxInt32:
		maxSize = math.MaxInt32 // no request can claim more
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("kafka broker: data dir: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	parts := cfg.DefaultPartitions
	if parts <= 0 {
		parts = 6
	}
	var advertise net.Addr
	if cfg.Advertise != "" {
		host, port, err := net.SplitHostPort(cfg.Advertise)
		ip := net.ParseIP(host)
		if err != nil || host == "" || port == "0" || (ip != nil && ip.IsUnspecified()) {
			return nil, fmt.Errorf("kafka broker: advertised address %q: give host:port clients can reach", cfg.Advertise)
		}
		advertise = namedAddr(cfg.Advertise)
	}
	// kfake listens on 127.0.0.1:port; ListenFn puts it on the address
	// asked for instead. One broker: one listener. kfake advertises the
	// listener's address: the wrapped listener reports the advertised one.
	// Every connection it accepts goes through the guard (guard.go), but
	// for the first: an in-process pipe the guard asks kfake its API
	// versions through.
	g := newGuard(int32(maxSize), logger)
	probe, kfakeEnd := net.Pipe()
	defer probe.Close()
	listen := func(network, _ string) (net.Listener, error) {
		ln, err := net.Listen(network, cfg.Listen)
		if err != nil {
			return nil, err
		}
		addr := ln.Addr()
		if advertise != nil {
			addr = advertise
		}
		return newGuardListener(ln, addr, g, kfakeEnd), nil
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(listen),
		kfake.DataDir(cfg.Dir),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(parts),
		kfake.WithLogger(slogLogger{logger}),
	}
	for _, t := range cfg.Topics {
		opts = append(opts, kfake.SeedTopics(t.Partitions, t.Name))
	}
	if cfg.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		kfakeEnd.Close()
		g.setAPIs(apiTable{})
		return nil, fmt.Errorf("kafka broker on %s (data %s): %w", cfg.Listen, cfg.Dir, err)
	}
	addrs := c.ListenAddrs()
	if len(addrs) != 1 {
		g.setAPIs(apiTable{})
		c.Close()
		return nil, fmt.Errorf("kafka broker: %d listeners, want 1", len(addrs))
	}
	apis, err := probeAPIs(probe)
	if err != nil {
		g.setAPIs(apiTable{}) // refuse whatever connected meanwhile
		c.Close()
		return nil, fmt.Errorf("kafka broker: %w", err)
	}
	g.setAPIs(apis)
	return &Broker{cluster: c, addr: addrs[0], guard: g}, nil
}

// namedAddr is a TCP address as written (a host name stays a name).
type namedAddr string

func (a namedAddr) Network() string { return "tcp" }
func (a namedAddr) String() string  { return string(a) }

// Addr is the host:port the broker advertises (by default the one it
// listens on).
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker and writes its state to the data dir.
func (b *Broker) Close() { b.cluster.Close() }

// slogLogger passes kfake's log lines to slog (its info level logs every
// request, so it is logged at debug).
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var lv slog.Level
	switch level {
	case kfake.LogLevelError:
		lv = slog.LevelError
	case kfake.LogLevelWarn:
		lv = slog.LevelWarn
	case kfake.LogLevelNone:
		return
	default:
		lv = slog.LevelDebug
	}
	s.l.Log(nil, lv, "kfake: "+fmt.Sprintf(format, args...)) //nolint:staticcheck // no context here
}
