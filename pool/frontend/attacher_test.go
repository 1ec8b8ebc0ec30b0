package frontend_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/hostfs"
	"github.com/ballast-io/ballast/pool/spec"
	"github.com/ballast-io/ballast/pool/testenv"
)

func writeFiles(t *testing.T, dir string, n int) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for i := 0; i < n; i++ {
		name := filepath.Join(dir, fmt.Sprintf("f%03d", i))
		data := bytes.Repeat([]byte(fmt.Sprintf("file %d line\n", i)), 1000*(i+1))
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
		files[name] = data
	}
	return files
}

func checkFiles(t *testing.T, files map[string][]byte) {
	t.Helper()
	for name, want := range files {
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: content differs", name)
		}
	}
}

func testAttachRoundTrip(t *testing.T, fstype string, size int64) {
	en := newEnv(t, "mkfs."+fstype)
	mem := block.NewMem(size)
	mp := filepath.Join(en.mountRoot, "v")
	if _, err := en.att.Attach(bg, spec.MustName("rt"), mem, fstype, mp); err != nil {
		t.Fatal(err)
	}
	if src, _ := hostfs.MountSource(mp); !strings.HasPrefix(src, "/dev/loop") {
		t.Fatalf("mount source %q", src)
	}
	// Idempotent.
	if _, err := en.att.Attach(bg, spec.MustName("rt"), mem, fstype, mp); err != nil {
		t.Fatalf("second Attach: %v", err)
	}
	files := writeFiles(t, mp, 20)
	if err := hostfs.Freeze(mp); err != nil {
		t.Fatalf("freeze: %v", err)
	}
	if err := hostfs.Thaw(mp); err != nil {
		t.Fatalf("thaw: %v", err)
	}
	if err := en.att.Detach(bg, spec.MustName("rt"), mp); err != nil {
		t.Fatal(err)
	}
	if err := en.att.Detach(bg, spec.MustName("rt"), mp); err != nil {
		t.Fatalf("second Detach: %v", err)
	}
	assertNothingLeft(t, en.stateDir, en.mountRoot)
	if _, err := os.Stat(filepath.Join(mp, "f000")); err == nil {
		t.Fatal("file visible after detach")
	}
	// Re-attach: the existing filesystem is mounted, not reformatted.
	if _, err := en.att.Attach(bg, spec.MustName("rt"), mem, fstype, mp); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, files)
	if err := en.att.Detach(bg, spec.MustName("rt"), mp); err != nil {
		t.Fatal(err)
	}
}

func TestAttachExt4(t *testing.T) { testAttachRoundTrip(t, "ext4", 128<<20) }
func TestAttachXFS(t *testing.T)  { testAttachRoundTrip(t, "xfs", 320<<20) }

func TestAttachFailureLeavesNothing(t *testing.T) {
	en := newEnv(t, "mkfs.xfs")
	mp := filepath.Join(en.mountRoot, "v")
	// Unsupported filesystem type: rejected before anything is set up.
	if _, err := en.att.Attach(bg, spec.MustName("bad"), block.NewMem(64<<20), "bogusfs", mp); err == nil {
		t.Fatal("Attach with a bogus fstype succeeded")
	}
	assertNothingLeft(t, en.stateDir, en.mountRoot)
	// mkfs fails after the export exists: XFS needs at least 300 MB.
	_, err := en.att.Attach(bg, spec.MustName("bad"), block.NewMem(64<<20), "xfs", mp)
	if err == nil {
		t.Fatal("Attach of a too-small xfs succeeded")
	}
	t.Logf("expected failure: %v", err)
	assertNothingLeft(t, en.stateDir, en.mountRoot)
	// A blank volume mounted read-only cannot be formatted: fails in mount.
	// And a canceled context fails before doing anything.
	ctx, cancel := contextWithCancel()
	cancel()
	if _, err := en.att.Attach(ctx, spec.MustName("bad"), block.NewMem(64<<20), "ext4", mp); err == nil {
		t.Fatal("Attach with a canceled context succeeded")
	}
	assertNothingLeft(t, en.stateDir, en.mountRoot)
	// The name is usable afterwards.
	if _, err := en.att.Attach(bg, spec.MustName("bad"), block.NewMem(64<<20), "ext4", mp); err != nil {
		t.Fatal(err)
	}
	if err := en.att.Detach(bg, spec.MustName("bad"), mp); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, en.stateDir, en.mountRoot)
}

func TestFioSmoke(t *testing.T) {
	en := newEnv(t, "mkfs.ext4", "fio")
	mp := filepath.Join(en.mountRoot, "fio")
	if _, err := en.att.Attach(bg, spec.MustName("fio"), block.NewMem(256<<20), "ext4", mp); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := en.att.Detach(bg, spec.MustName("fio"), mp); err != nil {
			t.Error(err)
		}
	})
	fio, _ := testenv.LookTool("fio")
	out, err := exec.Command(fio, "--name=smoke", "--directory="+mp, "--size=48M", "--bs=4k",
		"--rw=randwrite", "--ioengine=libaio", "--iodepth=16", "--direct=1",
		"--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--verify_state_save=0", "--runtime=10").CombinedOutput()
	if err != nil {
		t.Fatalf("fio: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "err= 0") {
		t.Fatalf("fio reported errors:\n%s", out)
	}
	out, err = exec.Command(fio, "--name=seq", "--directory="+mp, "--size=64M", "--bs=1M",
		"--rw=write", "--ioengine=libaio", "--iodepth=8", "--direct=1", "--fsync_on_close=1",
		"--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--verify_state_save=0").CombinedOutput()
	if err != nil {
		t.Fatalf("fio: %v\n%s", err, out)
	}
}

