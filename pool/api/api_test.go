package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/spec"
)

// fake is a Service that keeps volumes in a map and validates like the
// daemon does, enough to see requests and errors cross the socket intact.
type fake struct {
	vols map[string]spec.Volume
}

func (f *fake) CreateVolume(_ context.Context, v spec.Volume, _ CreateOptions) (*Volume, error) {
	if err := v.Normalize(); err != nil {
		return nil, err
	}
	if _, ok := f.vols[v.Name]; ok {
		return nil, fmt.Errorf("volume %s: %w", v.Name, ErrExists)
	}
	f.vols[v.Name] = v
	return &Volume{Volume: v, State: "ready"}, nil
}
func (f *fake) ResizeVolume(context.Context, string, int64) (*Volume, error) {
	return nil, errors.ErrUnsupported
}

func (f *fake) DeleteVolume(_ context.Context, name string) error {
	if _, ok := f.vols[name]; !ok {
		return fmt.Errorf("volume %s: %w", name, ErrNotFound)
	}
	delete(f.vols, name)
	return nil
}
func (f *fake) InspectVolume(_ context.Context, name string) (*Volume, error) {
	v, ok := f.vols[name]
	if !ok {
		return nil, fmt.Errorf("volume %s: %w", name, ErrNotFound)
	}
	return &Volume{Volume: v}, nil
}
func (f *fake) ListVolumes(context.Context) ([]Volume, error) {
	var out []Volume
	for _, v := range f.vols {
		out = append(out, Volume{Volume: v})
	}
	return out, nil
}
func (f *fake) AttachVolume(_ context.Context, name string, o AttachOptions) (*Attachment, error) {
	if !o.Force {
		return nil, fmt.Errorf("volume %s is attached on node b: %w", name, ErrInUse)
	}
	return &Attachment{Volume: name, Node: "a", MountPath: "/m/" + name}, nil
}
func (f *fake) DetachVolume(context.Context, string) error { return nil }
func (f *fake) CreateSnapshot(_ context.Context, v, n string) (*Snapshot, error) {
	return &Snapshot{Volume: v, Name: n}, nil
}
func (f *fake) DeleteSnapshot(context.Context, string, string) error { return nil }
func (f *fake) ListSnapshots(context.Context, string) ([]Snapshot, error) {
	return nil, nil
}
func (f *fake) ClusterStatus(context.Context) ([]Node, error) {
	return []Node{{ID: "a", State: NodeUp}}, nil
}
func (f *fake) SetSecret(_ context.Context, name string, _ []byte) (*Secret, error) {
	return &Secret{Name: name}, nil
}
func (f *fake) ChangePassphrase(context.Context, string, []byte, []byte) error { return nil }

func (f *fake) ChangeSecret(_ context.Context, name string, _ []byte) (*Secret, error) {
	return &Secret{Name: name}, nil
}
func (f *fake) ListSecrets(context.Context) ([]Secret, error) { return nil, nil }
func (f *fake) DeleteSecret(context.Context, string) error    { return nil }

func (f *fake) ListPools(context.Context) ([]Pool, error) {
	return []Pool{{ID: "p1", Capacity: 100}}, nil
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestOverSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "b.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, sock, &fake{vols: map[string]spec.Volume{}}, quiet) }()
	t.Cleanup(func() { cancel(); <-done })
	c, err := Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	for i := 0; ; i++ { // wait for the listener
		if _, err = c.ListPools(cctx); err == nil || i > 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	v, err := c.CreateVolume(cctx, spec.Volume{Name: "v1", Size: 1 << 30, Repl: 2}, CreateOptions{})
	if err != nil || v.Repl != 2 || v.FS != "ext4" || v.State != "ready" {
		t.Fatalf("create: %+v %v", v, err)
	}
	_, err = c.CreateVolume(cctx, spec.Volume{Name: "v1", Size: 1 << 30}, CreateOptions{})
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "volume v1") {
		t.Fatalf("duplicate: %v", err)
	}
	_, err = c.CreateVolume(cctx, spec.Volume{Name: "a/b", Size: 1 << 30}, CreateOptions{})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "'/'") {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := c.InspectVolume(cctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("inspect missing: %v", err)
	}
	if _, err := c.AttachVolume(cctx, "v1", AttachOptions{}); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "node b") {
		t.Fatalf("attach in use: %v", err)
	}
	a, err := c.AttachVolume(cctx, "v1", AttachOptions{Force: true})
	if err != nil || a.MountPath != "/m/v1" {
		t.Fatalf("forced attach: %+v %v", a, err)
	}
	vols, err := c.ListVolumes(cctx)
	if err != nil || len(vols) != 1 {
		t.Fatalf("list: %+v %v", vols, err)
	}
	if err := c.DeleteVolume(cctx, "v1"); err != nil {
		t.Fatal(err)
	}
	nodes, err := c.ClusterStatus(cctx)
	if err != nil || len(nodes) != 1 || nodes[0].State != NodeUp {
		t.Fatalf("cluster status: %+v %v", nodes, err)
	}
}

func TestDaemonMissing(t *testing.T) {
	c, err := Dial(filepath.Join(t.TempDir(), "none.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = c.ListVolumes(ctx)
	if err == nil || !strings.Contains(err.Error(), "daemon unreachable") {
		t.Fatalf("err = %v", err)
	}
}

// FuzzHandlers feeds arbitrary request bodies to every method: each must
// answer or fail with an error, never panic, and bad JSON must be an
// invalid-argument error.
func FuzzHandlers(f *testing.F) {
	for _, s := range []string{`{"name":"v1","size":1073741824}`, `{"Name":""}`, `{`, `null`, `[]`, `{"Name":"a","Opts":{"force":true}}`, `{"size":-1}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		svc := &fake{vols: map[string]spec.Volume{}}
		for _, m := range methods {
			dec := func(v any) error { return json.Unmarshal([]byte(body), v) }
			_, err := m.Handle(context.Background(), svc, dec)
			if err != nil && !json.Valid([]byte(body)) && !strings.Contains(err.Error(), "InvalidArgument") {
				t.Fatalf("%s: bad JSON gave %v", m.Name(), err)
			}
		}
	})
}
