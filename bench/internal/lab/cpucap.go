package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// CPUCap holds the server to a share of one CPU with the CFS bandwidth
// controller (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us). On a 2-CPU host
// with the server pinned to one CPU and perfdhcp to the other, an uncapped
// server answers faster than perfdhcp can receive: both servers then stop
// at perfdhcp's ceiling and the bench measures perfdhcp. Capped, the
// server is the bottleneck and the rate measures what it does with the
// CPU it has.
type CPUCap struct {
	Share float64 // of one CPU
	dir   string
	v2    bool
}

// capPeriodUS is the CFS period: short, so a capped server is throttled in
// slices of a few milliseconds, not a tenth of a second at a time.
const capPeriodUS = 10000

// NewCPUCap makes the cgroup name with share of one CPU.
func NewCPUCap(name string, share float64) (*CPUCap, error) {
	if share <= 0 || share > 1 {
		return nil, fmt.Errorf("lab: CPU share %.2f is not in (0, 1]", share)
	}
	quota := strconv.Itoa(int(share * capPeriodUS))
	period := strconv.Itoa(capPeriodUS)
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		c := &CPUCap{Share: share, dir: filepath.Join("/sys/fs/cgroup", name), v2: true}
		// The parent must hand the cpu controller down.
		if err := os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("+cpu"), 0); err != nil {
			return nil, fmt.Errorf("lab: enable the cpu controller: %w", err)
		}
		if err := os.Mkdir(c.dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("lab: cgroup: %w", err)
		}
		if err := os.WriteFile(filepath.Join(c.dir, "cpu.max"), []byte(quota+" "+period), 0); err != nil {
			c.Close()
			return nil, fmt.Errorf("lab: cgroup cpu.max: %w", err)
		}
		return c, nil
	}
	c := &CPUCap{Share: share, dir: filepath.Join("/sys/fs/cgroup/cpu", name)}
	if err := os.Mkdir(c.dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("lab: cgroup (v1 cpu controller): %w", err)
	}
	for _, kv := range [][2]string{{"cpu.cfs_period_us", period}, {"cpu.cfs_quota_us", quota}} {
		if err := os.WriteFile(filepath.Join(c.dir, kv[0]), []byte(kv[1]), 0); err != nil {
			c.Close()
			return nil, fmt.Errorf("lab: cgroup %s: %w", kv[0], err)
		}
	}
	return c, nil
}

// Add moves pid (all its threads) into the cgroup; nil c does nothing.
func (c *CPUCap) Add(pid int) error {
	if c == nil {
		return nil
	}
	if err := os.WriteFile(filepath.Join(c.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		return fmt.Errorf("lab: move %d into %s: %w", pid, c.dir, err)
	}
	return nil
}

func (c *CPUCap) String() string {
	if c == nil {
		return "uncapped"
	}
	return fmt.Sprintf("%.0f%% of one CPU (%d ms period)", c.Share*100, capPeriodUS/1000)
}

// Close removes the cgroup (its processes must have ended).
func (c *CPUCap) Close() error {
	if c == nil {
		return nil
	}
	return os.Remove(c.dir)
}
