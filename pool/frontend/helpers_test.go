package frontend_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/ballast-io/ballast/pool/frontend"
	"github.com/ballast-io/ballast/pool/frontend/fuseloop"
	"github.com/ballast-io/ballast/pool/frontend/internal/filedev"
	"github.com/ballast-io/ballast/pool/spec"
	"github.com/ballast-io/ballast/pool/testenv"
)

const childEnv = "BALLAST_FRONTEND_TEST_CHILD"

func TestMain(m *testing.M) {
	runtime.GOMAXPROCS(frontend.ReaderGOMAXPROCS)
	if os.Getenv(childEnv) == "1" {
		os.Exit(childMain())
	}
	os.Exit(m.Run())
}

// childMain is a minimal daemon: it serves a file-backed Device through
// fuseloop, prints "READY <devPath>" and waits to be killed.
func childMain() int {
	size, _ := strconv.ParseInt(os.Getenv("CHILD_SIZE"), 10, 64)
	dev, err := filedev.Open(os.Getenv("CHILD_FILE"), size)
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	e, err := fuseloop.New(os.Getenv("CHILD_STATE"), fuseloop.Options{Logger: log.New(os.Stderr, "child: ", 0)})
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	devPath, err := e.Export(spec.MustName(os.Getenv("CHILD_NAME")), dev)
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	fmt.Println("READY", devPath)
	// Serve until killed, or until the parent closes our stdin (clean exit).
	io.Copy(io.Discard, os.Stdin)
	if err := e.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "child: close:", err)
		return 1
	}
	return 0
}

type child struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	devPath string
}

// startChild starts a daemon child serving file (size bytes) as volume name
// with its FUSE mounts under stateDir. The child is killed at cleanup.
func startChild(t *testing.T, stateDir, file, name string, size int64) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "CHILD_STATE="+stateDir, "CHILD_FILE="+file,
		"CHILD_NAME="+name, "CHILD_SIZE="+strconv.FormatInt(size, 10))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin}
	t.Cleanup(func() { c.kill() })
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		if s.Scan() {
			line <- s.Text()
		}
		close(line)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case l := <-line:
		dp, ok := strings.CutPrefix(l, "READY ")
		if !ok {
			t.Fatalf("child: %q", l)
		}
		c.devPath = dp
	case <-time.After(30 * time.Second):
		t.Fatal("child did not become ready")
	}
	return c
}

func (c *child) kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

// cleanupCheck registers, in this order: recovery of everything under
// stateDir and mountRoot, then a check that nothing is left. Call it right
// after creating the directories so it runs after every other cleanup.
func cleanupCheck(t *testing.T, stateDir, mountRoot string) {
	t.Cleanup(func() {
		e, err := fuseloop.New(stateDir, fuseloop.Options{})
		if err == nil {
			err = frontend.NewAttacher(e).Recover(mountRoot)
		}
		if err != nil {
			t.Errorf("cleanup recover: %v", err)
		}
		assertNothingLeft(t, stateDir, mountRoot)
	})
}

// assertNothingLeft checks /proc/self/mountinfo and `losetup -a` for
// anything under stateDir or mountRoot.
func assertNothingLeft(t *testing.T, dirs ...string) {
	t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-a").CombinedOutput()
	if err != nil {
		t.Fatalf("losetup -a: %v: %s", err, out)
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		for _, l := range strings.Split(string(mi), "\n") {
			if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], d) {
				t.Errorf("left behind mount: %s", l)
			}
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, d) {
				t.Errorf("left behind loop device: %s", l)
			}
		}
	}
}

type env struct {
	stateDir, mountRoot string
	exp                 *fuseloop.Exporter
	att                 *frontend.Attacher
}

func newEnv(t *testing.T, tools ...string) *env {
	t.Helper()
	testenv.RequirePrivileged(t)
	testenv.RequireTools(t, append([]string{"losetup", "blkid", "mount", "umount"}, tools...)...)
	dir := t.TempDir()
	en := &env{stateDir: filepath.Join(dir, "state"), mountRoot: filepath.Join(dir, "mnt")}
	cleanupCheck(t, en.stateDir, en.mountRoot)
	exp, err := fuseloop.New(en.stateDir, fuseloop.Options{Logger: log.New(os.Stderr, "", log.LstdFlags)})
	if err != nil {
		t.Fatal(err)
	}
	en.exp = exp
	en.att = frontend.NewAttacher(exp)
	t.Cleanup(func() {
		if err := exp.Close(); err != nil {
			t.Errorf("exporter close: %v", err)
		}
	})
	return en
}

// withTimeout runs f and fails the test if it takes longer than d (a hang).
func withTimeout(t *testing.T, d time.Duration, what string, f func() error) error {
	t.Helper()
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	select {
	case err := <-ch:
		return err
	case <-time.After(d):
		t.Fatalf("%s: hung for more than %v", what, d)
		return nil
	}
}

var bg = context.Background()

func contextWithCancel() (context.Context, context.CancelFunc) { return context.WithCancel(bg) }

func alignedBuf(n int) []byte {
	b := make([]byte, n+4096)
	off := int(uintptr(unsafe.Pointer(&b[0])) & 4095)
	if off != 0 {
		off = 4096 - off
	}
	return b[off : off+n]
}
