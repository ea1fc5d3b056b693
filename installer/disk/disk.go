// Package disk picks the disk an image is written to by a plan's
// api.DiskRule. It refuses rather than guesses: no match, several matches,
// or a disk smaller than the image are errors naming the rule and the
// disks it saw.
package disk

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"osim/controlplane/api"
	"osim/installer/inventory"
)

var (
	// ErrNoDisk: no disk matches the rule.
	ErrNoDisk = errors.New("no disk matches")
	// ErrAmbiguous: the rule matches several disks.
	ErrAmbiguous = errors.New("several disks match")
	// ErrTooSmall: the matching disk is smaller than the image.
	ErrTooSmall = errors.New("disk too small")
)

// Choose returns the disk rule picks among disks for an image of need
// bytes (decompressed). devRoot is where /dev lives ("/dev" on a target):
// a rule's path may be a symlink under it (/dev/disk/by-id/...).
//
// Serial or path must match exactly one disk. Otherwise, size bounds
// narrow the non-removable disks and the smallest that fits wins; two of
// that same size are refused.
func Choose(disks []inventory.Disk, rule api.DiskRule, need int64, devRoot string) (inventory.Disk, error) {
	cands := disks
	if rule.Serial != "" {
		cands = filter(cands, func(d inventory.Disk) bool { return d.Serial == rule.Serial })
	}
	if rule.Path != "" {
		want, err := resolve(rule.Path, devRoot)
		if err != nil {
			return inventory.Disk{}, fmt.Errorf("disk: %w: %s: %v (disks: %s)", ErrNoDisk, describe(rule), err, list(disks))
		}
		cands = filter(cands, func(d inventory.Disk) bool { return d.Path == want })
	}
	if rule.MinSize > 0 {
		cands = filter(cands, func(d inventory.Disk) bool { return d.Size >= rule.MinSize })
	}
	if rule.MaxSize > 0 {
		cands = filter(cands, func(d inventory.Disk) bool { return d.Size <= rule.MaxSize })
	}
	if rule.Serial == "" && rule.Path == "" {
		cands = filter(cands, func(d inventory.Disk) bool { return !d.Removable })
	}
	if len(cands) == 0 {
		return inventory.Disk{}, fmt.Errorf("disk: %w %s (disks: %s)", ErrNoDisk, describe(rule), list(disks))
	}
	if rule.Serial != "" || rule.Path != "" {
		if len(cands) > 1 {
			return inventory.Disk{}, fmt.Errorf("disk: %w %s: %s", ErrAmbiguous, describe(rule), list(cands))
		}
		return fits(cands[0], need)
	}
	fit := filter(cands, func(d inventory.Disk) bool { return d.Size >= need })
	if len(fit) == 0 {
		return inventory.Disk{}, fmt.Errorf("disk: %w: the image needs %d bytes, %s matches only %s", ErrTooSmall, need, describe(rule), list(cands))
	}
	sort.SliceStable(fit, func(i, j int) bool { return fit[i].Size < fit[j].Size })
	if len(fit) > 1 && fit[0].Size == fit[1].Size {
		return inventory.Disk{}, fmt.Errorf("disk: %w %s: %s and %s are the smallest that fit, both %d bytes; name one by serial or path",
			ErrAmbiguous, describe(rule), fit[0].Path, fit[1].Path, fit[0].Size)
	}
	return fit[0], nil
}

func fits(d inventory.Disk, need int64) (inventory.Disk, error) {
	if d.Size < need {
		return inventory.Disk{}, fmt.Errorf("disk: %w: %s has %d bytes, the image needs %d", ErrTooSmall, d.Path, d.Size, need)
	}
	return d, nil
}

// resolve follows symlinks of a /dev path under devRoot and answers the
// /dev path it ends at.
func resolve(path, devRoot string) (string, error) {
	rel, ok := strings.CutPrefix(filepath.Clean(path), "/dev/")
	if !ok {
		return "", fmt.Errorf("path %q is not under /dev", path)
	}
	root, err := filepath.EvalSymlinks(devRoot)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(filepath.Join(root, rel))
	if err != nil {
		return "", err
	}
	in, ok := strings.CutPrefix(real, root+"/")
	if !ok {
		return "", fmt.Errorf("path %q leads out of /dev to %q", path, real)
	}
	return "/dev/" + in, nil
}

func filter(ds []inventory.Disk, keep func(inventory.Disk) bool) []inventory.Disk {
	var out []inventory.Disk
	for _, d := range ds {
		if keep(d) {
			out = append(out, d)
		}
	}
	return out
}

func describe(r api.DiskRule) string {
	var p []string
	if r.Serial != "" {
		p = append(p, "serial="+r.Serial)
	}
	if r.Path != "" {
		p = append(p, "path="+r.Path)
	}
	if r.MinSize > 0 {
		p = append(p, fmt.Sprintf("min_size=%d", r.MinSize))
	}
	if r.MaxSize > 0 {
		p = append(p, fmt.Sprintf("max_size=%d", r.MaxSize))
	}
	if len(p) == 0 {
		return "for the default rule (smallest non-removable disk that fits)"
	}
	return "for rule " + strings.Join(p, " ")
}

func list(ds []inventory.Disk) string {
	if len(ds) == 0 {
		return "none"
	}
	var p []string
	for _, d := range ds {
		s := fmt.Sprintf("%s %d bytes", d.Path, d.Size)
		if d.Serial != "" {
			s += " serial " + d.Serial
		}
		if d.Removable {
			s += " removable"
		}
		p = append(p, s)
	}
	return strings.Join(p, ", ")
}
