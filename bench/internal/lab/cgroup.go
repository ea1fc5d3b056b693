package lab

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"osim/internal/testlab"
)

// cgroupPrefix names the cgroups the bench creates; the creator's pid
// follows, so a dead run's groups can be found and removed.
const cgroupPrefix = "osim-tftpbench-"

// Cgroup is a cgroup v2 group a peer is started in, used for one thing:
// its CPU time. cgroup v2 counts every task that ever ran in the group,
// including forked children that ended without their parent reaping them
// (tftpd-hpa's transfers), which /proc cannot. It is created below the
// bench's own group, so whatever limits apply to the bench apply to it;
// it enables no controller.
type Cgroup struct {
	dir string
	fd  int
}

// NewCgroup creates the group name (made unique with the bench's pid),
// or fails where cgroup v2 is not mounted or not writable.
func NewCgroup(name string) (*Cgroup, error) {
	parent, err := ownCgroupDir()
	if err != nil {
		return nil, err
	}
	removeStaleCgroups(parent)
	dir := filepath.Join(parent, fmt.Sprintf("%s%d-%s", cgroupPrefix, os.Getpid(), name))
	if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
		return nil, fmt.Errorf("lab: create cgroup %s: %w", dir, err)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("lab: open cgroup %s: %w", dir, err)
	}
	return &Cgroup{dir: dir, fd: fd}, nil
}

// FD is the group's descriptor, for SysProcAttr.CgroupFD: the child starts
// inside the group (clone3 CLONE_INTO_CGROUP), before it can fork.
func (c *Cgroup) FD() int { return c.fd }

// CPU is the group's total CPU time so far.
func (c *Cgroup) CPU() (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, "cpu.stat"))
	if err != nil {
		return 0, fmt.Errorf("lab: read cpu.stat of %s: %w", c.dir, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("lab: cpu.stat of %s: %q: %w", c.dir, line, err)
			}
			return time.Duration(us) * time.Microsecond, nil
		}
	}
	return 0, fmt.Errorf("lab: no usage_usec in cpu.stat of %s", c.dir)
}

// Remove kills what is left in the group and deletes it.
func (c *Cgroup) Remove() error {
	unix.Close(c.fd)
	return killAndRemove(c.dir)
}

func killAndRemove(dir string) error {
	os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	var err error
	for range 50 { // the kernel empties the group asynchronously
		if err = os.Remove(dir); err == nil || os.IsNotExist(err) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("lab: remove cgroup %s: %w", dir, err)
}

// removeStaleCgroups deletes groups of earlier runs whose pid is gone.
func removeStaleCgroups(parent string) {
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), cgroupPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || testlab.Alive(pid) {
			continue
		}
		slog.Info("removing cgroup of an earlier run", "cgroup", e.Name())
		killAndRemove(filepath.Join(parent, e.Name()))
	}
}

// ownCgroupDir is this process's cgroup v2 folder.
func ownCgroupDir() (string, error) {
	mount, err := cgroup2Mount()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("lab: read /proc/self/cgroup: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return filepath.Join(mount, p), nil
		}
	}
	return "", fmt.Errorf("lab: no cgroup v2 entry in /proc/self/cgroup")
}

func cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("lab: read mountinfo: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// mountinfo(5): fields ... mount point (5th) ... " - " fstype ...
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		if f := strings.Fields(pre); len(f) >= 5 {
			return f[4], nil
		}
	}
	return "", fmt.Errorf("lab: cgroup v2 is not mounted")
}
