package main

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ballast-io/ballast/pool/spec"
)

// snapshotBench times CreateSnapshot on a volume of size bytes holding
// snapshotWrite of data, in three situations: attached with snapshotChurn
// MiB written just before each snapshot (the filesystem freeze must flush
// and checkpoint that), attached and idle, and detached (no filesystem to
// freeze: the storage snapshot alone).
func snapshotBench(ctx context.Context, d *daemon, fr *fioRunner, size int64, logger *slog.Logger) []snapResult {
	name := fmt.Sprintf("snap-%dg", size>>30)
	modes := []snapResult{
		{volume: name, size: size, mode: fmt.Sprintf("attached, %d MiB written before each", snapshotChurn)},
		{volume: name, size: size, mode: "attached, idle", target: true},
		{volume: name, size: size, mode: "detached", target: true},
	}
	fail := func(err error) []snapResult {
		modes[0].err = err
		return modes
	}
	logger.Info("snapshots", "volume", name, "size", sizeString(size))
	mnt, detach, err := attached(ctx, d, spec.Volume{Name: name, Size: size, Repl: 1, FS: "ext4"})
	if err != nil {
		return fail(err)
	}
	defer detach()
	if _, err := runFio(ctx, []string{"--name=fill", "--filename=" + filepath.Join(mnt, "fill.dat"), "--size=" + snapshotWrite,
		"--rw=write", "--bs=1M", "--iodepth=16", "--ioengine=libaio", "--direct=1", "--end_fsync=1", "--output-format=json"}); err != nil {
		return fail(fmt.Errorf("write %s: %w", snapshotWrite, err))
	}
	n := 0
	snap := func(m *snapResult) error {
		start := time.Now()
		_, err := d.client.CreateSnapshot(ctx, name, fmt.Sprintf("s%d", n))
		took := time.Since(start)
		n++
		if err != nil {
			m.err = fmt.Errorf("create snapshot %s@s%d: %w", name, n-1, err)
			return m.err
		}
		m.times = append(m.times, took)
		logger.Info("snapshot", "volume", name, "mode", m.mode, "ms", ms(took))
		return nil
	}
	for i := range snapshotCount {
		if err := ddWrite(ctx, filepath.Join(mnt, fmt.Sprintf("churn-%d", i)), snapshotChurn); err != nil {
			return fail(err)
		}
		if snap(&modes[0]) != nil {
			return modes
		}
	}
	for range snapshotCount {
		if snap(&modes[1]) != nil {
			return modes
		}
	}
	if err := d.client.DetachVolume(ctx, name); err != nil {
		modes[2].err = err
		return modes
	}
	for range snapshotCount {
		if snap(&modes[2]) != nil {
			return modes
		}
	}
	return modes
}

// ddWrite writes mib MiB of random data to path with O_DIRECT and fsyncs it.
func ddWrite(ctx context.Context, path string, mib int) error {
	out, err := exec.CommandContext(ctx, "dd", "if=/dev/urandom", "of="+path, "bs=1M",
		fmt.Sprintf("count=%d", mib), "oflag=direct", "conv=fsync", "status=none").CombinedOutput()
	if err != nil {
		return fmt.Errorf("dd %s: %w: %s", path, err, strings.TrimSpace(string(out)))
	}
	return nil
}

type snapResult struct {
	volume string
	size   int64
	mode   string // attached with writes, attached idle, detached
	target bool   // judged against snapshotTarget
	times  []time.Duration
	err    error
}
