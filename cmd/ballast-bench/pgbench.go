package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ballast-io/ballast/pool/hostfs"
	"github.com/ballast-io/ballast/pool/spec"
)

// pgbench settings: the same on every target.
const (
	pgScale   = 20 // pgbench -i -s: about 300 MiB of tables
	pgClients = 4
)

// pgResult is pgbench's outcome on one target.
type pgResult struct {
	label string
	tps   float64
	err   error
}

// postgresBin finds the newest PostgreSQL server's bin directory (Debian
// keeps it out of $PATH).
func postgresBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return va - vb
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if isExecutable(filepath.Join(dirs[i], "postgres")) && isExecutable(filepath.Join(dirs[i], "pgbench")) {
			return dirs[i], nil
		}
	}
	return "", errors.New("no PostgreSQL server with pgbench under /usr/lib/postgresql: install postgresql (deploy/install-deps.sh --bench), or pass --skip-pgbench")
}

// pgRunner runs PostgreSQL and pgbench as the postgres user on a data
// directory under a given mount.
type pgRunner struct {
	bin      string
	uid, gid int
	duration time.Duration
	log      *slog.Logger
}

func newPGRunner(duration time.Duration, logger *slog.Logger) (*pgRunner, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("no postgres user (the postgresql package makes it): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &pgRunner{bin: bin, uid: uid, gid: gid, duration: duration, log: logger}, nil
}

// command runs a PostgreSQL tool as the postgres user.
func (r *pgRunner) command(ctx context.Context, tool string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(r.bin, tool), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.gid)}}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}

var tpsLine = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)

// run initialises a database cluster in dir (created, owned by postgres),
// starts a server on a Unix socket there, loads pgbench's tables and runs
// pgbench; the server is stopped (by its PID) at the end.
func (r *pgRunner) run(ctx context.Context, label, dir string) pgResult {
	res := pgResult{label: label}
	fail := func(err error) pgResult {
		res.err = err
		r.log.Error("pgbench", "target", label, "err", err)
		return res
	}
	data, sock := filepath.Join(dir, "pgdata"), filepath.Join(dir, "pgsock")
	for _, d := range []string{dir, sock} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fail(err)
		}
		if err := os.Chown(d, r.uid, r.gid); err != nil {
			return fail(err)
		}
	}
	if out, err := r.command(ctx, "initdb", "-D", data, "--auth=trust", "--no-sync").CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb on %s: %w: %s", dir, err, lastLines(string(out), 5)))
	}
	logPath := filepath.Join(dir, "postgres.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return fail(err)
	}
	defer logf.Close()
	srv := r.command(context.Background(), "postgres", "-D", data, "-k", sock, "-c", "listen_addresses=", "-p", "5432")
	srv.Stdout, srv.Stderr = logf, logf
	srv.SysProcAttr.Pdeathsig = syscall.SIGTERM
	if err := srv.Start(); err != nil {
		return fail(fmt.Errorf("start postgres: %w", err))
	}
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	defer func() {
		_ = srv.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = srv.Process.Kill()
			<-done
		}
	}()
	for deadline := time.Now().Add(30 * time.Second); r.command(ctx, "pg_isready", "-h", sock, "-p", "5432", "-q").Run() != nil; time.Sleep(200 * time.Millisecond) {
		select {
		case <-done:
			b, _ := os.ReadFile(logPath)
			return fail(fmt.Errorf("postgres exited at start: %s", lastLines(string(b), 5)))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fail(fmt.Errorf("postgres not ready 30 s after its start (see %s)", logPath))
		}
	}
	conn := []string{"-h", sock, "-p", "5432", "postgres"}
	if out, err := r.command(ctx, "pgbench", append([]string{"-i", "-q", "-s", strconv.Itoa(pgScale)}, conn...)...).CombinedOutput(); err != nil {
		return fail(fmt.Errorf("pgbench -i: %w: %s", err, lastLines(string(out), 5)))
	}
	r.log.Info("pgbench", "target", label, "clients", pgClients, "duration", r.duration)
	out, err := r.command(ctx, "pgbench", append([]string{"-c", strconv.Itoa(pgClients), "-j", "2", "-T", strconv.Itoa(int(r.duration.Seconds()))}, conn...)...).CombinedOutput()
	if err != nil {
		return fail(fmt.Errorf("pgbench: %w: %s", err, lastLines(string(out), 5)))
	}
	m := tpsLine.FindSubmatch(out)
	if m == nil {
		return fail(fmt.Errorf("no tps line in pgbench's output: %s", lastLines(string(out), 5)))
	}
	res.tps, _ = strconv.ParseFloat(string(m[1]), 64)
	r.log.Info("pgbench", "target", label, "tps", fmt.Sprintf("%.0f", res.tps))
	return res
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

// pgBench runs pgbench with the data directory on the host disk, on ext4
// on a plain loop device, on Ballast repl 1 and repl 2 volumes of daemon d,
// and on the GlusterFS volume g (when there is one), in that order.
func pgBench(ctx context.Context, c config, d *daemon, g *gluster, logger *slog.Logger) []pgResult {
	r, err := newPGRunner(c.pgTime, logger)
	if err != nil {
		return []pgResult{{label: pgLabelHost, err: err}}
	}
	out := []pgResult{r.run(ctx, pgLabelHost, filepath.Join(c.dir, "pg-host"))}
	if ctx.Err() != nil {
		return out
	}
	if l, err := newLoopFS(ctx, c.dir, "pg-loop", c.size, logger); err != nil {
		out = append(out, pgResult{label: pgLabelLoop, err: err})
	} else {
		out = append(out, r.run(ctx, pgLabelLoop, filepath.Join(l.mnt, "pg")))
		l.close()
	}
	for _, repl := range []int{1, 2} {
		label := pgLabelRepl1
		if repl == 2 {
			label = pgLabelRepl2
		}
		if ctx.Err() != nil {
			return out
		}
		name := fmt.Sprintf("pg-r%d", repl)
		mnt, detach, err := attached(ctx, d, spec.Volume{Name: name, Size: c.size, Repl: repl, FS: "ext4"})
		if err != nil {
			out = append(out, pgResult{label: label, err: err})
			continue
		}
		// The daemon's data dir is root's alone; postgres reaches the
		// volume through a bind mount in the scratch dir.
		bind := filepath.Join(c.dir, name)
		if err := bindMount(mnt, bind); err != nil {
			out = append(out, pgResult{label: label, err: err})
		} else {
			out = append(out, r.run(ctx, label, filepath.Join(bind, "pg")))
			if err := hostfs.Unmount(bind); err != nil {
				logger.Error("unmount", "path", bind, "err", err)
			}
		}
		detach()
		if ctx.Err() == nil {
			if err := d.client.DeleteVolume(ctx, name); err != nil {
				d.log.Warn("delete volume", "name", name, "err", err)
			}
		}
	}
	if g != nil && ctx.Err() == nil {
		out = append(out, r.run(ctx, glusterLabel, filepath.Join(g.mnt, "pg")))
	}
	return out
}
