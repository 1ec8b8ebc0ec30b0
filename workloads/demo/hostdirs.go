package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

const ext4Magic = 0xEF53

// Host paths under Config.StateDir.
func (c Config) shareDir() string           { return filepath.Join(c.StateDir, "share") }
func (c Config) nodesDir() string           { return filepath.Join(c.StateDir, "nodes") }
func (c Config) diskImage() string          { return filepath.Join(c.StateDir, "nodes.ext4") }
func (c Config) nodeDir(i int) string       { return filepath.Join(c.nodesDir(), fmt.Sprintf("node%d", i)) }
func (c Config) secretFile() string         { return filepath.Join(c.shareDir(), "secret") }
func (c Config) sharedBinary() string       { return filepath.Join(c.shareDir(), "ballast") }
func (c Config) entrypointFile() string     { return filepath.Join(c.shareDir(), "entrypoint.sh") }
func (c Config) nodeDockerDir(i int) string { return filepath.Join(c.nodeDir(i), "docker") }
func (c Config) nodeBallastDir(i int) string {
	return filepath.Join(c.nodeDir(i), "ballast")
}

// prepareHost makes the state dir: the shared files every node mounts
// read-only at ShareDir (a copy of the ballast binary, so rebuilding it on
// the host does not change a running demo; a fresh cluster secret; the
// entrypoint) and one directory per node for its /var/lib/docker and
// /var/lib/ballast, on ext4 (overlay2 inside a node needs it; when the
// state dir is not on ext4, on an ext4 image mounted through a loop
// device).
func prepareHost(ctx context.Context, cfg Config) error {
	for _, d := range []string{cfg.shareDir(), cfg.nodesDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("demo state dir: %w", err)
		}
	}
	if err := ensureExt4(ctx, cfg); err != nil {
		return err
	}
	for i := 1; i <= cfg.Nodes; i++ {
		for _, d := range []string{cfg.nodeDockerDir(i), cfg.nodeBallastDir(i)} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("demo node dir: %w", err)
			}
		}
	}
	if err := copyFile(cfg.Binary, cfg.sharedBinary(), 0o755); err != nil {
		return fmt.Errorf("demo: copy the ballast binary: %w", err)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("demo: cluster secret: %w", err)
	}
	if err := os.WriteFile(cfg.secretFile(), []byte(hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
		return fmt.Errorf("demo: cluster secret: %w", err)
	}
	if err := os.WriteFile(cfg.entrypointFile(), []byte(entrypointScript), 0o755); err != nil {
		return fmt.Errorf("demo: entrypoint: %w", err)
	}
	return nil
}

// ensureExt4 makes sure the nodes dir is on ext4.
func ensureExt4(ctx context.Context, cfg Config) error {
	var st unix.Statfs_t
	if err := unix.Statfs(cfg.nodesDir(), &st); err != nil {
		return fmt.Errorf("demo: statfs %s: %w", cfg.nodesDir(), err)
	}
	if st.Type == ext4Magic {
		return nil
	}
	img := cfg.diskImage()
	size := int64(cfg.Nodes) * (4 << 30)
	cfg.Logger.Info("demo: state dir is not on ext4; making an ext4 image for the nodes' /var/lib/docker",
		"image", img, "size_gib", size>>30)
	f, err := os.Create(img)
	if err != nil {
		return fmt.Errorf("demo: ext4 image: %w", err)
	}
	err = f.Truncate(size)
	f.Close()
	if err != nil {
		return fmt.Errorf("demo: ext4 image: %w", err)
	}
	if _, err := run(ctx, nil, "mkfs.ext4", "-q", "-F", img); err != nil {
		return fmt.Errorf("demo: ext4 image: %w", err)
	}
	// mount -o loop sets autoclear: unmounting frees the loop device.
	if _, err := run(ctx, nil, "mount", "-o", "loop", img, cfg.nodesDir()); err != nil {
		return fmt.Errorf("demo: ext4 image: %w", err)
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
