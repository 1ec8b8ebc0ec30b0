package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/hostfs"
	"github.com/ballast-io/ballast/pool/spec"
)

// fakeSystemd is the part of systemd a keeper talks to: the notify socket
// ($NOTIFY_SOCKET) and its file descriptor store (FDSTORE=1, FDNAME=,
// FDSTOREREMOVE=1), as sd_notify(3) describes them.
type fakeSystemd struct {
	sock string
	fd   int
	mu   sync.Mutex
	fds  map[string]*os.File
	done chan struct{}
}

func startFakeSystemd(t *testing.T) *fakeSystemd {
	t.Helper()
	s := &fakeSystemd{sock: filepath.Join(t.TempDir(), "notify"), fds: map[string]*os.File{}, done: make(chan struct{})}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: s.sock}); err != nil {
		t.Fatal(err)
	}
	s.fd = fd
	go s.serve()
	t.Cleanup(func() {
		unix.Shutdown(fd, unix.SHUT_RDWR)
		<-s.done
		unix.Close(fd)
		s.mu.Lock()
		for _, f := range s.fds {
			f.Close()
		}
		s.mu.Unlock()
	})
	return s
}

func (s *fakeSystemd) serve() {
	defer close(s.done)
	buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(253*4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(s.fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || (n == 0 && oobn == 0) {
			return
		}
		var files []*os.File
		if scms, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, scm := range scms {
				fds, _ := unix.ParseUnixRights(&scm)
				for _, fd := range fds {
					files = append(files, os.NewFile(uintptr(fd), "stored"))
				}
			}
		}
		vars := map[string]string{}
		for _, l := range strings.Split(string(buf[:n]), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				vars[k] = v
			}
		}
		s.mu.Lock()
		name := vars["FDNAME"]
		switch {
		case vars["FDSTORE"] == "1" && len(files) == 1 && name != "":
			if old := s.fds[name]; old != nil {
				old.Close()
			}
			s.fds[name] = files[0]
			files = nil
		case vars["FDSTOREREMOVE"] == "1" && name != "":
			if f := s.fds[name]; f != nil {
				f.Close()
				delete(s.fds, name)
			}
		}
		s.mu.Unlock()
		for _, f := range files {
			f.Close()
		}
	}
}

// pass returns the stored descriptors as systemd passes them to the next
// start of the service: the files (fd 3 on) and the environment.
func (s *fakeSystemd) pass() ([]*os.File, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n := range s.fds {
		names = append(names, n)
	}
	slices.Sort(names)
	var files []*os.File
	for _, n := range names {
		files = append(files, s.fds[n])
	}
	return files, []string{"LISTEN_FDS=" + strconv.Itoa(len(files)), "LISTEN_FDNAMES=" + strings.Join(names, ":")}
}

func (s *fakeSystemd) stored() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.fds)
}

// stopTimed sends SIGTERM and returns how long the daemon took to exit.
func (d *daemon) stopTimed() time.Duration {
	d.t.Helper()
	t0 := time.Now()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.t.Fatalf("daemon did not exit within 30 s of SIGTERM")
	}
	return time.Since(t0)
}

