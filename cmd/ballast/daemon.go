package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/ballast-io/ballast/csi"
	"github.com/ballast-io/ballast/driver"
	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/frontend"
	"github.com/ballast-io/ballast/pool/frontend/fuseloop"
	"github.com/ballast-io/ballast/pool/keeper"
	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/metrics"
	"github.com/ballast-io/ballast/pool/node"
	"github.com/ballast-io/ballast/pool/peer"
	"github.com/ballast-io/ballast/pool/spec"
	"github.com/ballast-io/ballast/pool/version"
)

type daemonFlags struct {
	dataDir    string
	poolDirs   []string
	mountDir   string
	nodeID     string
	endpoints  []string
	leaseTTL   time.Duration
	logLevel   string
	logJSON    bool
	debugAddr  string
	maxWrite   int
	labels     string
	metrics    string
	docker     string
	csi        string
	listen     string
	join       string
	etcdCli    string
	etcdPeer   string
	secret     string
	replicaTLS bool
	rebuildIn  time.Duration
	localityIn time.Duration
	rebuildMB  int64
	scrubIn    time.Duration
	scrubMB    int64
	keeper     bool
	grace      time.Duration
}

func newDaemonCmd() *cobra.Command {
	f := &daemonFlags{}
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run this node's Ballast daemon",
		Long: `Run this node's Ballast daemon. With no flags it keeps everything under
/var/lib/ballast: an embedded etcd member for the metadata and one pool dir.
Each --pool-dir is one disk of the pool; replicas of a volume go to
different disks.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			socket, _ := cmd.Flags().GetString("socket")
			if f.keeper && os.Getenv(keeper.EnvFD) == "" {
				return superviseDaemon(cmd.Context(), f)
			}
			return runDaemon(cmd.Context(), f, socket)
		},
	}
	host, _ := os.Hostname()
	fl := cmd.Flags()
	fl.StringVar(&f.dataDir, "data-dir", "/var/lib/ballast", "where the daemon keeps its state")
	fl.StringArrayVar(&f.poolDirs, "pool-dir", nil, "a disk of the pool (repeat for several); default DATA-DIR/pool")
	fl.StringVar(&f.mountDir, "mount-dir", "", "where volumes are mounted; default DATA-DIR/mounts")
	fl.StringVar(&f.nodeID, "node-id", host, "this node's name in the cluster")
	fl.StringSliceVar(&f.endpoints, "etcd-endpoints", nil, "external etcd endpoints; default: an embedded etcd member in DATA-DIR/etcd")
	fl.DurationVar(&f.leaseTTL, "lease-ttl", 5*time.Second, "how long a silent node stays alive in the cluster's eyes")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.BoolVar(&f.logJSON, "log-json", false, "log JSON lines instead of text")
	fl.IntVar(&f.maxWrite, "fuse-max-write", 0, "largest FUSE request in bytes; every in-flight request holds a buffer this big (default 256 KiB)")
	fl.StringVar(&f.labels, "labels", "", "this node's labels, e.g. zone=a,rack=r1 (placement spreads replicas across them)")
	fl.StringVar(&f.listen, "listen", "", "HOST:PORT where this node serves its replicas to the other nodes of the cluster; needs --cluster-secret-file")
	fl.StringVar(&f.join, "join", "", "HOST:PORT (the --listen address) of a node of the cluster to join through: one of the first three, which run the cluster's etcd (later nodes refuse joins); this node becomes an etcd member if there are fewer than three, else a client")
	fl.StringVar(&f.etcdCli, "etcd-client-addr", "", "with --listen: HOST:PORT this node's etcd member serves clients on (default: the --listen port + 1)")
	fl.StringVar(&f.etcdPeer, "etcd-peer-addr", "", "with --listen: HOST:PORT this node's etcd member talks to its peers on (default: the --listen port + 2)")
	fl.StringVar(&f.secret, "cluster-secret-file", "", "file holding the cluster's shared secret (at least 16 bytes); nodes without it are refused")
	fl.BoolVar(&f.replicaTLS, "replica-tls", true, "carry replica traffic between nodes in TLS 1.3 with certificates of the cluster CA (encrypted), refusing connections in clear; false: authenticated by the cluster secret, not encrypted (every node of a cluster must agree)")
	fl.DurationVar(&f.rebuildIn, "rebuild-delay", time.Minute, "how long a volume may lack an in-sync replica before a new one is rebuilt on another node")
	fl.DurationVar(&f.localityIn, "locality-delay", 30*time.Second, "how long a volume attached on a node holding no replica of it waits before one is built there (volumes with locality=none never do)")
	fl.Int64Var(&f.rebuildMB, "rebuild-mbps", 200, "rebuild copy limit in MiB/s, so the foreground keeps most of the disk (0: no limit)")
	fl.DurationVar(&f.scrubIn, "scrub-interval", 24*time.Hour, "how often every attached volume's replicas are read back in full and bad blocks repaired (0: never)")
	fl.Int64Var(&f.scrubMB, "scrub-mbps", 50, "scrub read limit in MiB/s")
	fl.StringVar(&f.docker, "docker-socket", driver.DefaultSocket, "serve the Docker volume plugin (docker volume create -d ballast) on this unix socket; empty: off")
	fl.StringVar(&f.csi, "csi-endpoint", "", "serve the CSI driver "+csi.DriverName+" (identity, controller and node services) on this unix socket, e.g. unix:///var/lib/kubelet/plugins/"+csi.DriverName+"/csi.sock; off by default")
	fl.StringVar(&f.metrics, "metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9310); off by default")
	fl.StringVar(&f.debugAddr, "debug-addr", "", "serve Go's /debug/pprof on this address (e.g. 127.0.0.1:6060); off by default")
	fl.BoolVar(&f.keeper, "keeper", true, "run as a small supervisor that restarts the serving daemon when it dies and keeps its volumes' FUSE connections and loop devices open meanwhile, so that I/O of running containers waits instead of failing")
	fl.DurationVar(&f.grace, "restart-grace", time.Minute, "with --keeper: how long the volumes' I/O waits for a restarted daemon before it fails")
	return cmd
}

// superviseDaemon runs "ballast daemon" as the keeper (pool/keeper): the
// same command line runs again as its child, the serving daemon, which is
// restarted whenever it dies, and at once on SIGHUP. The child is started
// from the path this process was started by, so a binary replaced on disk
// serves from the next restart on: replace it, send SIGHUP, and the
// running containers' I/O waits for the new daemon (an upgrade).
func superviseDaemon(ctx context.Context, f *daemonFlags) error {
	logger, err := newLogger(f.logLevel, f.logJSON)
	if err != nil {
		return err
	}
	if f.grace <= 0 {
		return fmt.Errorf("--restart-grace %s: must be positive", f.grace)
	}
	bin, err := exec.LookPath(os.Args[0])
	if err != nil {
		return fmt.Errorf("find this binary to start the serving daemon: %w", err)
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return err
	}
	logger = logger.With("component", "keeper")
	logger.Info("keeper starting the serving daemon", "binary", bin, "restart_grace", f.grace)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	s := &keeper.Supervisor{
		Restart: hup,
		Keeper:  keeper.New(f.grace, logger),
		Log:     logger,
		Command: func() *exec.Cmd {
			cmd := exec.Command(bin, os.Args[1:]...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
			return cmd
		},
		Backoff: 200 * time.Millisecond,
		Store:   keeper.StoreFromEnv(),
	}
	if n, err := keeper.RestoreFromEnv(s.Keeper, s.Store); n > 0 || err != nil {
		logger.Info("volumes handed back by systemd's file descriptor store, for the serving daemon to take over", "volumes", n, "err", err)
	}
	if s.Store != nil {
		logger.Info("systemd keeps the volumes' descriptors across a restart of the keeper (FDSTORE)")
	}
	return s.Run(ctx)
}

func newLogger(level string, asJSON bool) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	if asJSON {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
}

// openEtcd finds the cluster's etcd: the external endpoints given; else,
// for a node of a multi-node cluster (--listen), its embedded member or the
// cluster's members; else a lone embedded member on unix sockets.
func openEtcd(ctx context.Context, f *daemonFlags, secret []byte, logger *slog.Logger) (*meta.Cluster, error) {
	if f.join != "" && f.listen == "" {
		return nil, fmt.Errorf("--join needs --listen: the address this node serves the cluster on")
	}
	if len(f.endpoints) > 0 {
		if f.join != "" {
			return nil, fmt.Errorf("--join and --etcd-endpoints: a cluster on external etcd needs no join; give every node the same --etcd-endpoints")
		}
		return &meta.Cluster{Endpoints: f.endpoints}, nil
	}
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if f.listen == "" {
		e, err := meta.StartEmbedded(sctx, meta.EmbedConfig{Name: f.nodeID, DataDir: filepath.Join(f.dataDir, "etcd")}, logger)
		if err != nil {
			return nil, err
		}
		return &meta.Cluster{Member: e, Endpoints: []string{e.Endpoint}}, nil
	}
	cc := meta.ClusterConfig{Name: f.nodeID, DataDir: filepath.Join(f.dataDir, "etcd"), Secret: secret, ClientAddr: f.etcdCli, PeerAddr: f.etcdPeer}
	var err error
	if cc.ClientAddr == "" {
		if cc.ClientAddr, err = portAfter(f.listen, 1); err != nil {
			return nil, err
		}
	}
	if cc.PeerAddr == "" {
		if cc.PeerAddr, err = portAfter(f.listen, 2); err != nil {
			return nil, err
		}
	}
	if f.join != "" {
		cc.Join = func(ctx context.Context, req meta.JoinRequest) (meta.JoinAnswer, error) {
			return joinThrough(ctx, f.join, f.nodeID, secret, req)
		}
	}
	return meta.StartCluster(sctx, cc, logger)
}

// joinThrough asks the node at addr to let this node into its cluster,
// through its peer service.
func joinThrough(ctx context.Context, addr, nodeID string, secret []byte, req meta.JoinRequest) (meta.JoinAnswer, error) {
	d, err := peer.NewDialer(secret, nodeID)
	if err != nil {
		return meta.JoinAnswer{}, fmt.Errorf("join the cluster through %s: %w", addr, err)
	}
	c, err := d.Dial(addr)
	if err != nil {
		return meta.JoinAnswer{}, fmt.Errorf("join the cluster through %s: %w", addr, err)
	}
	defer c.Close()
	ans, err := c.Join(ctx, nodeID, req)
	if errors.Is(err, peer.ErrAuth) {
		return ans, fmt.Errorf("join the cluster through %s: the node there refused this node's cluster secret (or is not a Ballast node); check --cluster-secret-file: %w", addr, err)
	}
	if err != nil {
		return ans, fmt.Errorf("join the cluster through %s: %w", addr, err)
	}
	return ans, nil
}

// portAfter returns addr with its port raised by d.
func portAfter(addr string, d int) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--listen %q: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p+d > 65535 {
		return "", fmt.Errorf("--listen %q: port %q: give --etcd-client-addr and --etcd-peer-addr", addr, port)
	}
	return net.JoinHostPort(host, strconv.Itoa(p+d)), nil
}

// absolute makes every path the daemon was given absolute, so that a
// relative --data-dir, --socket, ... means the same to the daemon, to the
// embedded etcd's unix URLs and to whoever reads its logs as it did on the
// command line.
func (f *daemonFlags) absolute(socket *string) error {
	type pathFlag struct {
		flag string
		p    *string
	}
	paths := []pathFlag{{"--data-dir", &f.dataDir}, {"--mount-dir", &f.mountDir}, {"--socket", socket}, {"--docker-socket", &f.docker}, {"--cluster-secret-file", &f.secret}}
	for i := range f.poolDirs {
		paths = append(paths, pathFlag{"--pool-dir", &f.poolDirs[i]})
	}
	for _, x := range paths {
		if *x.p == "" {
			continue
		}
		abs, err := filepath.Abs(*x.p)
		if err != nil {
			return fmt.Errorf("%s %q: %w", x.flag, *x.p, err)
		}
		*x.p = abs
	}
	if f.csi != "" {
		p, err := csi.SocketPath(f.csi)
		if err != nil {
			return fmt.Errorf("--csi-endpoint: %w", err)
		}
		f.csi = p
	}
	return nil
}

func runDaemon(ctx context.Context, f *daemonFlags, socket string) error {
	logger, err := newLogger(f.logLevel, f.logJSON)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("the daemon needs root: it mounts FUSE, sets up loop devices and mounts filesystems")
	}
	if err := f.absolute(&socket); err != nil {
		return err
	}
	var secret []byte
	if f.secret != "" {
		b, err := os.ReadFile(f.secret)
		if err != nil {
			return fmt.Errorf("--cluster-secret-file: %w", err)
		}
		secret = []byte(strings.TrimSpace(string(b)))
	}
	if f.listen != "" && len(secret) < 16 {
		return fmt.Errorf("--listen needs --cluster-secret-file with a secret of at least 16 bytes, so that only nodes of this cluster can reach its replicas")
	}
	labels, err := spec.ParseLabels(f.labels)
	if err != nil {
		return fmt.Errorf("--labels: %w", err)
	}
	if f.nodeID == "" {
		return fmt.Errorf("--node-id is empty and the hostname is unknown; give --node-id")
	}
	klog.SetSlogLogger(logger.With("component", "mount"))
	prev := frontend.TuneGOMAXPROCS()
	logger.Info("starting ballast daemon", "version", version.String(), "node", f.nodeID, "data_dir", f.dataDir, "gomaxprocs_was", prev)
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if f.debugAddr != "" {
		go func() {
			// http.DefaultServeMux carries net/http/pprof's handlers.
			logger.Warn("debug server stopped", "err", http.ListenAndServe(f.debugAddr, nil))
		}()
	}

	etcd, err := openEtcd(ctx, f, secret, logger)
	if err != nil {
		return err
	}
	defer etcd.Close()
	cli, err := meta.Connect(etcd.Endpoints, etcd.TLS)
	if err != nil {
		return err
	}
	defer cli.Close()

	fopts := fuseloop.Options{
		MaxWrite: f.maxWrite,
		Logger:   log.New(slogWriter{logger}, "", 0),
	}
	kc, err := keeper.FromEnv()
	if err != nil {
		return err
	}
	if kc != nil {
		signal.Ignore(syscall.SIGHUP) // the keeper's signal (a restart), not ours
		defer kc.Close()
		fopts.Keeper = kc
		logger.Info("the keeper holds this daemon's volumes across its restarts")
	}
	exp, err := fuseloop.New(fuseloop.DaemonDir(f.dataDir), fopts)
	if err != nil {
		return fmt.Errorf("fuse exporter: %w", err)
	}
	att := frontend.NewAttacher(exp)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ioMetrics := metrics.NewIO(reg)
	poolDirs := f.poolDirs
	if len(poolDirs) == 0 {
		poolDirs = []string{filepath.Join(f.dataDir, "pool")}
	}
	var keys node.KeyKeeper
	if kc != nil {
		keys = kc // not a typed nil: no keeper is no KeyKeeper
	}
	n, err := node.New(ctx, node.Config{
		ID: f.nodeID, DataDir: f.dataDir, PoolDirs: poolDirs, MountDir: f.mountDir,
		LeaseTTL: f.leaseTTL, Version: version.String(), Labels: labels, IO: ioMetrics,
		Addr: f.listen, Secret: secret, ReplicaTLS: f.replicaTLS, AdmitMembers: etcd.Member != nil && f.listen != "", RebuildDelay: f.rebuildIn, RebuildBPS: f.rebuildMB << 20, LocalityDelay: f.localityIn,
		ScrubInterval: f.scrubIn, ScrubBPS: f.scrubMB << 20, Keys: keys,
	}, meta.NewStore(cli), att, logger)
	if err != nil {
		return err
	}
	reg.MustRegister(n)
	if f.listen != "" {
		ln, err := net.Listen("tcp", f.listen)
		if err != nil {
			return fmt.Errorf("--listen %s: %w", f.listen, err)
		}
		go func() {
			if err := n.ServeReplicas(ln); err != nil {
				logger.Error("replica server stopped", "err", err)
			}
		}()
		logger.Info("serving replicas to the cluster", "addr", f.listen)
	}
	if f.metrics != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		go func() {
			logger.Warn("metrics server stopped", "err", http.ListenAndServe(f.metrics, mux))
		}()
		logger.Info("serving metrics", "addr", f.metrics)
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	dockerDone := make(chan error, 1)
	if f.docker != "" {
		// The Docker volume plugin, next to the daemon's own socket; it
		// stops first at shutdown, so Docker calls no longer reach the node.
		go func() {
			err := driver.Serve(sctx, driver.New(n, f.nodeID, driver.Options{OwnerWait: f.leaseTTL + time.Second, MountsFile: filepath.Join(f.dataDir, "docker-mounts.json")}, logger), f.docker)
			if err != nil {
				logger.Error("docker volume plugin failed; stopping", "err", err)
				stop()
			}
			dockerDone <- err
		}()
	} else {
		dockerDone <- nil
	}
	csiDone := make(chan error, 1)
	if f.csi != "" {
		// The CSI driver, likewise: it stops before the node does.
		go func() {
			err := csi.Serve(sctx, csi.New(n, f.nodeID, logger), f.csi)
			if err != nil {
				logger.Error("csi driver failed; stopping", "err", err)
				stop()
			}
			csiDone <- err
		}()
	} else {
		csiDone <- nil
	}
	if kc != nil {
		// Started: from here on a death is a crash for the keeper to
		// restart from, not a start-up error (a bad flag, a taken port).
		if err := kc.Ready(); err != nil {
			logger.Warn("could not tell the keeper this daemon serves", "err", err)
		}
	}
	serveErr := api.Serve(sctx, socket, n, logger)
	stop()
	if err := <-dockerDone; err != nil && serveErr == nil {
		serveErr = err
	}
	if err := <-csiDone; err != nil && serveErr == nil {
		serveErr = err
	}
	// A keeper that outlives this daemon (a restart), or hands its
	// descriptors to systemd, keeps the volumes mounted for the next
	// daemon; otherwise they are let go of now, without waiting for busy
	// ones. The attachments stay recorded either way.
	keep := false
	if kc != nil {
		if keep, err = kc.KeepsVolumes(); err != nil {
			logger.Warn("could not ask the keeper whether the volumes outlive this daemon; letting them go", "err", err)
		}
	}
	if keep {
		logger.Info("shutting down: volumes stay mounted for the next daemon")
	} else {
		logger.Info("shutting down: unmounting volumes (they are attached again on restart)")
	}
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Shutdown(cctx, keep); err != nil {
		logger.Error("shut down node", "err", err)
	}
	if ctx.Err() != nil {
		return nil // stopped by a signal
	}
	return serveErr
}

// slogWriter feeds a standard logger's lines (go-fuse's) into slog.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Warn(strings.TrimSpace(string(p)), "component", "fuse")
	return len(p), nil
}
