package cql

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocql/gocql"
)

// testServer is a Server listening on 127.0.0.1:0, closed at the end of the
// test.
type testServer struct {
	*Server
	dir  string
	addr string
	done chan error
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startServer(t testing.TB, dir string) *testServer {
	t.Helper()
	srv, err := Open(Config{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		t.Fatalf("listen: %v", err)
	}
	ts := &testServer{Server: srv, dir: dir, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ln) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop closes the server and checks that Serve returned nil; it may be
// called more than once.
func (ts *testServer) stop(t testing.TB) {
	t.Helper()
	if err := ts.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case err, ok := <-ts.done:
		if ok && err != nil {
			t.Errorf("Serve returned %v after Close, want nil", err)
		}
		if ok {
			close(ts.done)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("Serve did not return after Close")
	}
}

// newSession connects gocql to the server; configure adjusts the cluster
// config.
func newSession(t testing.TB, addr string, configure ...func(*gocql.ClusterConfig)) *gocql.Session {
	t.Helper()
	cluster := gocql.NewCluster(addr)
	cluster.Timeout = 10 * time.Second
	cluster.ConnectTimeout = 10 * time.Second
	cluster.WriteCoalesceWaitTime = 0
	cluster.Logger = nopLogger{}
	for _, f := range configure {
		f(cluster)
	}
	s, err := cluster.CreateSession()
	if err != nil {
		t.Fatalf("gocql CreateSession: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

type nopLogger struct{}

func (nopLogger) Print(...any)          {}
func (nopLogger) Printf(string, ...any) {}
func (nopLogger) Println(...any)        {}

// logCapture is a slog handler counting the messages logged.
type logCapture struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logCapture) WithGroup(string) slog.Handler            { return l }
func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}

func (l *logCapture) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}
