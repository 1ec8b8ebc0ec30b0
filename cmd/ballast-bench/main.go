// Command ballast-bench measures Ballast on this machine and prints a
// Markdown report (stdout, and --out FILE), with progress on stderr:
//
//   - the data path (docs/architecture.md, "The data path"): the same fio
//     jobs (1 MiB sequential write and read, 4 KiB random write and read at
//     queue depth 16, 4 KiB writes with fsync=1) on ext4 over a plain loop
//     device over a sparse host file (the baseline: the physical limit
//     here) and on ext4 on a repl 1 and a repl 2 Ballast volume of the same
//     size, reported as ratios to the baseline next to their targets;
//   - the time CreateSnapshot takes through the API on a 1 GiB and a 64 GiB
//     volume holding data;
//   - backups (backups.go): a full backup of a 4 GiB volume holding 2 GiB,
//     an incremental one after 64 MiB more (what it uploads), and a
//     restore, against cp of the same data (--skip-backups skips it);
//   - the daemon's resident memory with 10 attached volumes;
//   - a 3-node cluster (external etcd, daemons a, b, c; cluster.go): the
//     same fio jobs on repl 2 and repl 3 volumes against the same baseline
//     and rebuild throughput after the loss of a replica's node; then,
//     on three daemons running the embedded etcd, failover time after the
//     attach node is killed, frozen, or killed while it leads etcd
//     (--skip-cluster skips it all);
//   - the sensor pipeline workload end to end (workload.go): readings/s
//     and produce-to-stored latency of the ingester against the reference
//     design's naive consumer on the embedded Kafka broker and CQL server
//     (--skip-workload skips it; --only workload runs it alone, without
//     root or fio).
//
// It starts its own single-node daemon (the --ballast binary) with two pool
// dirs under --dir, and stops, unmounts and detaches everything it started,
// also on failure or Ctrl-C; --dir is removed at the end unless --keep.
//
//	make bench    # bin/ballast-bench --ballast bin/ballast
//	bin/ballast-bench --ballast bin/ballast --runtime 3s --filesize 256M --out bench.md
//
// Needs root, /dev/fuse, loop devices, fio, losetup, mkfs.ext4 and mount,
// and etcd for the cluster part.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

type config struct {
	dir           string
	ballast       string
	size          int64
	fileSize      string
	runtime       time.Duration
	only          string
	skipSnapshots bool
	skipRSS       bool
	skipBackups   bool
	skipCluster   bool
	skipWorkload  bool
	skipGluster   bool
	skipPG        bool
	pgTime        time.Duration
	workload      workloadConfig
	out           string
	keep          bool
	daemonArgs    []string
}

// argList is a repeatable string flag.
type argList []string

func (a *argList) String() string     { return strings.Join(*a, " ") }
func (a *argList) Set(v string) error { *a = append(*a, v); return nil }

func main() {
	var c config
	var size string
	flag.StringVar(&c.dir, "dir", "/var/tmp/ballast-bench", "scratch directory on the host disk (emptied first, removed at the end unless --keep)")
	flag.StringVar(&c.ballast, "ballast", "", "the ballast binary to benchmark (default: ballast beside this program, then $PATH)")
	flag.StringVar(&size, "size", "4G", "size of the baseline file and of the benchmarked volumes")
	flag.StringVar(&c.fileSize, "filesize", "1G", "size of the file fio works on (fio --size)")
	flag.DurationVar(&c.runtime, "runtime", 10*time.Second, "fio runtime per job")
	flag.StringVar(&c.only, "only", "", "run only the fio jobs whose name contains this; \"workload\": only the workload section (no root needed)")
	flag.BoolVar(&c.skipSnapshots, "skip-snapshots", false, "skip the snapshot timing")
	flag.BoolVar(&c.skipRSS, "skip-rss", false, "skip the daemon memory measurement")
	flag.BoolVar(&c.skipBackups, "skip-backups", false, "skip the backup and restore timing")
	flag.BoolVar(&c.skipCluster, "skip-cluster", false, "skip the 3-node cluster part (needs the etcd binary)")
	flag.BoolVar(&c.skipWorkload, "skip-workload", false, "skip the sensor pipeline workload section")
	flag.BoolVar(&c.skipGluster, "skip-gluster", false, "skip the GlusterFS replica 2 peer (fio and pgbench; needs glusterfs-server)")
	flag.BoolVar(&c.skipPG, "skip-pgbench", false, "skip the PostgreSQL pgbench section (needs postgresql)")
	flag.DurationVar(&c.pgTime, "pgbench-time", 30*time.Second, "pgbench run time per target")
	workloadFlags(&c.workload)
	flag.StringVar(&c.out, "out", "", "also write the report to this file")
	flag.Var((*argList)(&c.daemonArgs), "daemon-arg", "extra argument for the ballast daemon (repeatable), e.g. --daemon-arg=--fuse-max-write=262144")
	flag.BoolVar(&c.keep, "keep", false, "keep --dir (daemon logs, pool files) at the end")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if flag.NArg() > 0 {
		fail(logger, fmt.Errorf("unexpected arguments %q", flag.Args()))
	}
	var err error
	if c.size, err = spec.ParseSize(size); err != nil {
		fail(logger, fmt.Errorf("--size: %w", err))
	}
	if err := run(c, logger); err != nil {
		fail(logger, err)
	}
}

