package demo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// loopRef is a loop device a node's Ballast daemon attached: its name and
// the device of its backing file (the FUSE file's anonymous device,
// unique on the host while it lives).
type loopRef struct{ dev, back string }

// Down removes everything the demo called cfg.Name made on this host:
// inside each node the Swarm services and containers, then the Ballast
// daemon (so it unmounts its volumes and detaches its loop devices) and
// dockerd; then the node containers, the network, the workload images,
// mounts under the state dir and the state dir itself. Loop devices are
// host-global: any a node attached that is still there after its
// container is gone is detached. Down is safe to run again, and when
// nothing is up.
func Down(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	unlock, err := lock(cfg)
	if err != nil {
		return err
	}
	defer unlock()
	if err := down(ctx, cfg); err != nil {
		return err
	}
	// Taking the lock fails at once when held, so removing the file
	// under it loses no waiter.
	os.Remove(lockPath(cfg))
	return nil
}

// down is Down, with the demo's lock held.
func down(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	start := time.Now()
	var errs []error
	out, err := docker(ctx, "ps", "-a", "--filter", "label="+cfg.label(), "--format", "{{.Names}}\t{{.State}}")
	if err != nil {
		return fmt.Errorf("demo down: %w", err)
	}
	var all, running []string
	for _, l := range lines(out) {
		name, state, _ := strings.Cut(l, "\t")
		all = append(all, name)
		if state == "running" {
			running = append(running, name)
		}
	}
	if len(running) > 0 {
		// Services first, from any manager that answers, so Swarm does
		// not start their tasks again.
		for _, n := range running {
			if _, err := dockerExec(ctx, n, "sh", "-c", "docker service ls -q 2>/dev/null | xargs -r docker service rm"); err == nil {
				break
			}
		}
	}
	// In three steps across all nodes: every container inside every node
	// goes first (detaching its volumes, whose replicas are on other
	// nodes, so their daemons must still run), then every Ballast daemon,
	// then the node containers.
	var mu sync.Mutex
	var loops []loopRef
	eachNode := func(what string, f func(node string) error) {
		t := time.Now()
		defer func() { log.Debug("demo down: "+what+" done", "took", time.Since(t).Round(100*time.Millisecond)) }()
		var wg sync.WaitGroup
		for _, n := range running {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := f(n); err != nil {
					log.Warn("demo down: "+what, "node", n, "err", err)
				}
			}()
		}
		wg.Wait()
	}
	eachNode("removing the containers inside", func(n string) error { return drainNode(ctx, n) })
	eachNode("stopping the ballast daemon", func(n string) error {
		ls, err := stopDaemon(ctx, cfg, n)
		mu.Lock()
		loops = append(loops, ls...)
		mu.Unlock()
		return err
	})
	// Stopping a node container stops its dockerd: the entrypoint traps
	// SIGTERM and waits for it.
	eachNode("stopping", func(n string) error {
		_, err := docker(ctx, "stop", "-t", "10", n)
		return err
	})
	if len(all) > 0 {
		if _, err := docker(ctx, append([]string{"rm", "-f", "-v"}, all...)...); err != nil {
			errs = append(errs, err)
		}
	}
	nets, err := docker(ctx, "network", "ls", "-q", "--filter", "label="+cfg.label())
	if err != nil {
		errs = append(errs, err)
	} else if ids := lines(nets); len(ids) > 0 {
		if _, err := docker(ctx, append([]string{"network", "rm"}, ids...)...); err != nil {
			errs = append(errs, err)
		}
	}
	if err := detachLeftLoops(ctx, cfg, loops); err != nil {
		errs = append(errs, err)
	}
	if imgs, err := docker(ctx, "images", "-q", WorkloadImageRepo); err == nil && imgs != "" {
		// Only unused ones go; another demo may still use its image.
		run(ctx, nil, "docker", append([]string{"rmi"}, lines(imgs)...)...)
	}
	if err := removeStateDir(cfg); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("demo down: %w", err)
	}
	log.Info("demo: down", "name", cfg.Name, "containers", len(all), "took", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// drainNode removes the containers inside a node; the plugin unmounts
// and detaches their volumes.
func drainNode(ctx context.Context, node string) error {
	// Swarm would stop the tasks of removed services after their stop
	// grace period; kill them now, and whatever else runs there.
	rm := func() error {
		_, err := dockerExec(ctx, node, "sh", "-c", "docker ps -aq | xargs -r docker rm -f")
		return err
	}
	err := rm()
	_ = poll(ctx, 10*time.Second, 300*time.Millisecond, "containers gone from "+node, func() (bool, string, error) {
		out, err := dockerExec(ctx, node, "docker", "ps", "-aq")
		return err != nil || out == "", out, nil
	})
	if err != nil {
		err = rm()
	}
	return err
}

// stopDaemon records the loop devices the node's Ballast daemon attached
// and stops the daemon (it unmounts its volumes and detaches its loop
// devices).
func stopDaemon(ctx context.Context, cfg Config, node string) ([]loopRef, error) {
	var errs []error
	loops, fuseDevs, err := nodeLoops(ctx, node)
	if err != nil {
		errs = append(errs, err)
	}
	// The supervisor restarts the daemon unless the stop file exists.
	const stop = `touch /run/ballast-demo/stop
pid=$(cat /run/ballast-demo/ballast.pid 2>/dev/null) || exit 0
kill "$pid" 2>/dev/null || exit 0
i=0
while [ -e /proc/$pid ]; do
	i=$((i + 1))
	[ $i -gt 200 ] && { echo "ballast daemon (pid $pid) still there after 20 s"; exit 1; }
	sleep 0.1
done`
	if out, err := dockerExec(ctx, node, "sh", "-c", stop); err != nil {
		// A daemon that exits while the kernel still flushes a volume's
		// filesystem through its own FUSE mount waits for itself. Abort
		// its FUSE connections (it is going anyway): the I/O fails, it
		// exits.
		cfg.Logger.Warn("demo down: the ballast daemon did not stop; aborting its FUSE connections", "node", node, "out", out, "err", err)
		if err := abortFUSE(cfg, fuseDevs); err != nil {
			errs = append(errs, err)
		}
	}
	return loops, errors.Join(errs...)
}

// abortFUSE aborts the FUSE connections of the given devices ("0:N": the
// connection is N) through fusectl, mounted for the purpose when the host
// has not mounted it.
func abortFUSE(cfg Config, devs []string) error {
	if len(devs) == 0 {
		return nil
	}
	dir := "/sys/fs/fuse/connections"
	if ents, _ := os.ReadDir(dir); len(ents) == 0 {
		dir = filepath.Join(cfg.StateDir, "fusectl")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("abort FUSE connections: %w", err)
		}
		if err := unix.Mount("fusectl", dir, "fusectl", 0, ""); err != nil {
			return fmt.Errorf("abort FUSE connections: mount fusectl: %w", err)
		}
		defer func() {
			unix.Unmount(dir, unix.MNT_DETACH)
			os.Remove(dir)
		}()
	}
	var errs []error
	for _, d := range devs {
		major, minor, ok := strings.Cut(d, ":")
		if !ok || major != "0" {
			continue
		}
		err := os.WriteFile(filepath.Join(dir, minor, "abort"), []byte("1"), 0)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("abort FUSE connection %s: %w", minor, err))
		}
	}
	return errors.Join(errs...)
}