// TestStopWithBusyVolumes stops (SIGTERM) a daemon under which one volume
// is busy (a writer fsyncs on it) and one idle, as systemctl stop would,
// without a keeper: it exits at once, without waiting for the busy
// filesystem's users and without a "still in use" error; the busy one's
// writer gets an error (nothing keeps its connection), the idle one was
// unmounted cleanly. The next daemon attaches both again: every record
// acknowledged before the stop is there, and both filesystems are clean.
func TestStopWithBusyVolumes(t *testing.T) {
	d := startDaemon(t)
	ctx := d.ctx()
	for _, name := range []string{"busy", "idle"} {
		if _, err := d.client.CreateVolume(ctx, spec.Volume{Name: name, Size: 256 << 20, Repl: 2}, api.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	busy, err := d.client.AttachVolume(ctx, "busy", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	idle, err := d.client.AttachVolume(ctx, "idle", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fioWrite(t, filepath.Join(idle.MountPath, "data"), "16M", 3)
	w := startAckWriter(filepath.Join(busy.MountPath, "log"))
	time.Sleep(time.Second)
	took := d.stopTimed()
	<-w.done // its connection ended with the daemon
	t.Logf("daemon stopped %s after SIGTERM with a busy volume; the writer's error: %v", took.Round(time.Millisecond), w.err)
	logText, _ := os.ReadFile(d.logPath)
	if strings.Contains(string(logText), "still in use") {
		t.Fatalf("the stop waited for a busy volume:\n%s", lastLines(string(logText), 30))
	}
	if took > 8*time.Second {
		t.Fatalf("SIGTERM took %s with a busy volume; the daemon must not wait for its users", took)
	}
	if mounted, _ := hostfs.IsMounted(idle.MountPath); mounted {
		t.Fatalf("the idle volume is still mounted at %s after the daemon stopped", idle.MountPath)
	}

	d.start()
	for _, name := range []string{"busy", "idle"} {
		v, err := d.client.InspectVolume(ctx, name)
		if err != nil || v.Attachment == nil || v.Attachment.Node != "n1" {
			t.Fatalf("%s after the restart: %+v, %v; want it attached again", name, v, err)
		}
	}
	checkRecords(t, filepath.Join(busy.MountPath, "log"), w.acked)
	fioVerify(t, filepath.Join(idle.MountPath, "data"), "16M", 3)
	fsckFrozen(t, busy.MountPath)
	fsckFrozen(t, idle.MountPath)
}

// TestStopKeepsIOWithSystemd runs the keeper as systemd would, with a
// file descriptor store (NOTIFY_SOCKET, FDSTORE) played by the test, and
// restarts it (SIGTERM, then a new start with the stored descriptors,
// as systemctl restart does) under a volume a writer keeps fsyncing: the
// keeper exits at once, the writer's I/O waits and carries on with the
// new keeper's daemon on the same loop device and mount, with no error.
// The new keeper takes its descriptors out of the store, so releasing a
// volume later really ends its connection.
func TestStopKeepsIOWithSystemd(t *testing.T) {
	sd := startFakeSystemd(t)
	d := newDaemon(t, "n1", []string{"disk1", "disk2"}, "--keeper=true", "--restart-grace=60s")
	d.env = []string{"NOTIFY_SOCKET=" + sd.sock, "FDSTORE=64"}
	d.start()
	ctx := d.ctx()
	if _, err := d.client.CreateVolume(ctx, spec.Volume{Name: "db", Size: 256 << 20, Repl: 2}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	att, err := d.client.AttachVolume(ctx, "db", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := startAckWriter(filepath.Join(att.MountPath, "log"))
	t.Cleanup(w.halt)
	time.Sleep(time.Second)
	took := d.stopTimed()
	before := w.acked
	t.Logf("keeper stopped %s after SIGTERM; %d descriptors in the store", took.Round(time.Millisecond), sd.stored())
	if took > 8*time.Second {
		t.Fatalf("SIGTERM took %s with a busy volume", took)
	}
	select {
	case <-w.done:
		t.Fatalf("the writer failed when the keeper stopped: %v", w.err)
	default:
	}
	if sd.stored() < 3 { // the state, the FUSE connection, the loop device
		t.Fatalf("the keeper stored %d descriptors with systemd, want the volume's and its state", sd.stored())
	}
	time.Sleep(500 * time.Millisecond) // systemd's RestartSec, shortened

	d.files, d.env = nil, nil
	files, env := sd.pass()
	d.files = files
	d.env = append([]string{"NOTIFY_SOCKET=" + sd.sock, "FDSTORE=64"}, env...)
	d.wrap = []string{"sh", "-c", `LISTEN_PID=$$ exec "$@"`, "sh"} // systemd sets LISTEN_PID to the service's PID
	t0 := time.Now()
	d.start()
	for _, f := range files {
		f.Close() // passed; the store keeps its own until the keeper removes them
	}
	att2 := d.waitTakenOver(ctx, "db", att.Epoch, w)
	t.Logf("the new keeper's daemon took db over %s after it started", time.Since(t0).Round(time.Millisecond))
	for deadline := time.Now().Add(30 * time.Second); w.acked < before+20; time.Sleep(50 * time.Millisecond) {
		select {
		case <-w.done:
			t.Fatalf("the writer failed after the restart: %v", w.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d records acknowledged in 30 s after the restart (from %d)", w.acked, before)
		}
	}
	w.halt()
	if w.err != nil {
		t.Fatalf("the writer saw an error: %v", w.err)
	}
	if att2.Device != att.Device || att2.MountPath != att.MountPath {
		t.Fatalf("after the restart db is attached %+v, not on %s at %s: not taken over", att2, att.Device, att.MountPath)
	}
	checkRecords(t, filepath.Join(att.MountPath, "log"), w.acked)
	if n := sd.stored(); n != 0 {
		t.Fatalf("%d descriptors left in systemd's store after the new keeper took them: a released volume would stay connected", n)
	}
	fsckFrozen(t, att.MountPath)
	if err := d.client.DetachVolume(context.Background(), "db"); err != nil {
		t.Fatalf("detach after the restart: %v", err)
	}
}
