package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

// failure is how a failover trial's attach node fails.
type failure string

// failoverTrial is one failure of the attach node and the takeover.
type failoverTrial struct {
	volume, from, to string
	fs               string // ext4, xfs
	how              failure
	detect           time.Duration    // kill -> AttachVolume on the survivor stops returning ErrInUse
	attach           time.Duration    // that -> AttachVolume returned
	write            time.Duration    // write + fsync of a small file on the new mount
	took             *api.AttachTimes // the attach's steps, as the survivor answered them
	err              error
}

func (t failoverTrial) total() time.Duration { return t.detect + t.attach + t.write }

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
	v, err := y.client.CreateVolume(ctx, spec.Volume{Name: t.volume, Size: failoverVolumeSize, Repl: 2, FS: fs, Avoid: "node=" + third}, api.CreateOptions{})
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
	t.took = att.Took
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
