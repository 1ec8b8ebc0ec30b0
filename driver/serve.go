package driver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// DefaultSocket is where Docker looks for a plugin named "ballast" that
// is not a managed plugin (docker volume create -d ballast).
const DefaultSocket = "/run/docker/plugins/ballast.sock"

// shutdownGrace is how long Serve waits for calls in progress (an attach
// may be formatting a filesystem) once its context is done.
const shutdownGrace = 30 * time.Second

// Serve serves d on a unix socket at socketPath until ctx is done, then
// lets calls in progress finish (for up to 30 s), closes the socket and
// removes it. It creates the socket's directory (mode 0755) if missing and
// replaces a stale socket left by a crashed daemon, but refuses to start
// when another process answers on socketPath or when it is not a socket.
// The socket is mode 0660: only root (its owner) and root's group may call
// the plugin.
func Serve(ctx context.Context, d *Driver, socketPath string) error {
	if err := os.MkdirAll(filepath.Dir(socketPath), 0o755); err != nil {
		return fmt.Errorf("docker plugin socket directory: %w", err)
	}
	if err := removeStale(socketPath); err != nil {
		return err
	}
	l, err := net.Listen("unix", socketPath)
	if err != nil {
		return fmt.Errorf("docker plugin socket: %w", err)
	}
	if err := os.Chmod(socketPath, 0o660); err != nil {
		l.Close()
		return fmt.Errorf("docker plugin socket: %w", err)
	}
	srv := &http.Server{Handler: d, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	d.log.Info("docker volume plugin listening", "socket", socketPath)

	select {
	case err := <-done:
		removeSocket(socketPath)
		return fmt.Errorf("docker plugin on %s: %w", socketPath, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		d.log.Warn("docker plugin calls still running at shutdown were cut off", "err", err)
		srv.Close()
	}
	<-done // http.ErrServerClosed
	removeSocket(socketPath)
	d.log.Info("docker volume plugin stopped", "socket", socketPath)
	return nil
}

// removeStale removes a socket nobody answers on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("docker plugin socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("docker plugin socket %s exists and is not a socket; remove it or choose another path", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("docker plugin socket %s is in use by another process (is another ballast daemon running?)", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale docker plugin socket: %w", err)
	}
	return nil
}

// removeSocket removes the socket if closing the listener did not; one
// left behind anyway is replaced at the next start.
func removeSocket(path string) { _ = os.Remove(path) }
