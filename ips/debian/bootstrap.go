package debian

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"osim/ips/kernel"
)

var lookPath = exec.LookPath

// ErrIncomplete: debootstrap finished but left packages unconfigured.
var ErrIncomplete = errors.New("debian: incomplete system")

// logFile is where debootstrap's output of the build goes.
func (o Options) logFile() string { return filepath.Join(o.Out, "debootstrap.log") }

// freshDir empties dir (refusing when something is mounted under it: a
// crashed chroot must be looked at, not deleted through).
func freshDir(dir string) error {
	mounts, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	if len(mounts) > 0 {
		return fmt.Errorf("debian: %s has mounts under it (%s): unmount them first", dir, strings.Join(mounts, ", "))
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("debian: clearing %s: %w", dir, err)
	}
	return os.MkdirAll(dir, 0o755)
}

// cacheFile names the tarball of one suite, archive and package set.
func (o Options) cacheFile() string {
	h := sha256.Sum256([]byte(strings.Join(slices.Concat([]string{o.Suite, "amd64", "minbase", o.Mirror}, o.include()), "\n")))
	return filepath.Join(o.Cache, fmt.Sprintf("debootstrap-%s-amd64-%s.tgz", o.Suite, hex.EncodeToString(h[:6])))
}

// bootstrap runs debootstrap (variant minbase plus the package set) into
// root; with a cache, from the cached tarball, made first if missing. It
// answers whether the packages came from the cache.
func bootstrap(ctx context.Context, o Options, root string) (bool, error) {
	args := []string{"--variant=minbase", "--arch=amd64", "--components=main",
		"--include=" + strings.Join(o.include(), ",")}
	tail := []string{o.Suite, root, o.Mirror}
	if o.Cache == "" {
		o.Log.Info("debootstrap", "suite", o.Suite, "mirror", o.Mirror, "cache", "none")
		return false, debootstrap(ctx, o, o.logFile(), slices.Concat(args, tail)...)
	}
	tarball := o.cacheFile()
	cached := true
	if _, err := os.Stat(tarball); err != nil {
		cached = false
		if err := os.MkdirAll(o.Cache, 0o755); err != nil {
			return false, fmt.Errorf("debian: cache: %w", err)
		}
		work, err := os.MkdirTemp(o.Cache, ".download-")
		if err != nil {
			return false, fmt.Errorf("debian: cache: %w", err)
		}
		defer os.RemoveAll(work)
		tmp := filepath.Join(work, "packages.tgz")
		o.Log.Info("debootstrap: downloading into the cache", "suite", o.Suite, "mirror", o.Mirror, "tarball", tarball)
		if err := debootstrap(ctx, o, filepath.Join(work, "debootstrap.log"), slices.Concat(args, []string{"--make-tarball=" + tmp, o.Suite, filepath.Join(work, "target"), o.Mirror})...); err != nil {
			return false, err
		}
		if err := os.Rename(tmp, tarball); err != nil {
			return false, fmt.Errorf("debian: cache: %w", err)
		}
	}
	o.Log.Info("debootstrap", "suite", o.Suite, "tarball", tarball, "cached", cached)
	return cached, debootstrap(ctx, o, o.logFile(), slices.Concat(args, []string{"--unpack-tarball=" + tarball}, tail)...)
}

// debootstrap runs it in its own process group: cancelling ctx sends the
// group SIGTERM (debootstrap's exit trap unmounts what it mounted in the
// target), then SIGKILL after 30 s. Its output goes to logPath.
func debootstrap(ctx context.Context, o Options, logPath string, args ...string) error {
	logf, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("debian: %w", err)
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, "debootstrap", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	start := time.Now()
	err = cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // stragglers of the group
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("debian: debootstrap interrupted: %w", ctx.Err())
		}
		return fmt.Errorf("debian: debootstrap %s: %w; last lines of %s:\n%s", strings.Join(args, " "), err, logPath, lastLines(logPath, 15))
	}
	o.Log.Info("debootstrap done", "seconds", time.Since(start).Seconds())
	return nil
}

// inChroot runs argv inside root with nothing mounted, in its own
// process group, killed with ctx.
func inChroot(ctx context.Context, root string, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "chroot", append([]string{root}, argv...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive", "HOME=/root"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("debian: in the chroot %s: %s: %w\n%s", root, strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("debian: %w", err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == abs || strings.HasPrefix(mp, abs+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountUnder unmounts everything at or below dir, deepest first,
// lazily when busy: what debootstrap's trap left behind after a kill.
func unmountUnder(dir string) error {
	mounts, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		if err := unix.Unmount(m, 0); err != nil {
			if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
				errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("debian: %v", errs)
	}
	return nil
}

// bootFiles finds the newest kernel under Root/boot and its initramfs.
func bootFiles(res *Result) error {
	k, err := kernel.Newest(filepath.Join(res.Root, "boot"))
	if err != nil {
		return fmt.Errorf("debian: %w", err)
	}
	rel, err := kernel.Release(k)
	if err != nil {
		return fmt.Errorf("debian: %w", err)
	}
	initrd := filepath.Join(res.Root, "boot", "initrd.img-"+rel)
	if _, err := os.Stat(initrd); err != nil {
		return fmt.Errorf("debian: the kernel %s has no initramfs: %w", rel, err)
	}
	res.Kernel, res.Initrd, res.Release = k, initrd, rel
	return nil
}

// packages lists name=version of every installed package, read from the
// tree's dpkg database by the host's dpkg-query.
func packages(ctx context.Context, root string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"),
		"-W", "-f=${db:Status-Abbrev} ${Package}=${Version}\n").Output()
	if err != nil {
		return nil, fmt.Errorf("debian: dpkg-query in %s: %w", root, err)
	}
	var p, broken []string
	for _, line := range strings.Split(string(out), "\n") {
		st, pv, ok := strings.Cut(strings.TrimSpace(line), " ")
		switch {
		case !ok:
		case strings.HasPrefix(st, "ii"):
			p = append(p, strings.TrimSpace(pv))
		case !strings.HasPrefix(st, "r") && !strings.HasPrefix(st, "u") && !strings.HasPrefix(st, "p"):
			broken = append(broken, st+" "+pv) // unpacked, half-configured...
		}
	}
	if len(broken) > 0 {
		// debootstrap only warns when a package cannot be configured
		return nil, fmt.Errorf("%w: packages not configured in %s: %s (a dependency debootstrap could not resolve? name it in Packages)",
			ErrIncomplete, root, strings.Join(broken, ", "))
	}
	sort.Strings(p)
	if len(p) == 0 {
		return nil, fmt.Errorf("debian: no installed package in %s", root)
	}
	return p, nil
}

// du is the tree's allocated bytes, hard links counted once, on root's
// file system only.
func du(root string) (int64, error) {
	var sum int64
	var dev uint64
	if fi, err := os.Stat(root); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			dev = st.Dev
		}
	}
	seen := map[[2]uint64]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			sum += fi.Size()
			return nil
		}
		if st.Dev != dev {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if st.Nlink > 1 && !d.IsDir() {
			k := [2]uint64{st.Dev, st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		sum += st.Blocks * 512
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("debian: measuring %s: %w", root, err)
	}
	return sum, nil
}

func lastLines(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
