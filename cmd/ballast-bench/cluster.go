package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/spec"
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
	url  string
	cmd  *exec.Cmd
	done chan struct{}
	log  *slog.Logger
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
	logf, err := os.Create(filepath.Join(root, "etcd.log"))
	if err != nil {
		return nil, err
	}
	e := &etcdServer{url: client, log: logger, done: make(chan struct{})}
	e.cmd = exec.Command("etcd", "--name", "bench", "--data-dir", filepath.Join(root, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "bench="+peer)
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := e.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	go func() { e.cmd.Wait(); logf.Close(); close(e.done) }()
	defer func() {
		if err != nil {
			e.stop()
		}
	}()
	logger.Info("started etcd", "pid", e.cmd.Process.Pid, "url", client)
	cli, err := meta.Connect([]string{client}, nil)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := cli.Get(cctx, "health")
		cancel()
		if err == nil {
			return e, nil
		}
		select {
		case <-e.done:
			return nil, fmt.Errorf("etcd exited during start-up (%v), see %s", e.cmd.ProcessState, filepath.Join(root, "etcd.log"))
		default:
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("etcd not ready after 30s: %w", err)
		}
	}
}

// stop ends etcd by its PID (SIGTERM, SIGKILL after 10 s).
func (e *etcdServer) stop() {
	select {
	case <-e.done:
		return
	default:
	}
	e.log.Info("stopping etcd", "pid", e.cmd.Process.Pid)
	terminate(e.cmd.Process, e.done, 10*time.Second)
}

