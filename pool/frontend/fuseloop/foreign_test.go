package fuseloop_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/frontend/fuseloop"
	"github.com/ballast-io/ballast/pool/testenv"
)

// Loop devices are host-global, and sysfs shows a loop device's backing
// file by its path in the mount namespace that attached it. Another
// daemon (in another container, or on the host) whose state dir has the
// same path therefore has loop devices that look like ours by path.
// Recover must leave them alone: it detaches only loop devices backed by
// a filesystem mounted under its state dir in its own mount namespace.
func TestRecoverLeavesLoopsOfOtherMountNamespaces(t *testing.T) {
	testenv.RequirePrivileged(t)
	testenv.RequireTools(t, "unshare", "losetup", "mount", "truncate")
	state := filepath.Join(t.TempDir(), "state")
	e, err := fuseloop.New(state, fuseloop.Options{})
	if err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(state, "vol")
	if err := os.MkdirAll(foreign, 0o755); err != nil {
		t.Fatal(err)
	}
	// The other daemon: a private mount namespace with a filesystem at
	// the same path and a loop device on a file there (no autoclear, so
	// a wrongful LOOP_CLR_FD really detaches it).
	script := fmt.Sprintf("mount -t tmpfs tmpfs %[1]s && truncate -s 4M %[1]s/disk && losetup -f --show %[1]s/disk && exec sleep 600", foreign)
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the other namespace attached no loop device: %v", sc.Err())
	}
	loop := strings.TrimSpace(sc.Text())
	t.Cleanup(func() {
		exec.Command("losetup", "-d", loop).Run()
		cmd.Process.Kill()
		cmd.Wait()
	})
	backing := "/sys/block/" + filepath.Base(loop) + "/loop/backing_file"
	b, err := os.ReadFile(backing)
	if err != nil {
		t.Fatalf("%s: %v", backing, err)
	}
	if !strings.HasPrefix(strings.TrimSpace(string(b)), foreign+"/") {
		t.Skipf("this kernel shows the foreign backing file as %q, not under %s: nothing to tell apart", strings.TrimSpace(string(b)), foreign)
	}

	// A leftover of our own beside it: a filesystem mounted under the
	// state dir in this namespace, and a loop device on a file there.
	// Recover must detach this one, so that the device numbers, not the
	// paths, are what tells the two apart.
	ours := filepath.Join(state, "ours")
	if err := os.MkdirAll(ours, 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("mount", "-t", "tmpfs", "tmpfs", ours).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs on %s: %v: %s", ours, err, b)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", ours).Run() })
	if b, err := exec.Command("truncate", "-s", "4M", ours+"/disk").CombinedOutput(); err != nil {
		t.Fatalf("truncate: %v: %s", err, b)
	}
	b, err = exec.Command("losetup", "-f", "--show", ours+"/disk").Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	ourLoop := strings.TrimSpace(string(b))
	t.Cleanup(func() { exec.Command("losetup", "-d", ourLoop).Run() })
	ourBacking := "/sys/block/" + filepath.Base(ourLoop) + "/loop/backing_file"

	if err := e.Recover(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(backing); err != nil {
		t.Fatalf("Recover detached %s, a loop device of another mount namespace whose backing file only has a path under its state dir: %v", loop, err)
	}
	// The detach completes when the last opener (udev, probing it, may
	// be one) closes the device.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, err := os.Stat(ourBacking)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Recover left %s attached, a loop device on a filesystem mounted under its state dir in its own namespace (%s: %v)", ourLoop, ourBacking, err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
}
