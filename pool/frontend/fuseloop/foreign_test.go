package fuseloop_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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

	if err := e.Recover(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(backing); err != nil {
		t.Fatalf("Recover detached %s, a loop device of another mount namespace whose backing file only has a path under its state dir: %v", loop, err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
}