func fail(logger *slog.Logger, err error) {
	logger.Error("ballast-bench failed", "err", err)
	os.Exit(1)
}

// preflight checks what the benchmark needs before it touches anything.
func preflight(c *config) error {
	if os.Geteuid() != 0 {
		return errors.New("ballast-bench needs root: it sets up loop devices, mounts filesystems and runs the daemon (which mounts FUSE)")
	}
	for _, tool := range []string{"fio", "losetup", "mkfs.ext4", "mount", "dd"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is missing: install it (deploy/install-deps.sh installs fio and the other tools)", tool)
		}
	}
	if _, err := exec.LookPath("etcd"); err != nil && !c.skipCluster {
		return errors.New("etcd is missing: the cluster part runs an external etcd (apt-get install etcd-server), or pass --skip-cluster")
	}
	if !c.skipGluster {
		if err := checkGluster(); err != nil {
			return err
		}
	}
	if !c.skipPG {
		if _, err := postgresBin(); err != nil {
			return err
		}
		if c.pgTime < time.Second {
			return fmt.Errorf("--pgbench-time %v: give at least 1s", c.pgTime)
		}
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("no /dev/fuse: the daemon serves volumes over FUSE: %w", err)
	}
	if err := c.resolvePaths(); err != nil {
		return err
	}
	if c.runtime < time.Second {
		return fmt.Errorf("--runtime %v: give at least 1s", c.runtime)
	}
	if len(selectJobs(c.only)) == 0 {
		return fmt.Errorf("--only %q matches no fio job", c.only)
	}
	return nil
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

