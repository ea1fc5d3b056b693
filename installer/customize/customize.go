// Package customize mounts the installed system's root partition and
// writes the first-boot data into it as a cloud-init NoCloud seed.
package customize

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"osim/controlplane/api"
	"osim/installer/blockdev"
	"osim/installer/gpt"
)

// SeedDir is where cloud-init's NoCloud datasource looks on the root.
const SeedDir = "var/lib/cloud/seed/nocloud"

// partitionWait bounds the wait for the kernel (devtmpfs) to show the
// partition's device node after BLKRRPART.
const partitionWait = 10 * time.Second

// PartitionPath names partition n of disk as the kernel does: vda → vda2,
// nvme0n1 and loop0 → nvme0n1p2 and loop0p2.
func PartitionPath(disk string, n int) string {
	if c := disk[len(disk)-1]; c >= '0' && c <= '9' {
		return disk + "p" + strconv.Itoa(n)
	}
	return disk + strconv.Itoa(n)
}

// FindRoot reads the disk's GPT and answers its root partition's device path.
func FindRoot(disk string) (string, gpt.Partition, error) {
	f, err := os.Open(disk)
	if err != nil {
		return "", gpt.Partition{}, fmt.Errorf("customize: %w", err)
	}
	defer f.Close()
	t, err := gpt.Read(f, blockdev.SectorSize(f))
	if err != nil {
		return "", gpt.Partition{}, fmt.Errorf("customize: %s: %w", disk, err)
	}
	p, err := gpt.FindRoot(f, t)
	if err != nil {
		return "", p, fmt.Errorf("customize: %s: %w", disk, err)
	}
	return PartitionPath(disk, p.Index), p, nil
}

// WithRoot mounts the root partition of disk (ext4) on dir, calls fn with
// dir, then unmounts and syncs, whatever fn answered.
func WithRoot(disk, dir string, fn func(root string) error) (err error) {
	part, _, err := FindRoot(disk)
	if err != nil {
		return err
	}
	if err := waitFor(part); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("customize: %w", err)
	}
	if err := unix.Mount(part, dir, "ext4", 0, ""); err != nil {
		return fmt.Errorf("customize: mounting %s (ext4) on %s: %w", part, dir, err)
	}
	defer func() {
		uerr := unix.Unmount(dir, 0)
		unix.Sync()
		if uerr != nil && err == nil {
			err = fmt.Errorf("customize: unmounting %s: %w", dir, uerr)
		}
	}()
	return fn(dir)
}

func waitFor(path string) error {
	deadline := time.Now().Add(partitionWait)
	for {
		_, err := os.Stat(path)
		if err == nil || !errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("customize: partition %s did not appear: %w", path, err)
			}
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WriteSeed writes fb as meta-data and user-data (0600) under root's
// SeedDir (directories 0755). Empty meta-data still gets a file: NoCloud
// needs both.
func WriteSeed(root string, fb api.FirstBoot) error {
	dir := filepath.Join(root, SeedDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("customize: %w", err)
	}
	for name, body := range map[string]string{"meta-data": fb.MetaData, "user-data": fb.UserData} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			return fmt.Errorf("customize: writing %s: %w", p, err)
		}
		if err := os.Chmod(p, 0o600); err != nil { // an existing file keeps its mode otherwise
			return fmt.Errorf("customize: %w", err)
		}
	}
	return nil
}