// nodeLoops lists the loop devices the node's Ballast daemon attached:
// those whose backing file is on one of the node's FUSE mounts (matched
// by device number, which is unique host-wide, unlike paths: every node
// serves its volumes under the same /var/lib/ballast/fuse).
func nodeLoops(ctx context.Context, node string) (loops []loopRef, fuse []string, err error) {
	out, err := dockerExec(ctx, node, "sh", "-c", "cat /proc/1/mountinfo; echo ---; losetup -l -n -O NAME,BACK-MAJ:MIN")
	if err != nil {
		return nil, nil, fmt.Errorf("list loop devices in %s: %w", node, err)
	}
	mi, ls, _ := strings.Cut(out, "---")
	fuseDevs := map[string]bool{}
	for _, l := range lines(mi) {
		pre, post, ok := strings.Cut(l, " - ")
		f, pf := strings.Fields(pre), strings.Fields(post)
		if ok && len(f) >= 3 && len(pf) >= 1 && strings.HasPrefix(pf[0], "fuse") && !fuseDevs[f[2]] {
			fuseDevs[f[2]] = true
			fuse = append(fuse, f[2])
		}
	}
	for _, l := range lines(ls) {
		f := strings.Fields(l)
		if len(f) == 2 && fuseDevs[f[1]] {
			loops = append(loops, loopRef{dev: f[0], back: f[1]})
		}
	}
	return loops, fuse, nil
}

// detachLeftLoops detaches those of loops still attached to the same
// backing device once the nodes are gone (autoclear detaches them when
// their last user goes; give it a moment).
func detachLeftLoops(ctx context.Context, cfg Config, loops []loopRef) error {
	if len(loops) == 0 {
		return nil
	}
	left := func() ([]loopRef, error) {
		out, err := run(ctx, nil, "losetup", "-l", "-n", "-O", "NAME,BACK-MAJ:MIN")
		if err != nil {
			return nil, err
		}
		now := map[loopRef]bool{}
		for _, l := range lines(out) {
			if f := strings.Fields(l); len(f) == 2 {
				now[loopRef{f[0], f[1]}] = true
			}
		}
		var still []loopRef
		for _, r := range loops {
			if now[r] {
				still = append(still, r)
			}
		}
		return still, nil
	}
	var still []loopRef
	err := poll(ctx, 5*time.Second, 200*time.Millisecond, "loop devices released", func() (bool, string, error) {
		var err error
		still, err = left()
		return len(still) == 0, fmt.Sprint(still), err
	})
	if err == nil {
		return nil
	}
	var errs []error
	for _, r := range still {
		cfg.Logger.Warn("demo down: a node's loop device outlived it; detaching it", "dev", r.dev, "backing_dev", r.back)
		if _, err := run(ctx, nil, "losetup", "-d", r.dev); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeStateDir unmounts whatever is mounted under the state dir (the
// ext4 image, if one was needed) and removes it, if it is the demo's.
func removeStateDir(cfg Config) error {
	if _, err := os.Stat(cfg.StateDir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, markerFile)); err != nil {
		ents, _ := os.ReadDir(cfg.StateDir)
		if len(ents) > 0 {
			return fmt.Errorf("not removing %s: it has no %s marker, so it is not the demo's", cfg.StateDir, markerFile)
		}
	}
	return removeTree(cfg.StateDir)
}
