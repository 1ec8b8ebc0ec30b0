package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/meta"
)

// Cluster targets (ratios unless said otherwise).
var clusterFioTargets = map[int]map[string]float64{
	2: {"seq-write-1M": 0.7, "rand-write-4k-qd16": 0.5},
}

const (
	failoverTrials     = 5               // per filesystem and way of failing
	failoverLease      = 2 * time.Second // the daemons' --lease-ttl for the failover trials
	failoverTarget     = 3 * time.Second // median failure -> first successful write
	failoverVolumeSize = 1 << 30
	failoverData       = 32 // MiB fsynced before the kill
	rebuildVolumeSize  = 4 << 30
	rebuildData        = "1G"
	rebuildBytes       = 1 << 30
	rebuildTarget      = 0.7 // rebuild / plain copy
	foregroundTarget   = 0.5 // foreground during / before the rebuild
)

// etcdServer is the external etcd the cluster's daemons share.
type etcdServer struct {
	*process
	url string
}

// freePort returns a loopback TCP port nobody listens on right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startEtcd runs the etcd binary on loopback ports with its data dir and
// log under root, and waits until it answers.
func startEtcd(ctx context.Context, root string, logger *slog.Logger) (_ *etcdServer, err error) {
	cp, err := freePort()
	if err != nil {
		return nil, err
	}
	pp, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	client, peer := fmt.Sprintf("http://127.0.0.1:%d", cp), fmt.Sprintf("http://127.0.0.1:%d", pp)
	p, err := startProcess("etcd", filepath.Join(root, "etcd.log"), syscall.SIGKILL, []string{"etcd", "--name", "bench", "--data-dir", filepath.Join(root, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "bench=" + peer}, logger)
	if err != nil {
		return nil, err
	}
	e := &etcdServer{process: p, url: client}
	defer func() {
		if err != nil {
			e.stop()
		}
	}()
	cli, err := meta.Connect([]string{client}, nil)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	err = e.waitReady(ctx, 30*time.Second, func(ctx context.Context) error {
		_, err := cli.Get(ctx, "health")
		return err
	}, func() string { return ", see " + e.logPath })
	return e, err
}

// stop ends etcd by its PID (SIGTERM, SIGKILL after 10 s).
func (e *etcdServer) stop() { e.process.stop(10 * time.Second) }

// kill9 kills the daemon with SIGKILL (no clean shutdown, like a crash)
// and then removes the mounts it left, as stop does.
func (d *daemon) kill9() {
	if d.process != nil {
		d.process.kill9()
	}
	d.stop()
}

// cluster is three daemons a, b, c sharing an external etcd, or (etcd
// nil) running the cluster's embedded etcd as its three members.
type cluster struct {
	etcd  *etcdServer
	nodes []*daemon
	byID  map[string]*daemon
}

// startCluster starts the daemons a, b, c under dir/<name>, each with one
// pool dir, a replica server on loopback, the label node=<id> and the same
// secret, at default settings plus extra. With embedded, a starts the
// cluster's etcd and b and c join it as members (as `make demo`'s managers
// do); otherwise an external etcd is started first.
func startCluster(ctx context.Context, c config, name string, embedded bool, extra []string, logger *slog.Logger) (_ *cluster, err error) {
	root := filepath.Join(c.dir, name)
	cl := &cluster{byID: map[string]*daemon{}}
	defer func() {
		if err != nil {
			cl.stop()
		}
	}()
	if !embedded {
		if cl.etcd, err = startEtcd(ctx, filepath.Join(root, "etcd"), logger); err != nil {
			return cl, err
		}
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return cl, err
	}
	secret := filepath.Join(root, "secret")
	if err := os.WriteFile(secret, []byte("the ballast-bench cluster secret"), 0o600); err != nil {
		return cl, err
	}
	first := ""
	for _, id := range []string{"a", "b", "c"} {
		ports := make([]int, 3)
		for i := range ports {
			if ports[i], err = freePort(); err != nil {
				return cl, err
			}
		}
		listen := fmt.Sprintf("127.0.0.1:%d", ports[0])
		dr := filepath.Join(root, "node-"+id)
		args := []string{"daemon", "--data-dir", filepath.Join(dr, "data"), "--node-id", id, "--docker-socket=",
			"--pool-dir", filepath.Join(dr, "disk"), "--socket", filepath.Join(dr, "ballast.sock"),
			"--cluster-secret-file", secret, "--listen", listen, "--labels", "node=" + id}
		switch {
		case !embedded:
			args = append(args, "--etcd-endpoints", cl.etcd.url)
		case first == "":
			first = listen
			args = append(args, "--etcd-client-addr", fmt.Sprintf("127.0.0.1:%d", ports[1]), "--etcd-peer-addr", fmt.Sprintf("127.0.0.1:%d", ports[2]))
		default:
			args = append(args, "--etcd-client-addr", fmt.Sprintf("127.0.0.1:%d", ports[1]), "--etcd-peer-addr", fmt.Sprintf("127.0.0.1:%d", ports[2]), "--join", first)
		}
		args = append(append(args, c.daemonArgs...), extra...)
		d := &daemon{id: id, root: dr, logPath: filepath.Join(dr, "daemon.log"), log: logger.With("node", id), binary: c.ballast, args: args}
		cl.nodes = append(cl.nodes, d)
		cl.byID[id] = d
		if err := d.start(ctx); err != nil {
			return cl, fmt.Errorf("start node %s: %w", id, err)
		}
	}
	return cl, nil
}

// etcdLeader waits (up to a minute) until the three nodes are up and
// voting etcd members, and returns the one that leads.
func (cl *cluster) etcdLeader(ctx context.Context) (string, error) {
	var last string
	for deadline := time.Now().Add(time.Minute); ; {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		nodes, err := cl.nodes[0].client.ClusterStatus(cctx)
		cancel()
		leader, members := "", 0
		last = fmt.Sprint(err)
		if err == nil {
			last = ""
			for _, n := range nodes {
				last += fmt.Sprintf(" %s:%s/%s", n.ID, n.State, n.Etcd)
				if n.State == api.NodeUp && (n.Etcd == "leader" || n.Etcd == "member") {
					members++
				}
				if n.Etcd == "leader" {
					leader = n.ID
				}
			}
		}
		if leader != "" && members == len(cl.nodes) {
			return leader, nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return "", fmt.Errorf("no etcd leader with all three nodes up and members after a minute:%s", last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop stops the daemons, then etcd. Safe to call more than once.
func (cl *cluster) stop() {
	for _, d := range cl.nodes {
		d.stop()
	}
	if cl.etcd != nil {
		cl.etcd.stop()
	}
}

const (
	killed       failure = "killed"        // kill -9 of a node that is an etcd follower
	frozen       failure = "frozen"        // SIGSTOP of a follower: hung, its kernel still accepts connections
	leaderKilled failure = "leader killed" // kill -9 of the node leading the embedded etcd
)

// failures are the ways of failing the trials go through, in order.
var failures = []failure{killed, frozen, leaderKilled}

// clusterReport is the cluster section of the report.
type clusterReport struct {
	skipped bool
	err     error // set-up failure
	fio     []fioTarget
	trials  []failoverTrial
	rebuild *rebuildResult
	// failoverErr is why the failover cluster did not start.
	failoverErr error
}

// measureCluster runs the cluster part: fio on repl 2 and 3 volumes and
// (after restarting the daemons with a short rebuild delay) the rebuild on
// a cluster with an external etcd, then the failover trials on a cluster
// running its embedded etcd.
func measureCluster(ctx context.Context, c config, fr *fioRunner, sel []job, logger *slog.Logger) *clusterReport {
	cr := &clusterReport{}
	logger.Info("cluster: external etcd and 3 daemons")
	cl, err := startCluster(ctx, c, "cluster", false, nil, logger)
	if err != nil {
		cr.err = fmt.Errorf("start cluster: %w", err)
		return cr
	}
	defer cl.stop()
	a := cl.byID["a"]
	for _, repl := range []int{2, 3} {
		name := fmt.Sprintf("cluster-r%d", repl)
		logger.Info("cluster volume", "name", name, "repl", repl, "size", sizeString(c.size))
		res, err := volumeFio(ctx, a, fr, name, c.size, repl, sel)
		cr.fio = append(cr.fio, fioTarget{label: fmt.Sprintf("cluster repl %d", repl), repl: repl, res: res, err: err,
			want: clusterFioTargets[repl]})
		if ctx.Err() != nil {
			return cr
		}
	}
	// Same dirs and etcd, daemons restarted with a short rebuild delay.
	for _, d := range cl.nodes {
		d.stop()
		d.args = append(d.args, "--rebuild-delay", "1s")
		if err := d.start(ctx); err != nil {
			cr.rebuild = &rebuildResult{err: fmt.Errorf("restart %s with --rebuild-delay 1s: %w", d.root, err)}
			return cr
		}
	}
	cr.rebuild = rebuildBench(ctx, cl, fr, logger)
	cl.stop()
	if ctx.Err() == nil {
		cr.trials, cr.failoverErr = failoverBench(ctx, c, logger)
	}
	return cr
}
