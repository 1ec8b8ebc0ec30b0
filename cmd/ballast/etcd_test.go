package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/spec"
	"github.com/ballast-io/ballast/pool/testenv"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// etcdServer is an external etcd started by a test.
type etcdServer struct {
	URL string
	cmd *exec.Cmd
}

// startEtcd runs Debian's etcd server on loopback ports for one test. The
// ports are picked free but may be taken by another package's test before
// etcd binds them, so a server that exits before it is ready is started
// again on new ports (up to three tries).
func startEtcd(t *testing.T) *etcdServer {
	t.Helper()
	testenv.RequireTools(t, "etcd")
	var errs []string
	for try := 1; try <= 3; try++ {
		s, err := tryEtcd(t)
		if err == nil {
			return s
		}
		errs = append(errs, fmt.Sprintf("try %d: %v", try, err))
	}
	t.Fatalf("external etcd did not start:\n%s", strings.Join(errs, "\n"))
	return nil
}

// tryEtcd starts one etcd server and waits until it answers; on failure it
// stops the server and returns what its log said.
func tryEtcd(t *testing.T) (*etcdServer, error) {
	client := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	dir := t.TempDir()
	logPath := filepath.Join(dir, "etcd.log")
	cmd := exec.Command("etcd", "--name", "ext", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "ext="+peer)
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		logf.Close()
	}
	failed := func(err error) (*etcdServer, error) {
		stop()
		b, _ := os.ReadFile(logPath)
		if len(b) > 2000 {
			b = b[len(b)-2000:]
		}
		return nil, fmt.Errorf("%w; etcd log ends:\n%s", err, b)
	}
	cli, err := meta.Connect([]string{client}, nil)
	if err != nil {
		return failed(err)
	}
	defer cli.Close()
	for deadline := time.Now().Add(30 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "health")
		cancel()
		if err == nil {
			t.Cleanup(stop)
			return &etcdServer{URL: client, cmd: cmd}, nil
		}
		select {
		case <-exited:
			return failed(fmt.Errorf("etcd exited before it was ready"))
		default:
		}
		if time.Now().After(deadline) {
			return failed(fmt.Errorf("not ready after 30 s: %w", err))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestExternalEtcd runs the daemon against an external etcd server instead
// of its embedded member: the metadata lands there, survives a daemon
// restart, and the volume works.
func TestExternalEtcd(t *testing.T) {
	endpoint := startEtcd(t).URL
	d := startDaemon(t, "--etcd-endpoints", endpoint)
	ctx := d.ctx()
	if _, err := d.client.CreateVolume(ctx, spec.Volume{Name: "ext1", Size: 256 << 20, Repl: 2}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	att, err := d.client.AttachVolume(ctx, "ext1", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(att.MountPath, "hello"), []byte("external"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d.dir, "data", "etcd")); !os.IsNotExist(err) {
		t.Fatalf("an embedded etcd dir exists although --etcd-endpoints was given: %v", err)
	}
	cli, err := meta.Connect([]string{endpoint}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	v, _, err := meta.NewStore(cli).Volume(ctx, "ext1")
	if err != nil || v.Repl != 2 {
		t.Fatalf("volume record in the external etcd: %+v %v", v, err)
	}

	d.stop()
	d.start()
	got, err := d.client.InspectVolume(ctx, "ext1")
	if err != nil || got.Attachment == nil {
		t.Fatalf("after restart: %+v %v", got, err)
	}
	b, err := os.ReadFile(filepath.Join(got.Attachment.MountPath, "hello"))
	if err != nil || string(b) != "external" {
		t.Fatalf("data after restart: %q %v", b, err)
	}
}
