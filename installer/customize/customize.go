// Package customize mounts the installed system's root partition and
// writes the first-boot data into it as a cloud-init NoCloud seed.
package customize

import (
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

// FindRoot reads the disk's GPT and answers its root partition and the
// disk's sector size.
func FindRoot(disk string) (gpt.Partition, int64, error) {
	f, err := os.Open(disk)
	if err != nil {
		return gpt.Partition{}, 0, fmt.Errorf("customize: %w", err)
	}
	defer f.Close()
	ss := blockdev.SectorSize(f)
	t, err := gpt.Read(f, ss)
	if err != nil {
		return gpt.Partition{}, ss, fmt.Errorf("customize: %s: %w", disk, err)
	}
	p, err := gpt.FindRoot(f, t)
	if err != nil {
		return p, ss, fmt.Errorf("customize: %s: %w", disk, err)
	}
	return p, ss, nil
}

// WithRoot mounts the root partition of disk (ext4) on dir, calls fn with
// dir, then unmounts and syncs, whatever fn answered.
func WithRoot(disk, dir string, fn func(root string) error) (err error) {
	p, ss, err := FindRoot(disk)
	if err != nil {
		return err
	}
	part, release, err := partitionDevice(disk, p, ss)
	if err != nil {
		return err
	}
	defer release()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("customize: %w", err)
	}
	if err := unix.Mount(part, dir, "ext4", 0, ""); err != nil {
		return fmt.Errorf("customize: mounting %s (partition %d of %s, ext4) on %s: %w", part, p.Index, disk, dir, err)
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

// partitionDevice is the kernel's device for partition p of disk once it
// appears; when the kernel shows none (built without GPT support, as some
// VM kernels are), a loop device over the partition's byte range.
func partitionDevice(disk string, p gpt.Partition, ss int64) (string, func(), error) {
	part := PartitionPath(disk, p.Index)
	// BLKRRPART adds the partition to sysfs before it returns; devtmpfs
	// makes the node soon after.
	if _, err := os.Stat("/sys/class/block/" + filepath.Base(part)); err != nil {
		return loopOver(disk, p.First*ss, (p.Last-p.First+1)*ss)
	}
	deadline := time.Now().Add(partitionWait)
	for {
		if _, err := os.Stat(part); err == nil {
			return part, func() {}, nil
		}
		if time.Now().After(deadline) {
			return "", nil, fmt.Errorf("customize: partition %s did not appear in %s", part, partitionWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// loopOver attaches a loop device to size bytes of disk from offset
// (LOOP_CONFIGURE, autoclear: it goes with its last user).
func loopOver(disk string, offset, size int64) (string, func(), error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return "", nil, fmt.Errorf("customize: the kernel shows no partitions of %s and loop is unavailable: %w", disk, err)
	}
	defer ctl.Close()
	n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
	if err != nil {
		return "", nil, fmt.Errorf("customize: no free loop device: %w", err)
	}
	path := "/dev/loop" + strconv.Itoa(n)
	lf, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", nil, fmt.Errorf("customize: %w", err)
	}
	back, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		lf.Close()
		return "", nil, fmt.Errorf("customize: %w", err)
	}
	defer back.Close()
	cfg := unix.LoopConfig{Fd: uint32(back.Fd()), Info: unix.LoopInfo64{Offset: uint64(offset), Sizelimit: uint64(size), Flags: unix.LO_FLAGS_AUTOCLEAR}}
	if err := unix.IoctlLoopConfigure(int(lf.Fd()), &cfg); err != nil {
		lf.Close()
		return "", nil, fmt.Errorf("customize: loop over %s at byte %d: %w", disk, offset, err)
	}
	return path, func() { lf.Close() }, nil
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
