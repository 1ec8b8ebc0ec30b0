package demo

import (
	"fmt"
	"os"

	"github.com/ballast-io/ballast/pool/hostfs"
)

// removeTree lazily unmounts whatever is mounted under dir (the state
// dir's ext4 image, what debootstrap left in a rootfs), then removes it.
func removeTree(dir string) error {
	if _, err := hostfs.UnmountAllUnder(dir); err != nil {
		return fmt.Errorf("unmount under %s: %w", dir, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}
