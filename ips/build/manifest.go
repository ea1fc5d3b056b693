package build

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"

	"osim/controlplane/api"
	"osim/ips/recipe"
)

// ManifestName is the manifest's file name in an output folder.
const ManifestName = "manifest.json"

// Manifest records what a build made and from what. Its Digest is the
// sha256 of its canonical form (json.Marshal) with Digest emptied: the
// same recipe over the same inputs and tools gives the same digest. It
// holds no time stamp and no secret.
type Manifest struct {
	Tool        string `json:"tool"`
	ToolVersion string `json:"tool_version"`
	Name        string `json:"name"`
	Version     string `json:"version"`
	// Kind and Format as registered: os + disk|installer, or boot.
	Kind   string `json:"kind"`
	Format string `json:"format,omitempty"`
	// Files are the folder's files, as registered.
	Files      []api.ImageFile      `json:"files"`
	Cmdline    string               `json:"cmdline,omitempty"`
	Defaults   map[string]string    `json:"defaults,omitempty"`
	Parameters []recipe.Parameter   `json:"parameters,omitempty"` // secret defaults dropped
	Procedures []api.Procedure      `json:"procedures,omitempty"`
	Install    *api.InstallSettings `json:"install,omitempty"`
	// Recipe is the recipe as given, without secrets.
	Recipe recipe.Recipe `json:"recipe"`
	// Tools: Debian package → version of the tools the build ran.
	Tools map[string]string `json:"tools,omitempty"`
	// Inputs are the files the build read, by content.
	Inputs []Input `json:"inputs,omitempty"`
	// Packages (debian kind): name=version of every installed package.
	Packages []string `json:"packages,omitempty"`
	// Disk (disk, debian and rootfs kinds): the partition table found.
	PartitionTable string `json:"partition_table,omitempty"`
	// KernelRelease of the kernel booted (when known).
	KernelRelease string `json:"kernel_release,omitempty"`
	Digest        string `json:"digest"`
}

// Input is one input by content. A folder's digest covers every path,
// mode, link target and file content under it (sorted).
type Input struct {
	Name   string `json:"name"` // the recipe key that named it
	Path   string `json:"path"` // as written in the recipe
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// digest is the manifest's content address.
func (m Manifest) digest() (string, error) {
	m.Digest = ""
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("build: manifest: %w", err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), nil
}

// ReadManifest reads dir's manifest.json.
func ReadManifest(dir string) (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return m, fmt.Errorf("build: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("build: %s: %w", filepath.Join(dir, ManifestName), err)
	}
	return m, nil
}

func writeManifest(dir string, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("build: manifest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestName), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	return nil
}

// ToolVersion is osim-ips's version from the binary's build info: the
// module version, else the VCS revision (+"-dirty"), else "devel".
func ToolVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "-dirty"
		}
	}
	if rev == "" {
		return "devel"
	}
	return rev + dirty
}

// Debian packages of the tools each kind runs.
var kindTools = map[string][]string{
	recipe.KindDebian: {"debootstrap", "e2fsprogs", "dosfstools", "mtools", "syslinux", "syslinux-common", "systemd-boot-efi"},
	recipe.KindRootfs: {"e2fsprogs", "dosfstools", "mtools", "syslinux", "syslinux-common", "systemd-boot-efi"},
	recipe.KindDisk:   {"qemu-utils"},
	recipe.KindBoot:   {"busybox-static", "ipxe"},
}

// toolVersions asks dpkg for the version of each package ("" when not
// installed or no dpkg).
func toolVersions(pkgs []string) map[string]string {
	if len(pkgs) == 0 {
		return nil
	}
	v := map[string]string{}
	for _, p := range pkgs {
		out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", p).Output()
		if err != nil {
			v[p] = "unknown"
			continue
		}
		v[p] = strings.TrimSpace(string(out))
	}
	return v
}

// hashFile describes one file.
func hashFile(path string) (sha string, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("build: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("build: hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// hashTree digests a folder: every entry's path, mode, owner, link
// target and contents, in path order.
func hashTree(dir string) (string, int64, error) {
	h := sha256.New()
	var total int64
	var paths []string
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	})
	if err != nil {
		return "", 0, fmt.Errorf("build: %s: %w", dir, err)
	}
	slices.Sort(paths)
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			return "", 0, fmt.Errorf("build: %w", err)
		}
		rel, _ := filepath.Rel(dir, p)
		uid, gid := owner(fi)
		fmt.Fprintf(h, "%s\x00%o\x00%d:%d\x00", rel, fi.Mode(), uid, gid)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			t, _ := os.Readlink(p)
			fmt.Fprintf(h, "%s\x00", t)
		case fi.Mode().IsRegular():
			sha, n, err := hashFile(p)
			if err != nil {
				return "", 0, err
			}
			fmt.Fprintf(h, "%s\x00", sha)
			total += n
		}
	}
	return hex.EncodeToString(h.Sum(nil)), total, nil
}