// kill9 kills the daemon with SIGKILL (no clean shutdown, like a crash)
// and then removes the mounts it left, as stop does.
func (d *daemon) kill9() {
	if d.cmd != nil && d.cmd.Process != nil {
		d.log.Info("killing daemon with SIGKILL", "pid", d.pid(), "root", d.root)
		_ = d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.done
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

// failure is how a failover trial's attach node fails.
type failure string

const (
	killed       failure = "killed"        // kill -9 of a node that is an etcd follower
	frozen       failure = "frozen"        // SIGSTOP of a follower: hung, its kernel still accepts connections
	leaderKilled failure = "leader killed" // kill -9 of the node leading the embedded etcd
)

// failures are the ways of failing the trials go through, in order.
var failures = []failure{killed, frozen, leaderKilled}

// failoverTrial is one failure of the attach node and the takeover.
type failoverTrial struct {
	volume, from, to string
	fs               string // ext4, xfs
	how              failure
	detect           time.Duration // kill -> AttachVolume on the survivor stops returning ErrInUse
	attach           time.Duration // that -> AttachVolume returned
	write            time.Duration // write + fsync of a small file on the new mount
	times            attachTimes   // from the survivor's "volume attached" log line
	logErr           error
	err              error
}

func (t failoverTrial) total() time.Duration { return t.detect + t.attach + t.write }

// rebuildResult is the rebuild after the loss of a replica's node.
type rebuildResult struct {
	owner, peer, spare string
	allocated          int64         // bytes the volume holds (what the rebuild copies)
	scanned            int64         // Rebuild.Total: bytes gone through, copied or skipped
	wait               time.Duration // kill -> rebuild seen running
	took               time.Duration // rebuild seen running -> 2/2 in sync
	elapsed            string        // the daemon's own last Elapsed
	copyTook           time.Duration // dd of rebuildBytes between the same nodes' pool dirs
	fgBefore, fgDuring result        // fio seq-write-1M
	fgShort            bool          // the foreground fio ended before the rebuild did
	err                error
}

func (r *rebuildResult) rate() float64 {
	return float64(r.allocated) / (1 << 20) / r.took.Seconds()
}

func (r *rebuildResult) copyRate() float64 {
	return float64(rebuildBytes) / (1 << 20) / r.copyTook.Seconds()
}

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

// failoverBench runs the failover trials, failoverTrials per filesystem
// and way of failing, on a cluster running its embedded etcd with a short
// lease.
func failoverBench(ctx context.Context, c config, logger *slog.Logger) ([]failoverTrial, error) {
	logger.Info("failover: 3 daemons running the embedded etcd", "lease_ttl", failoverLease)
	cl, err := startCluster(ctx, c, "failover", true, []string{"--lease-ttl", failoverLease.String()}, logger)
	if err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	defer cl.stop()
	var trials []failoverTrial
	i := 0
	for _, fs := range []string{"ext4", "xfs"} {
		for _, how := range failures {
			for range failoverTrials {
				t := failover(ctx, cl, i, fs, how)
				i++
				if t.err != nil {
					logger.Error("failover trial", "trial", i, "err", t.err)
				} else {
					logger.Info("failover trial", "trial", i, "fs", fs, "failure", how, "from", t.from, "to", t.to, "detect", t.detect, "attach", t.attach, "write", t.write)
				}
				trials = append(trials, t)
				if ctx.Err() != nil {
					return trials, nil
				}
			}
		}
	}
	return trials, nil
}

// replicaNodes returns the nodes holding v's replicas.
func replicaNodes(v *api.Volume) []string {
	var ns []string
	for _, r := range v.Replicas {
		ns = append(ns, r.Node)
	}
	return ns
}

// failover runs trial i: a repl 2 volume of filesystem fs attached on X
// with fsynced data; X fails (how), the other replica node Y attaches it
// and writes. X is restarted (or resumed: it then finds its volume taken
// over and lets go of it) afterwards, the volume deleted. X and Y are the
// two etcd followers (their order rotating) or, for leaderKilled, X is the
// etcd leader and Y one of the others (rotating); the third node is kept
// out of the volume's placement with its label.
func failover(ctx context.Context, cl *cluster, i int, fs string, how failure) (t failoverTrial) {
	t.volume = fmt.Sprintf("failover-%d", i+1)
	t.fs, t.how = fs, how
	leader, err := cl.etcdLeader(ctx)
	if err != nil {
		t.err = err
		return t
	}
	var others []string
	for _, d := range cl.nodes {
		if d.id != leader {
			others = append(others, d.id)
		}
	}
	if i%2 == 1 {
		others[0], others[1] = others[1], others[0]
	}
	third := leader
	t.from, t.to = others[0], others[1]
	if how == leaderKilled {
		t.from, t.to, third = leader, others[0], others[1]
	}
	x, y := cl.byID[t.from], cl.byID[t.to]
	v, err := y.client.CreateVolume(ctx, spec.Volume{Name: t.volume, Size: failoverVolumeSize, Repl: 2, FS: fs, Avoid: "node=" + third})
	if err != nil {
		t.err = fmt.Errorf("create %s: %w", t.volume, err)
		return t
	}
	if ns := replicaNodes(v); !slices.Contains(ns, t.from) || !slices.Contains(ns, t.to) {
		t.err = fmt.Errorf("%s: replicas on %v, want %s and %s", t.volume, ns, t.from, t.to)
		return t
	}
	cleanup := func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if how == frozen {
			_ = syscall.Kill(-x.pid(), syscall.SIGCONT)
		}
		if x.client == nil {
			if err := x.start(cctx); err != nil {
				t.err = errors.Join(t.err, fmt.Errorf("restart %s: %w", t.from, err))
				return
			}
		}
		if err := y.client.DetachVolume(cctx, t.volume); err != nil && t.err == nil {
			y.log.Warn("detach", "volume", t.volume, "err", err)
		}
		if err := y.client.DeleteVolume(cctx, t.volume); err != nil {
			y.log.Warn("delete", "volume", t.volume, "err", err)
		}
	}
	defer cleanup()
	att, err := x.client.AttachVolume(ctx, t.volume, api.AttachOptions{})
	if err != nil {
		t.err = fmt.Errorf("attach %s on %s: %w", t.volume, t.from, err)
		return t
	}
	if err := ddWrite(ctx, filepath.Join(att.MountPath, "data"), failoverData); err != nil {
		t.err = err
		return t
	}
	if how == frozen {
		// The keeper and the serving daemon (its process group) stop.
		x.log.Info("freezing daemon with SIGSTOP", "pid", x.pid())
		if err := syscall.Kill(-x.pid(), syscall.SIGSTOP); err != nil {
			t.err = fmt.Errorf("SIGSTOP %s: %w", t.from, err)
			return t
		}
	} else {
		x.kill9()
	}
	killed := time.Now()
	var detected time.Time
	for {
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		att, err = y.client.AttachVolume(cctx, t.volume, api.AttachOptions{})
		cancel()
		if !errors.Is(err, api.ErrInUse) && detected.IsZero() {
			detected = start
		}
		if err == nil {
			t.detect, t.attach = detected.Sub(killed), time.Since(detected)
			break
		}
		if ctx.Err() != nil || time.Since(killed) > 2*time.Minute {
			t.err = fmt.Errorf("attach %s on %s after %s was killed: %w", t.volume, t.to, t.from, err)
			return t
		}
		if !errors.Is(err, api.ErrInUse) {
			y.log.Warn("attach after kill", "volume", t.volume, "err", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	start := time.Now()
	if err := writeSync(filepath.Join(att.MountPath, "after-failover"), 4096); err != nil {
		t.err = err
		return t
	}
	t.write = time.Since(start)
	t.times, t.logErr = lastAttached(y.logPath, t.volume)
	return t
}

// writeSync writes n bytes to a new file and fsyncs it.
func writeSync(path string, n int) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(make([]byte, n))
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// attachTimes are the durations the daemon logs with "volume attached":
// claim (the etcd transaction), open (replicas opened and fenced) and
// mount (export, filesystem check/journal replay, mount).
type attachTimes struct {
	claim, open, mount time.Duration
}

// lastAttached finds the last "volume attached" line for volume in a
// daemon log and returns its durations.
func lastAttached(logPath, volume string) (attachTimes, error) {
	f, err := os.Open(logPath)
	if err != nil {
		return attachTimes{}, err
	}
	defer f.Close()
	var last string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.Contains(l, `msg="volume attached"`) {
			if kv := parseLogfmt(l); slices.Contains(kv["volume"], volume) {
				last = l
			}
		}
	}
	if err := sc.Err(); err != nil {
		return attachTimes{}, err
	}
	if last == "" {
		return attachTimes{}, fmt.Errorf("no \"volume attached\" line for %s in %s", volume, logPath)
	}
	return parseAttachedLine(last)
}

// parseAttachedLine reads claim=, open= and mount= durations from a
// "volume attached" log line (slog's text format; mount= also appears
// with the mount path, so the value that parses as a duration counts).
func parseAttachedLine(line string) (attachTimes, error) {
	kv := parseLogfmt(line)
	if !slices.Contains(kv["msg"], "volume attached") {
		return attachTimes{}, fmt.Errorf("not a \"volume attached\" line: %q", line)
	}
	var at attachTimes
	for key, dst := range map[string]*time.Duration{"claim": &at.claim, "open": &at.open, "mount": &at.mount} {
		found := false
		for _, v := range kv[key] {
			if d, err := time.ParseDuration(v); err == nil {
				*dst, found = d, true
				break
			}
		}
		if !found {
			return attachTimes{}, fmt.Errorf("no %s= duration in %q", key, line)
		}
	}
	return at, nil
}

// parseLogfmt splits a slog text line into its key=value pairs (values
// possibly quoted as Go strings); a key may occur more than once.
func parseLogfmt(line string) map[string][]string {
	kv := map[string][]string{}
	s := line
	for {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			return kv
		}
		eq := strings.IndexAny(s, "= ")
		if eq < 0 || s[eq] == ' ' { // a bare word: skip it
			if eq < 0 {
				return kv
			}
			s = s[eq:]
			continue
		}
		key, rest := s[:eq], s[eq+1:]
		var val string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return kv // unterminated quote: stop
			}
			val, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else if sp := strings.IndexByte(rest, ' '); sp >= 0 {
			val, rest = rest[:sp], rest[sp:]
		} else {
			val, rest = rest, ""
		}
		kv[key] = append(kv[key], val)
		s = rest
	}
}

// rebuildBench: a repl 2 volume with rebuildData written, attached on the
// first replica's node (owner); a foreground fio run; kill -9 of the second
// replica's node (peer); the rebuild onto the third (spare) is timed from
// InspectVolume while the same fio job runs again; then a plain dd copy of
// as many bytes from the owner's pool dir to the spare's.
func rebuildBench(ctx context.Context, cl *cluster, fr *fioRunner, logger *slog.Logger) *rebuildResult {
	r := &rebuildResult{}
	a := cl.byID["a"]
	const name = "rebuild"
	v, err := a.client.CreateVolume(ctx, spec.Volume{Name: name, Size: rebuildVolumeSize, Repl: 2, FS: "ext4"})
	if err != nil {
		r.err = fmt.Errorf("create %s: %w", name, err)
		return r
	}
	ns := replicaNodes(v)
	if len(ns) != 2 {
		r.err = fmt.Errorf("%s: replicas on %v", name, ns)
		return r
	}
	r.owner, r.peer = ns[0], ns[1]
	if slices.Contains(ns, "a") && slices.Contains(ns, "b") {
		r.owner, r.peer = "a", "b"
	}
	for _, id := range []string{"a", "b", "c"} {
		if !slices.Contains(ns, id) {
			r.spare = id
		}
	}
	owner, peer, spare := cl.byID[r.owner], cl.byID[r.peer], cl.byID[r.spare]
	logger.Info("rebuild", "owner", r.owner, "peer", r.peer, "spare", r.spare)
	att, err := owner.client.AttachVolume(ctx, name, api.AttachOptions{})
	if err != nil {
		r.err = fmt.Errorf("attach %s: %w", name, err)
		return r
	}
	if _, err := runFio(ctx, []string{"--name=fill", "--filename=" + filepath.Join(att.MountPath, "fill.dat"), "--size=" + rebuildData,
		"--rw=write", "--bs=1M", "--iodepth=16", "--ioengine=libaio", "--direct=1", "--end_fsync=1", "--output-format=json"}); err != nil {
		r.err = fmt.Errorf("write %s: %w", rebuildData, err)
		return r
	}
	fg := jobs[0] // seq-write-1M
	fgRun := func() result {
		out, err := runFio(ctx, fr.baseArgs(fg.name, att.MountPath, true), fg.args...)
		var res result
		if err == nil {
			res, err = parseFio(out, fg.read)
		}
		res.Err = err
		return res
	}
	if err := fr.prefill(ctx, att.MountPath); err != nil {
		r.err = err
		return r
	}
	r.fgBefore = fgRun()
	_ = exec.CommandContext(ctx, "sync").Run()
	if vi, err := owner.client.InspectVolume(ctx, name); err == nil {
		r.allocated = vi.Allocated
	}

	peer.kill9()
	killed := time.Now()
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := peer.start(cctx); err != nil {
			r.err = errors.Join(r.err, fmt.Errorf("restart %s: %w", r.peer, err))
		}
	}()
	var started time.Time
	fgDone := make(chan result, 1)
	for {
		vi, err := owner.client.InspectVolume(ctx, name)
		if err != nil {
			r.err = fmt.Errorf("inspect %s: %w", name, err)
			return r
		}
		if vi.Rebuild != nil && vi.Rebuild.State == api.RebuildRunning {
			r.scanned, r.elapsed = vi.Rebuild.Total, vi.Rebuild.Elapsed
			if started.IsZero() {
				started = time.Now()
				r.wait = started.Sub(killed)
				logger.Info("rebuild started", "after", r.wait.Round(time.Millisecond), "total", vi.Rebuild.Total)
				go func() { fgDone <- fgRun() }()
			}
		} else if !started.IsZero() && insync(vi) == "2/2" && slices.Contains(replicaNodes(vi), r.spare) {
			r.took = time.Since(started)
			break
		}
		if ctx.Err() != nil || time.Since(killed) > 10*time.Minute {
			r.err = fmt.Errorf("no rebuild onto %s within 10 minutes (in sync %s)", r.spare, insync(vi))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !started.IsZero() {
		select {
		case r.fgDuring = <-fgDone:
			r.fgShort = true
		default:
			r.fgDuring = <-fgDone
		}
	}
	if r.err != nil {
		return r
	}
	logger.Info("rebuild done", "took", r.took.Round(time.Millisecond), "allocated", r.allocated)

	// A plain copy of as many bytes between the same two nodes' pool dirs.
	src := filepath.Join(owner.root, "disk", "bench-copy.src")
	dst := filepath.Join(spare.root, "disk", "bench-copy.dst")
	defer os.Remove(src)
	defer os.Remove(dst)
	if err := ddWrite(ctx, src, rebuildBytes>>20); err != nil {
		r.err = err
		return r
	}
	_ = exec.CommandContext(ctx, "sync").Run()
	start := time.Now()
	if out, err := exec.CommandContext(ctx, "dd", "if="+src, "of="+dst, "bs=1M", "iflag=direct", "oflag=direct",
		"conv=fsync", "status=none").CombinedOutput(); err != nil {
		r.err = fmt.Errorf("dd copy: %w: %s", err, strings.TrimSpace(string(out)))
		return r
	}
	r.copyTook = time.Since(start)
	return r
}

// insync is "N/M": in-sync replicas of all.
func insync(v *api.Volume) string {
	n := 0
	for _, r := range v.Replicas {
		if r.InSync {
			n++
		}
	}
	return fmt.Sprintf("%d/%d", n, len(v.Replicas))
}
