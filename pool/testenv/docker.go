package testenv

import (
	"archive/tar"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RandomID returns 8 random hex digits, for names of a test's images,
// volumes and labels.
func RandomID(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// LockFile holds an exclusive flock on path (made, with its directory, if
// missing) until the test ends, waiting for another test process holding
// it; what names what the lock guards, for the log line while waiting.
func LockFile(t testing.TB, path, what string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); errors.Is(err, syscall.EWOULDBLOCK) {
		t.Logf("waiting for another test process to finish with %s (%s)", what, path)
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
	}
	if err != nil {
		f.Close()
		t.Fatalf("lock %s: %v", path, err)
	}
	t.Cleanup(func() { f.Close() }) // releases the lock
}

// IsStatic reports whether the ELF executable at path has no program
// interpreter (is statically linked).
func IsStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// ImportBusybox imports, with docker import (so the test needs no
// registry), a one-layer image tagged tag from the host's static busybox
// (Debian's busybox-static): bin/busybox and a symlink per applet, with
// empty etc, tmp and data. It skips (or fails) the test without a static
// busybox, fails it if busybox lacks one of the need applets, removes the
// image when the test ends and returns its ID (a service naming an image
// by ID runs it without asking a registry).
func ImportBusybox(t testing.TB, tag string, need ...string) string {
	t.Helper()
	RequireTools(t, "busybox")
	bb, _ := LookTool("busybox")
	if bb, _ = filepath.EvalSymlinks(bb); !IsStatic(bb) {
		SkipOrFail(t, "%s is dynamically linked; the test image needs a static busybox (apt-get install busybox-static, or deploy/install-deps.sh)", bb)
	}
	list, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatalf("%s --list: %v", bb, err)
	}
	applets := strings.Fields(string(list))
	for _, a := range need {
		if !slices.Contains(applets, a) {
			t.Fatalf("%s has no %s applet", bb, a)
		}
	}
	tarPath := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := writeRootfs(tarPath, bb, applets); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("docker", "import", "--message", "ballast test image (busybox-static)", tarPath, tag).Output()
	if err != nil {
		t.Fatalf("docker import: %v", err)
	}
	imageID := strings.TrimSpace(string(out))
	if !strings.HasPrefix(imageID, "sha256:") {
		t.Fatalf("docker import printed %q, not an image ID", imageID)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("docker", "rmi", "-f", tag).CombinedOutput(); err != nil {
			t.Errorf("remove test image %s: %v\n%s", tag, err, out)
		}
	})
	return imageID
}

// writeRootfs writes a tar of a root filesystem with busybox as
// /bin/busybox and every applet a symlink to it.
func writeRootfs(path, busybox string, applets []string) error {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	now := time.Now()
	for _, dir := range []struct {
		name string
		mode int64
	}{{"bin/", 0o755}, {"etc/", 0o755}, {"tmp/", 0o1777}, {"data/", 0o755}} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir.name, Mode: dir.mode, ModTime: now}); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin)), ModTime: now}); err != nil {
		return err
	}
	if _, err := tw.Write(bin); err != nil {
		return err
	}
	for _, a := range applets {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: now}); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}
