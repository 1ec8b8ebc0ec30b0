package demo

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// WorkloadImageRepo is the repository of the workload image: the static
// ballast binary (and busybox, when the host has a static one, for a
// shell) in an otherwise empty image. No registry is involved: it is
// imported on the host and loaded into every node.
const WorkloadImageRepo = "ballast-demo-workload"

// busyboxPaths are where a static busybox may be on the host.
var busyboxPaths = []string{"/bin/busybox", "/usr/bin/busybox"}

// busyboxApplets get a symlink in the workload image's /bin.
var busyboxApplets = []string{"sh", "cat", "echo", "ls", "sleep", "sync", "test", "mkdir", "rm", "sha256sum", "stat", "wc"}

// CheckStatic returns an error unless path is a statically linked ELF
// executable: the nodes and the workload image have no C library to lend
// it.
func CheckStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("check %s is a static executable: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked; build it with CGO_ENABLED=0 (make demo-up does)", path)
		}
	}
	return nil
}

// staticBusybox returns the host's busybox when it is statically linked.
func staticBusybox() string {
	for _, p := range busyboxPaths {
		if CheckStatic(p) == nil {
			return p
		}
	}
	return ""
}

// workloadTar writes the workload image's filesystem as a tar stream.
func workloadTar(w io.Writer, binary, busybox string) error {
	tw := tar.NewWriter(w)
	mtime := time.Unix(0, 0)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: mtime})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mtime}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	copyFile := func(name, src string) error {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: st.Size(), ModTime: mtime}); err != nil {
			return err
		}
		_, err = io.Copy(tw, f)
		return err
	}
	for _, d := range []string{"bin", "etc", "usr", "usr/local", "usr/local/bin", "data", "var", "proc", "sys", "dev"} {
		if err := dir(d, 0o755); err != nil {
			return err
		}
	}
	if err := dir("tmp", 0o1777); err != nil {
		return err
	}
	if err := file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")); err != nil {
		return err
	}
	if err := file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")); err != nil {
		return err
	}
	if err := file("etc/nsswitch.conf", 0o644, []byte("hosts: files dns\n")); err != nil {
		return err
	}
	if err := copyFile("usr/local/bin/ballast", binary); err != nil {
		return fmt.Errorf("add %s: %w", binary, err)
	}
	if busybox != "" {
		if err := copyFile("bin/busybox", busybox); err != nil {
			return fmt.Errorf("add %s: %w", busybox, err)
		}
		for _, a := range busyboxApplets {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: mtime}); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

// hashFiles hashes the contents of the named files (missing ones as empty).
func hashFiles(paths ...string) (string, error) {
	h := sha256.New()
	for _, p := range paths {
		fmt.Fprintf(h, "%s\n", filepath.Base(p))
		if p == "" {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// EnsureWorkloadImage imports the workload image for binary on the host
// unless it exists, and returns its tag.
func EnsureWorkloadImage(ctx context.Context, cfg Config, binary string) (string, error) {
	if err := CheckStatic(binary); err != nil {
		return "", err
	}
	bb := staticBusybox()
	sum, err := hashFiles(binary, bb)
	if err != nil {
		return "", fmt.Errorf("workload image: %w", err)
	}
	tag := WorkloadImageRepo + ":" + sum
	if _, err := docker(ctx, "image", "inspect", "--format", "{{.Id}}", tag); err == nil {
		return tag, nil
	}
	var buf bytes.Buffer
	if err := workloadTar(&buf, binary, bb); err != nil {
		return "", fmt.Errorf("workload image %s: %w", tag, err)
	}
	if _, err := run(ctx, &buf, "docker", "import", "--change", `ENV PATH=/usr/local/bin:/bin`, "--change", `CMD ["/usr/local/bin/ballast"]`, "-", tag); err != nil {
		return "", fmt.Errorf("workload image %s: %w", tag, err)
	}
	cfg.Logger.Info("demo: workload image imported", "image", tag, "busybox", bb != "")
	return tag, nil
}

// loadImage copies image from the host's engine into every node's
// (docker save | docker exec -i NODE docker load), the nodes in parallel.
func loadImage(ctx context.Context, cfg Config, image string, nodes []string) error {
	saved := filepath.Join(cfg.StateDir, "image.tar")
	f, err := os.Create(saved)
	if err != nil {
		return fmt.Errorf("save %s: %w", image, err)
	}
	defer os.Remove(saved)
	defer f.Close()
	if _, err := run(ctx, nil, "docker", "save", "-o", saved, image); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in, err := os.Open(saved)
			if err != nil {
				errs[i] = err
				return
			}
			defer in.Close()
			if _, err := run(ctx, in, "docker", "exec", "-i", n, "docker", "load", "-q"); err != nil {
				errs[i] = fmt.Errorf("load %s into %s: %w", image, n, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
