package diskimage

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"osim/ips/gpt"
)

// buildRoot makes an ext4 file system of size bytes in file from
// s.RootDir with mke2fs -d, then sets every inode's times to Epoch with
// debugfs: mke2fs copies atime and ctime from the tree, which reading it
// and the build machine's clock change.
func buildRoot(ctx context.Context, s Spec, file string, size int64) error {
	if err := truncate(file, size); err != nil {
		return err
	}
	uuid := gpt.DerivedGUID(s.Seed + "/rootfs").String()
	if err := run(ctx, s.Tools.Mke2fs, "-q", "-F", "-t", "ext4", "-b", "4096", "-L", s.RootLabel, "-U", uuid,
		"-E", "hash_seed="+uuid+",root_owner=0:0", "-d", s.RootDir, file); err != nil {
		return err
	}
	script, err := clampTimes(s.RootDir, filepath.Join(filepath.Dir(file), "debugfs.cmds"))
	if err != nil {
		return err
	}
	return run(ctx, s.Tools.Debugfs, "-w", "-f", script, file)
}

// clampTimes writes a debugfs script setting every path's times to Epoch.
func clampTimes(root, script string) (string, error) {
	var b strings.Builder
	t := "@" + strconv.Itoa(Epoch)
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		name := "/" + filepath.ToSlash(rel)
		if rel == "." {
			name = "/"
		}
		// debugfs reads a double-quoted argument as it is (spaces and
		// backslashes too: systemd's unit names hold \x2d); it has no
		// escape for a quote or a newline.
		if strings.ContainsAny(name, "\"\n") {
			return fmt.Errorf("path %q holds a double quote or newline, which this builder does not pass to debugfs", name)
		}
		for _, f := range []string{"atime", "ctime", "mtime", "crtime"} {
			fmt.Fprintf(&b, "sif \"%s\" %s %s\n", name, f, t)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("diskimage: root %s: %w", root, err)
	}
	for _, f := range []string{"atime", "ctime", "mtime", "crtime"} {
		fmt.Fprintf(&b, "sif /lost+found %s %s\n", f, t)
	}
	return script, os.WriteFile(script, []byte(b.String()), 0o644)
}