func run(c config, logger *slog.Logger) (err error) {
	if c.only == "workload" {
		return runWorkloadOnly(c, logger)
	}
	if err := preflight(&c); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	finished := make(chan struct{})
	defer close(finished) // before stop: no warning on a normal exit
	go func() {
		select {
		case <-ctx.Done():
			logger.Warn("interrupted: stopping and cleaning up (this can take up to a minute)")
		case <-finished:
		}
	}()

	// Clear what an earlier run (killed, or --keep) left, then start afresh.
	if err := cleanDir(c.dir, logger); err != nil {
		return fmt.Errorf("clean %s: %w", c.dir, err)
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	defer func() {
		if cerr := cleanDir(c.dir, logger); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up %s (left in place): %w", c.dir, cerr))
			return
		}
		if c.keep {
			logger.Info("kept scratch dir", "dir", c.dir)
			return
		}
		if rerr := os.RemoveAll(c.dir); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()

	rp := &report{context: machineContext(c), jobs: selectJobs(c.only)}
	rp.fioNote = fmt.Sprintf("Baseline: ext4 (`mkfs.ext4 -F -m0`, as the daemon formats volumes) on a plain loop device "+
		"(`losetup --direct-io=on --sector-size=4096`) over a sparse %s file in %s: the physical limit here. "+
		"Ballast: ext4 volumes of the same size on a single-node daemon with two pool dirs in %s "+
		"(both on the same host disk, so repl 2 writes every block twice to it). "+
		"Every job runs fio for %s (time_based, direct=1) on a %s file laid out first with random data; "+
		"MiB/s for the 1 MiB jobs, IOPS for the 4 KiB jobs; ratio = Ballast / baseline.",
		sizeString(c.size), c.dir, c.dir, c.runtime, c.fileSize)
	rp.skipSnap, rp.skipRSS, rp.skipBackups = c.skipSnapshots, c.skipRSS, c.skipBackups
	fr := &fioRunner{fileSize: c.fileSize, runtime: c.runtime, log: logger}
	sel := rp.jobs

	err = measure(ctx, c, fr, sel, rp, logger)
	if ctx.Err() != nil {
		err = errors.New("interrupted: the report is partial")
	}
	if err != nil {
		rp.errs = append(rp.errs, err.Error())
	}
	text := rp.render()
	fmt.Print(text)
	if c.out != "" {
		if werr := os.WriteFile(c.out, []byte(text), 0o644); werr != nil {
			err = errors.Join(err, werr)
		} else {
			logger.Info("wrote report", "file", c.out)
		}
	}
	return err
}

// measure runs every phase, filling rp. It stops at the first error that
// leaves nothing sensible to measure (or on Ctrl-C); errors of a single fio
// job or volume are recorded in rp and the run goes on.
func measure(ctx context.Context, c config, fr *fioRunner, sel []job, rp *report, logger *slog.Logger) error {
	logger.Info("baseline: ext4 on a plain loop device", "size", sizeString(c.size))
	res, err := runBaseline(ctx, c, fr, sel)
	rp.targets = append(rp.targets, fioTarget{label: "baseline (loop)", res: res, err: err})
	if ctx.Err() != nil {
		return ctx.Err()
	}

	logger.Info("ceiling: ext4 on FUSE + loop over memory", "size", sizeString(c.size))
	res, err = runCeiling(ctx, c, fr, sel)
	rp.targets = append(rp.targets, fioTarget{label: ceilingLabel, res: res, err: err})
	if ctx.Err() != nil {
		return ctx.Err()
	}

	if slices.ContainsFunc(sel, func(j job) bool { return j.name == randReadJob }) {
		logger.Info("the cost of a read: 4 KiB O_DIRECT random reads of a host file from 16 goroutines")
		rc := measureReadCost(ctx, c.dir, c.runtime)
		rp.reads = &rc
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}

	if slices.ContainsFunc(sel, func(j job) bool { return j.class == fsync }) {
		logger.Info("the cost of a second copy: 4 KiB writes with an fdatasync each, on one host file, then on two")
		cc := measureCopyCost(ctx, c.dir, 2*c.runtime)
		rp.copies = &cc
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}

	d, err := startDaemon(ctx, c.ballast, filepath.Join(c.dir, "daemon"), c.daemonArgs, logger)
	if err != nil {
		return fmt.Errorf("start daemon: %w", err)
	}
	defer d.stop()
	for _, repl := range []int{1, 2} {
		name := fmt.Sprintf("bench-r%d", repl)
		logger.Info("ballast volume", "name", name, "repl", repl, "size", sizeString(c.size))
		res, err := volumeFio(ctx, d, fr, name, c.size, repl, sel)
		t := fioTarget{label: fmt.Sprintf("repl %d", repl), repl: repl, res: res, err: err}
		if repl == 2 {
			t.want = repl2Targets
		}
		rp.targets = append(rp.targets, t)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := measureEncrypted(ctx, c, d, fr, sel, rp, logger); err != nil {
		return err
	}
	var g *gluster
	if !c.skipGluster {
		logger.Info("peer: GlusterFS replica 2")
		g, err = startGluster(ctx, c.dir, logger)
		t := fioTarget{label: glusterLabel, peer: true, err: err}
		if err == nil {
			defer g.stop()
			t.res, t.err = fr.runAll(ctx, "gluster", g.mnt, sel)
		}
		rp.targets = append(rp.targets, t)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	rp.skipPG = c.skipPG
	if !c.skipPG {
		rp.pg = pgBench(ctx, c, d, g, logger)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if g != nil {
		g.stop()
	}

	if !c.skipSnapshots {
		for _, size := range []int64{1 << 30, 64 << 30} {
			rp.snaps = append(rp.snaps, snapshotBench(ctx, d, fr, size, logger)...)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	if !c.skipBackups {
		rp.backups = backupBench(ctx, d, c.dir, logger)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if !c.skipRSS {
		m, err := readMemory(d.pid())
		rp.mems = append(rp.mems, memResult{phase: "the daemon above, after the fio and snapshot runs (volumes detached)", mem: m, err: err})
	}
	d.stop()

	if !c.skipRSS {
		rp.mems = append(rp.mems, rssBench(ctx, c, logger)...)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if c.skipCluster {
		rp.cluster = &clusterReport{skipped: true}
	} else {
		rp.cluster = measureCluster(ctx, c, fr, sel, logger)
	}
	rp.workload = measureWorkload(ctx, c, logger)
	return ctx.Err()
}

// runBaseline runs the jobs on ext4 on a plain loop device over a sparse
// host file.
func runBaseline(ctx context.Context, c config, fr *fioRunner, sel []job) (map[string]result, error) {
	l, err := newLoopFS(ctx, c.dir, "baseline", c.size, fr.log)
	if err != nil {
		return nil, err
	}
	defer l.close()
	return fr.runAll(ctx, "baseline", l.mnt, sel)
}

// attached creates a volume, attaches it and returns its mount path and a
// function that detaches it again.
func attached(ctx context.Context, d *daemon, v spec.Volume) (string, func(), error) {
	if _, err := d.client.CreateVolume(ctx, v, api.CreateOptions{}); err != nil {
		return "", nil, fmt.Errorf("create volume %s: %w", v.Name, err)
	}
	att, err := d.client.AttachVolume(ctx, v.Name, api.AttachOptions{})
	if err != nil {
		return "", nil, fmt.Errorf("attach volume %s: %w", v.Name, err)
	}
	detach := func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.client.DetachVolume(cctx, v.Name); err != nil {
			d.log.Error("detach volume", "name", v.Name, "err", err)
		}
	}
	return att.MountPath, detach, nil
}

// bindMount mounts dir at target too (made first).
func bindMount(dir, target string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("mount", "--bind", dir, target).CombinedOutput(); err != nil {
		return fmt.Errorf("mount --bind %s %s: %w: %s", dir, target, err, out)
	}
	return nil
}

// volumeFio runs the jobs on a new Ballast volume, then detaches and
// deletes it.
func volumeFio(ctx context.Context, d *daemon, fr *fioRunner, name string, size int64, repl int, sel []job) (map[string]result, error) {
	return specFio(ctx, d, fr, spec.Volume{Name: name, Size: size, Repl: repl, FS: "ext4"}, fmt.Sprintf("repl%d", repl), sel)
}

// specFio runs the jobs on a new volume of spec v, then detaches and
// deletes it.
func specFio(ctx context.Context, d *daemon, fr *fioRunner, v spec.Volume, tag string, sel []job) (map[string]result, error) {
	name := v.Name
	mnt, detach, err := attached(ctx, d, v)
	if err != nil {
		return nil, err
	}
	res, err := fr.runAll(ctx, tag, mnt, sel)
	detach()
	if ctx.Err() == nil {
		if derr := d.client.DeleteVolume(ctx, name); derr != nil {
			d.log.Warn("delete volume", "name", name, "err", derr)
		}
	}
	return res, err
}

// snapshotWrite is how much data a volume holds before its snapshots, and
// snapshotChurn how much more is written before each of them.
const (
	snapshotWrite = "256M"
	snapshotChurn = 16 // MiB
	snapshotCount = 5
)

const (
	rssVolumes = 10
	rssWrite   = 8 // MiB per volume
)

// resolvePaths finds the ballast binary (--ballast, else beside this
// program, else on $PATH) and makes both it and --dir absolute, refusing a
// scratch dir that is a filesystem root.
func (c *config) resolvePaths() error {
	if c.ballast == "" {
		c.ballast = "ballast"
		if self, err := os.Executable(); err == nil {
			if p := filepath.Join(filepath.Dir(self), "ballast"); isExecutable(p) {
				c.ballast = p
			}
		}
	}
	p, err := exec.LookPath(c.ballast)
	if err != nil {
		return fmt.Errorf("the ballast binary %q: %w (build it with make build and pass --ballast bin/ballast)", c.ballast, err)
	}
	if c.ballast, err = filepath.Abs(p); err != nil {
		return err
	}
	if c.dir, err = filepath.Abs(c.dir); err != nil {
		return err
	}
	if c.dir == "/" || c.dir == filepath.Dir(c.dir) {
		return fmt.Errorf("--dir %s: give a scratch directory of its own", c.dir)
	}
	return nil
}
