package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

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

// rebuildBench: a repl 2 volume with rebuildData written, attached on the
// first replica's node (owner); a foreground fio run; kill -9 of the second
// replica's node (peer); the rebuild onto the third (spare) is timed from
// InspectVolume while the same fio job runs again; then a plain dd copy of
// as many bytes from the owner's pool dir to the spare's.
func rebuildBench(ctx context.Context, cl *cluster, fr *fioRunner, logger *slog.Logger) *rebuildResult {
	r := &rebuildResult{}
	a := cl.byID["a"]
	const name = "rebuild"
	v, err := a.client.CreateVolume(ctx, spec.Volume{Name: name, Size: rebuildVolumeSize, Repl: 2, FS: "ext4"}, api.CreateOptions{})
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
