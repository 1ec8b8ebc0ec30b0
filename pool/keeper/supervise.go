package keeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Supervisor runs the serving daemon as a child process, restarts it when
// it dies, and keeps its descriptors meanwhile (Keeper).
type Supervisor struct {
	Keeper *Keeper
	// Command builds the child's command line; called for every start.
	Command func() *exec.Cmd
	Log     *slog.Logger
	// Backoff is the wait before the first restart after a crash; it
	// doubles while the child keeps dying young without having served
	// (Client.Ready), up to 10 s.
	Backoff time.Duration
	// Restart, when it receives, replaces the child at once (SIGKILL and
	// start again, from the binary now at its path): an upgrade under
	// running containers, whose I/O waits meanwhile.
	Restart <-chan os.Signal
	// Store, when set, receives what the keeper holds when the supervisor
	// stops (systemd's file descriptor store), so that the volumes' I/O
	// waits for the next supervisor instead of failing.
	Store *FDStore
}

// Run starts the child and restarts it whenever it dies by a signal or
// exits with an error, until ctx ends or the child exits with status 0 by
// itself, holding nothing. When ctx ends it tells the child whether the
// volumes outlive the keeper (Client.KeepsVolumes: with a Store they do),
// sends it SIGTERM, waits for it, and hands what the keeper holds to the
// Store or releases it. A child that fails before any child ever said it
// serves (Client.Ready: a bad flag, say) is not restarted: Run returns its
// error. The child dies with the supervisor (SIGKILL).
func (s *Supervisor) Run(ctx context.Context) error {
	defer s.Keeper.Close()
	defer s.save()
	backoff := max(s.Backoff, 100*time.Millisecond)
	for {
		started, readies := time.Now(), s.Keeper.readyCount()
		err := s.runOnce(ctx)
		if ctx.Err() != nil {
			return err
		}
		if errors.Is(err, errRestart) {
			continue
		}
		var exit *exec.ExitError
		if err == nil {
			if len(s.Keeper.Names()) == 0 {
				s.Log.Info("serving daemon exited by itself; stopping")
				return nil
			}
			// Stopped by a signal of its own, leaving its volumes to
			// the next daemon: start it.
			s.Log.Info("serving daemon exited, leaving its volumes to the next one; restarting it")
			continue
		}
		if !errors.As(err, &exit) {
			return err // could not start it at all
		}
		if !s.Keeper.Ready() {
			return fmt.Errorf("the serving daemon failed while starting: %w", err)
		}
		if time.Since(started) > 30*time.Second || s.Keeper.readyCount() > readies {
			// It ran a while, or it served: not a crash loop at start-up.
			backoff = max(s.Backoff, 100*time.Millisecond)
		}
		s.Log.Error("serving daemon died; restarting it (volumes stay mounted, their I/O waits)", "err", err, "after", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

var errRestart = errors.New("restart asked")

// save hands what the keeper holds to the Store, if any.
func (s *Supervisor) save() {
	if s.Store == nil {
		return
	}
	n, err := s.Store.Save(s.Keeper)
	if err != nil {
		s.Log.Error("could not hand every volume to systemd's file descriptor store; their I/O fails", "err", err)
	}
	if n > 0 {
		s.Log.Info("volumes handed to systemd's file descriptor store for the next start", "volumes", n)
	}
}

// runOnce runs one child to its end.
func (s *Supervisor) runOnce(ctx context.Context) error {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("keeper socket: %w", err)
	}
	mine := os.NewFile(uintptr(pair[0]), "keeper")
	theirs := os.NewFile(uintptr(pair[1]), "keeper-child")
	cmd := s.Command()
	cmd.ExtraFiles = []*os.File{theirs} // fd 3 in the child
	cmd.Env = append(cmd.Environ(), EnvFD+"="+strconv.Itoa(3))
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		mine.Close()
		return fmt.Errorf("start the serving daemon: %w", err)
	}
	s.Log.Info("serving daemon started", "pid", cmd.Process.Pid)
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := s.Keeper.Serve(mine); err != nil {
			s.Log.Warn("keeper connection", "err", err)
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err = <-exited:
	case <-s.Restart:
		s.Log.Info("restarting the serving daemon as asked; volumes stay mounted, their I/O waits", "pid", cmd.Process.Pid)
		_ = cmd.Process.Kill()
		<-exited
		err = errRestart
	case <-ctx.Done():
		s.Keeper.Stop(s.Store != nil)
		s.Log.Info("stopping the serving daemon", "pid", cmd.Process.Pid, "volumes_outlive_keeper", s.Store != nil)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		err = <-exited
	}
	<-served
	return err
}