// TestCrashRecovery kills the daemon serving a mounted ext4 volume, checks
// that I/O fails with EIO at once, recovers, and remounts with the
// journal replayed.
func TestCrashRecovery(t *testing.T) {
	en := newEnv(t, "mkfs.ext4", "fsck")
	file := filepath.Join(filepath.Dir(en.stateDir), "backing.img")
	const size = 128 << 20
	c := startChild(t, en.stateDir, file, "crash", size)
	mp := filepath.Join(en.mountRoot, "crash")
	if err := hostfs.FormatAndMount(c.devPath, mp, "ext4", nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hostfs.Unmount(mp) })
	files := writeFiles(t, mp, 5)
	durable := filepath.Join(mp, "durable")
	want := bytes.Repeat([]byte("fsynced\n"), 4096)
	f, err := os.Create(durable)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(want); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// Make the earlier files durable too (a journal commit), but leave the
	// filesystem not cleanly unmounted.
	unix.Sync()

	c.kill() // kill -9
	killed := time.Now()

	// New writes + fsync must fail with EIO (not hang).
	err = withTimeout(t, 20*time.Second, "write+fsync after daemon death", func() error {
		f, err := os.Create(filepath.Join(mp, "after-crash"))
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := f.Write(want); err != nil {
			return err
		}
		return f.Sync()
	})
	t.Logf("write+fsync after kill -9: %v (after %v)", err, time.Since(killed))
	if !errors.Is(err, unix.EIO) && !errors.Is(err, unix.EROFS) {
		t.Fatalf("write+fsync after daemon death: err = %v, want EIO", err)
	}
	// Uncached reads fail with EIO too.
	err = withTimeout(t, 20*time.Second, "O_DIRECT read after daemon death", func() error {
		f, err := os.OpenFile(durable, os.O_RDONLY|unix.O_DIRECT, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.ReadAt(alignedBuf(4096), 0)
		return err
	})
	t.Logf("O_DIRECT read after kill -9: %v", err)
	if !errors.Is(err, unix.EIO) {
		t.Fatalf("read after daemon death: err = %v, want EIO", err)
	}

	// The next daemon starts: Recover cleans up everything.
	start := time.Now()
	if err := en.att.Recover(en.mountRoot); err != nil {
		t.Fatalf("recover: %v", err)
	}
	assertNothingLeft(t, en.stateDir, en.mountRoot)

	c2 := startChild(t, en.stateDir, file, "crash", size)
	if err := hostfs.FormatAndMount(c2.devPath, mp, "ext4", nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("recover + new daemon + remount took %v", time.Since(start))
	got, err := os.ReadFile(durable)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("fsynced data after recovery: err %v, equal %v", err, bytes.Equal(got, want))
	}
	checkFiles(t, files)
	if err := hostfs.Unmount(mp); err != nil {
		t.Fatal(err)
	}
	// Clean shutdown of the second daemon.
	c2.stdin.Close()
	if err := withTimeout(t, 20*time.Second, "child exit", c2.cmd.Wait); err != nil {
		t.Fatalf("child exit: %v", err)
	}
	assertNothingLeft(t, en.stateDir, en.mountRoot)
}

func TestUnmountAllUnderAndIdempotentUnmount(t *testing.T) {
	testenv.RequirePrivileged(t)
	root := t.TempDir()
	for _, d := range []string{"a", "a/b", "c"} {
		p := filepath.Join(root, d)
		os.MkdirAll(p, 0o755)
		if err := unix.Mount("tmpfs", p, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Unmount(p, unix.MNT_DETACH) })
	}
	mps, err := hostfs.MountsUnder(root)
	if err != nil || len(mps) != 3 || mps[0] != filepath.Join(root, "a/b") {
		t.Fatalf("MountsUnder = %v, %v", mps, err)
	}
	// Busy mount: Unmount falls back to lazy.
	f, err := os.Create(filepath.Join(root, "c", "busy"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := hostfs.Unmount(filepath.Join(root, "c")); err != nil {
		t.Fatal(err)
	}
	if err := hostfs.Unmount(filepath.Join(root, "c")); err != nil {
		t.Fatal(err)
	}
	if err := hostfs.Unmount(filepath.Join(root, "does-not-exist")); err != nil {
		t.Fatal(err)
	}
	done, err := hostfs.UnmountAllUnder(root)
	if err != nil || len(done) != 2 {
		t.Fatalf("UnmountAllUnder = %v, %v", done, err)
	}
	assertNothingLeft(t, root)
}
