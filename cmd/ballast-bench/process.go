package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// process is a program the benchmark started, its output appended to a
// log file: a ballast daemon or etcd. It runs in its own process group, so
// that a Ctrl-C on the terminal reaches only the benchmark, which stops it
// in order; deathSig reaches it if the benchmark itself is killed.
type process struct {
	name    string // "daemon", "etcd": for logs and errors
	cmd     *exec.Cmd
	done    chan struct{} // closed once it exited and was waited for
	logPath string
	log     *slog.Logger
}

// startProcess starts argv as process name with its output appended to
// logPath.
func startProcess(name, logPath string, deathSig syscall.Signal, argv []string, log *slog.Logger) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	p := &process{name: name, logPath: logPath, log: log, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSig}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	go func() { p.cmd.Wait(); logf.Close(); close(p.done) }()
	log.Info("started "+name, "pid", p.pid(), "log", logPath)
	return p, nil
}

// pid is the process's ID.
func (p *process) pid() int { return p.cmd.Process.Pid }

// exited says whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitReady calls ready every 100 ms until it returns nil; it fails when
// the process exits, ctx ends or timeout passes first, with more (a
// function of the last error) saying where to look.
func (p *process) waitReady(ctx context.Context, timeout time.Duration, ready func(context.Context) error, more func() string) error {
	deadline := time.Now().Add(timeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := ready(cctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited during start-up (%v)%s", p.name, p.cmd.ProcessState, more())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %v%s", p.name, timeout, err, more())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends the process by its PID: SIGTERM, then SIGKILL when it is still
// there after grace. It returns once the process was waited for, and is
// safe to call more than once.
func (p *process) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	p.log.Info("stopping "+p.name, "pid", p.pid())
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.log.Error(p.name+" did not stop after SIGTERM; killing it", "pid", p.pid(), "grace", grace)
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
	if st := p.cmd.ProcessState; st != nil && !st.Success() {
		p.log.Warn(p.name+" exited with an error", "status", st.String(), "log", p.logPath)
	}
}

// kill9 kills the process with SIGKILL, as a crash would, and waits for it.
func (p *process) kill9() {
	if p.exited() {
		return
	}
	p.log.Info("killing "+p.name+" with SIGKILL", "pid", p.pid())
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}
