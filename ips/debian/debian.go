// Package debian builds a Debian root filesystem with debootstrap from the
// machine's configured Debian archive, with a kernel, cloud-init and an SSH
// server, ready for ips/diskimage to assemble into a bootable disk.
package debian

import (
	"context"
	"errors"
)

// Options say what to build. Zero values take the defaults documented on
// each field.
type Options struct {
	Out      string   // work and output directory (created); the root goes to Out/root
	Suite    string   // default bookworm
	Mirror   string   // default: the first Debian archive URL of the machine's apt configuration
	Packages []string // extra packages
	Kernel   string   // kernel package; default linux-image-amd64
	Locale   string   // default C.UTF-8
	Timezone string   // default Etc/UTC
	Hostname string   // placeholder hostname baked in (cloud-init sets the real one); default debian
}

// Result is what Build made.
type Result struct {
	Root   string // the root filesystem directory
	Kernel string // the kernel (a file under Root/boot)
	Initrd string // its initramfs
	// Cmdline is the kernel command line the disk's boot loader needs
	// (root=LABEL=..., console settings).
	Cmdline string
	// Packages lists name=version of every installed package, for the
	// manifest (reproducibility).
	Packages []string
}

// ErrNotBuilt is what Build answers until the builder lands.
var ErrNotBuilt = errors.New("debian: builder not available")

// Build is replaced by the debootstrap builder.
func Build(ctx context.Context, o Options) (Result, error) { return Result{}, ErrNotBuilt }
