package driver

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// unixClient calls the plugin the way Docker does: HTTP over the socket.
func unixClient(sock string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
}

func TestServe(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "plugins", "ballast.sock")
	// A stale socket from a crashed daemon is replaced.
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, New(newFake("n1"), "n1", Options{}, nil), sock) }()

	cl := unixClient(sock)
	var res *http.Response
	for i := 0; ; i++ {
		res, err = cl.Post("http://plugin/Plugin.Activate", contentType, strings.NewReader("{}"))
		if err == nil {
			break
		}
		if i == 100 {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"Implements":["VolumeDriver"]`) {
		t.Fatalf("Activate: %d %s", res.StatusCode, body)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("socket mode %v, want 0660", fi.Mode())
	}

	// A second plugin on the same socket is refused.
	err = Serve(context.Background(), New(newFake("n1"), "n1", Options{}, nil), sock)
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second Serve on a live socket: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not stop")
	}
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
}

func TestServeRefusesNonSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ballast.sock")
	if err := os.WriteFile(path, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Serve(context.Background(), New(newFake("n1"), "n1", Options{}, nil), path)
	if err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("Serve over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "data" {
		t.Fatal("the file was touched")
	}
}
