package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/ballast-io/ballast/pool/spec"
)

// rssBench starts a fresh daemon (so VmHWM is this phase's peak), attaches
// rssVolumes 1 GiB volumes, writes rssWrite MiB to each and reads the
// daemon's memory.
func rssBench(ctx context.Context, c config, logger *slog.Logger) []memResult {
	logger.Info("daemon memory: fresh daemon", "volumes", rssVolumes)
	d, err := startDaemon(ctx, c.ballast, filepath.Join(c.dir, "daemon-rss"), c.daemonArgs, logger)
	if err != nil {
		return []memResult{{phase: "fresh daemon", err: fmt.Errorf("start daemon: %w", err)}}
	}
	defer d.stop()
	idle, err := readMemory(d.pid())
	out := []memResult{{phase: "fresh daemon, idle", mem: idle, err: err}}
	phase := fmt.Sprintf("fresh daemon, %d x 1 GiB ext4 volumes attached, %d MiB written to each", rssVolumes, rssWrite)
	for i := range rssVolumes {
		name := fmt.Sprintf("rss-%d", i)
		mnt, detach, err := attached(ctx, d, spec.Volume{Name: name, Size: 1 << 30, Repl: 1, FS: "ext4"})
		if err == nil {
			defer detach()
			err = ddWrite(ctx, filepath.Join(mnt, "data"), rssWrite)
		}
		if err != nil {
			return append(out, memResult{phase: phase, volumes: rssVolumes, err: err})
		}
	}
	m, err := readMemory(d.pid())
	logger.Info("daemon memory", "vmrss_kib", m.RSS, "vmhwm_kib", m.HWM)
	return append(out, memResult{phase: phase, volumes: rssVolumes, mem: m, err: err})
}

// memory is what /proc/PID/status says about a process's memory, in KiB.
type memory struct {
	RSS, HWM int64
}

// readMemory reads VmRSS and VmHWM of process pid.
func readMemory(pid int) (memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	defer f.Close()
	return parseStatus(bufio.NewScanner(f))
}

type memResult struct {
	phase   string
	volumes int
	mem     memory
	err     error
}
