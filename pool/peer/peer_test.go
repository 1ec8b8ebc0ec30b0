package peer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/clusterca"
	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/replica"
	"github.com/ballast-io/ballast/pool/rpc"
)

var secret = []byte("the-cluster-secret-of-test")

// fake records the calls that reach it and answers from its fields.
type fake struct {
	mu    sync.Mutex
	calls []string
	err   error         // every call fails with it when set
	hold  chan struct{} // every call waits for it when set
}

func (f *fake) record(ctx context.Context, format string, a ...any) error {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf(format, a...))
	err, hold := f.err, f.hold
	f.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

func (f *fake) seen() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, " ")
}

func (f *fake) CreateReplica(ctx context.Context, pool, id string, size int64) error {
	return f.record(ctx, "create:%s/%s:%d", pool, id, size)
}
func (f *fake) CloneReplica(ctx context.Context, pool, id, src, snap string) error {
	return f.record(ctx, "clone:%s/%s:%s@%s", pool, id, src, snap)
}
func (f *fake) DeleteReplica(ctx context.Context, id string) error {
	return f.record(ctx, "delete:%s", id)
}
func (f *fake) Join(ctx context.Context, node string, req meta.JoinRequest) (meta.JoinAnswer, error) {
	if err := f.record(ctx, "join:%s:%s", node, req.PeerURL); err != nil {
		return meta.JoinAnswer{}, err
	}
	return meta.JoinAnswer{Member: true, Endpoints: []string{"https://n1:2379"}}, nil
}
func (f *fake) ResizeVolume(ctx context.Context, vol string, size int64) error {
	return f.record(ctx, "resize:%s:%d", vol, size)
}
func (f *fake) CreateBackup(ctx context.Context, b api.BackupSpec) (*api.Backup, error) {
	if err := f.record(ctx, "backup:%s:%s:%s:%d", b.Volume, b.Target, b.Snapshot, b.RateLimit); err != nil {
		return nil, err
	}
	return &api.Backup{ID: b.Volume + "-1", Volume: b.Volume, State: api.BackupRunning}, nil
}
func (f *fake) CreateSnapshot(ctx context.Context, vol, name string) (*api.Snapshot, error) {
	if err := f.record(ctx, "snapshot:%s@%s", vol, name); err != nil {
		return nil, err
	}
	return &api.Snapshot{Volume: vol, Name: name}, nil
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// serve serves svc with the cluster secret sec on a loopback port until
// the test ends, and returns its address.
func serve(t *testing.T, sec []byte, svc Service) string {
	t.Helper()
	srv, err := NewServer(sec, "server", svc, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func dial(t *testing.T, sec []byte, addr string) *Client {
	t.Helper()
	d, err := NewDialer(sec, "client")
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestCalls: every call reaches the other node's service with its
// arguments, and its answer comes back.
func TestCalls(t *testing.T) {
	svc := &fake{}
	c := dial(t, secret, serve(t, secret, svc))
	ctx := ctxT(t)
	if err := c.CreateReplica(ctx, "p1", "r1", 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := c.CloneReplica(ctx, "p1", "r2", "r1", "s1"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteReplica(ctx, "r2"); err != nil {
		t.Fatal(err)
	}
	ans, err := c.Join(ctx, "n4", meta.JoinRequest{PeerURL: "https://n4:2380"})
	if err != nil || !ans.Member || len(ans.Endpoints) != 1 || ans.Endpoints[0] != "https://n1:2379" {
		t.Fatalf("join: %+v, %v", ans, err)
	}
	if err := c.ResizeVolume(ctx, "v1", 1<<30); err != nil {
		t.Fatal(err)
	}
	b, err := c.CreateBackup(ctx, api.BackupSpec{Volume: "v1", Target: "s3", Snapshot: "s1", RateLimit: 5})
	if err != nil || b.ID != "v1-1" || b.State != api.BackupRunning {
		t.Fatalf("backup: %+v, %v", b, err)
	}
	sn, err := c.CreateSnapshot(ctx, "v1", "s2")
	if err != nil || sn.Volume != "v1" || sn.Name != "s2" {
		t.Fatalf("snapshot: %+v, %v", sn, err)
	}
	want := "create:p1/r1:1048576 clone:p1/r2:r1@s1 delete:r2 join:n4:https://n4:2380 resize:v1:1073741824 backup:v1:s3:s1:5 snapshot:v1@s2"
	if got := svc.seen(); got != want {
		t.Fatalf("the service saw\n%s\nwant\n%s", got, want)
	}
}

// TestErrors: a failure comes back with the other node's message and
// matching its sentinel; a request missing a name is refused before it
// reaches the service.
func TestErrors(t *testing.T) {
	svc := &fake{}
	c := dial(t, secret, serve(t, secret, svc))
	ctx := ctxT(t)
	for _, want := range []error{replica.ErrExists, replica.ErrNotFound, replica.ErrInUse, api.ErrConflict, api.ErrNoCapacity, errors.ErrUnsupported} {
		svc.err = fmt.Errorf("replica r9 on node b: %w", want)
		err := c.CreateReplica(ctx, "p1", "r9", 1<<20)
		if !errors.Is(err, want) || !strings.Contains(err.Error(), "replica r9 on node b") {
			t.Errorf("%v came back as %v", want, err)
		}
	}
	// The store's sentinels and the volume service's keep apart.
	svc.err = fmt.Errorf("replica r9: %w", replica.ErrNotFound)
	if err := c.DeleteReplica(ctx, "r9"); !errors.Is(err, replica.ErrNotFound) || errors.Is(err, api.ErrNotFound) {
		t.Errorf("a missing replica came back as %v", err)
	}
	svc.err = fmt.Errorf("volume v1: %w", api.ErrGrowAtAttach)
	if err := c.ResizeVolume(ctx, "v1", 1<<30); !errors.Is(err, api.ErrGrowAtAttach) || errors.Is(err, api.ErrInUse) {
		t.Errorf("grow-at-attach came back as %v", err)
	}
	svc.err = errors.New("the disk is on fire")
	if err := c.ResizeVolume(ctx, "v1", 1<<30); err == nil || !strings.Contains(err.Error(), "the disk is on fire") {
		t.Fatalf("plain error came back as %v", err)
	}
	svc.err = nil
	before := svc.seen()
	for name, call := range map[string]func() error{
		"create without pool":  func() error { return c.CreateReplica(ctx, "", "r1", 1) },
		"create without ID":    func() error { return c.CreateReplica(ctx, "p1", "", 1) },
		"clone without source": func() error { return c.CloneReplica(ctx, "p1", "r2", "", "s1") },
		"clone without snap":   func() error { return c.CloneReplica(ctx, "p1", "r2", "r1", "") },
		"delete without ID":    func() error { return c.DeleteReplica(ctx, "") },
		"join without node":    func() error { _, err := c.Join(ctx, "", meta.JoinRequest{}); return err },
		"resize without vol":   func() error { return c.ResizeVolume(ctx, "", 1) },
	} {
		if err := call(); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if svc.seen() != before {
		t.Fatalf("refused requests reached the service: %s", svc.seen())
	}
}

// TestWrongSecret: a node of another cluster can neither call nor answer.
func TestWrongSecret(t *testing.T) {
	other := []byte("another-cluster's-secret-0000")
	svc := &fake{}
	c := dial(t, other, serve(t, secret, svc))
	if err := c.DeleteReplica(ctxT(t), "r1"); !errors.Is(err, ErrAuth) {
		t.Fatalf("call with the wrong secret: %v, want ErrAuth", err)
	}
	intruder := &fake{}
	c = dial(t, secret, serve(t, other, intruder))
	if err := c.DeleteReplica(ctxT(t), "r1"); !errors.Is(err, ErrAuth) {
		t.Fatalf("call to a server with the wrong secret: %v, want ErrAuth", err)
	}
	if svc.seen() != "" || intruder.seen() != "" {
		t.Fatalf("calls got through: %q, %q", svc.seen(), intruder.seen())
	}
	if _, err := NewDialer([]byte("short"), "n1"); err == nil {
		t.Fatal("dialer with a short secret")
	}
	if _, err := NewServer([]byte("short"), "n1", svc, quiet); err == nil {
		t.Fatal("server with a short secret")
	}
}

// TestVersionMismatch: a server refuses a caller of another protocol
// version, and a client refuses the answer of a server of another, both
// naming the two versions; the service never runs the call.
func TestVersionMismatch(t *testing.T) {
	svc := &fake{}
	addr := serve(t, secret, svc)
	c := dial(t, secret, addr)
	ctx := metadata.AppendToOutgoingContext(ctxT(t), versionKey, "0")
	_, err := rpc.Call[*rpc.Empty](ctx, c.conn, errorTable, serviceName, "DeleteReplica", &DeleteReq{ID: "r1"})
	if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "version [0], this node 1") {
		t.Fatalf("call as version 0: %v, want ErrVersion naming both", err)
	}
	// A method this version does not have, called by a node of another
	// version, is refused for the version.
	_, err = rpc.Call[*rpc.Empty](ctx, c.conn, errorTable, serviceName, "FutureCall", &DeleteReq{ID: "r1"})
	if !errors.Is(err, ErrVersion) {
		t.Fatalf("unknown call as version 0: %v, want ErrVersion", err)
	}
	if svc.seen() != "" {
		t.Fatalf("the service ran %s", svc.seen())
	}

	// A server that answers as version 2.
	srvTLS, _, err := clusterca.MutualTLS(secret, "future")
	if err != nil {
		t.Fatal(err)
	}
	future := grpc.NewServer(grpc.Creds(credentials.NewTLS(srvTLS)), grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		grpc.SetHeader(ctx, metadata.Pairs(versionKey, "2"))
		return h(ctx, req)
	}))
	rpc.Register(future, serviceName, Service(svc), methods)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go future.Serve(ln)
	defer future.Stop()
	c = dial(t, secret, ln.Addr().String())
	err = c.ResizeVolume(ctxT(t), "v1", 1<<30)
	if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "speaks peer protocol version 2, this node 1") {
		t.Fatalf("answer of a version 2 node: %v, want ErrVersion naming both", err)
	}
}

// TestDeadline: a call is bounded by its context, and the service's
// context ends with it.
func TestDeadline(t *testing.T) {
	svc := &fake{hold: make(chan struct{})}
	defer close(svc.hold)
	c := dial(t, secret, serve(t, secret, svc))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := c.ResizeVolume(ctx, "v1", 1<<30); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call on a hung node: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("returned after %v", d)
	}
}

// TestUnreachable: a call to an address where nothing listens says so.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := dial(t, secret, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.DeleteReplica(ctx, "r1"); err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("call to nothing: %v", err)
	}
}

// FuzzHandlers feeds arbitrary request bodies to every method: each must
// answer or fail with an error, never panic, and bad JSON must be an
// invalid-argument error.
func FuzzHandlers(f *testing.F) {
	for _, s := range []string{`{"Pool":"p","ID":"r","Size":1}`, `{"Node":"n","Request":{"peer_url":"x"}}`, `{`, `null`, `[]`, `{"Volume":"v","Size":-1}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, m := range methods {
			dec := func(v any) error { return json.Unmarshal([]byte(body), v) }
			_, err := m.Handle(context.Background(), Service(&fake{}), dec)
			if err != nil && !json.Valid([]byte(body)) && !strings.Contains(err.Error(), "InvalidArgument") {
				t.Fatalf("%s: bad JSON gave %v", m.Name(), err)
			}
		}
	})
}
