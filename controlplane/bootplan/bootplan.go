// Package bootplan decides what a booting order's iPXE script boots: the
// httpboot.Boot a boot server renders. The agent serves it to the target;
// the console shows it (token masked), so both say the same thing.
package bootplan

import (
	"fmt"
	"maps"

	"osim/controlplane/api"
	"osim/dataplane/httpboot"
)

// FileName is the name a boot server serves an image's file under
// (/files/<name> over HTTP, the same over TFTP).
func FileName(image, name string) string { return "images/" + image + "/" + name }

// For returns the Boot of order o, which boots (lifecycle.Boots), of image
// img; image looks up its boot image. A disk-format image boots the osim
// installer of the order's boot image (its kernel and initrds, its command
// line template, then the osim.* keys httpboot appends); an installer
// image boots its own kernel with its command line. Secret parameters
// never reach a command line.
func For(o api.Order, img api.Image, image func(id string) (api.Image, bool)) (httpboot.Boot, error) {
	if img.Format == api.FormatDisk {
		return diskBoot(o, img, image)
	}
	b := httpboot.Boot{Cmdline: img.Cmdline, Order: o.ID, Token: o.Token, Params: map[string]string{}}
	maps.Copy(b.Params, img.Defaults)
	maps.Copy(b.Params, o.Params)
	dropSecrets(b.Params, o.SecretParams)
	b.Answer = HasAnswer(img)
	if err := files(&b, img); err != nil {
		return httpboot.Boot{}, fmt.Errorf("image %s has no kernel file", img.ID)
	}
	return b, nil
}

func diskBoot(o api.Order, img api.Image, image func(id string) (api.Image, bool)) (httpboot.Boot, error) {
	boot, ok := image(o.BootImage)
	if o.BootImage == "" || !ok {
		return httpboot.Boot{}, fmt.Errorf("disk image %s needs a boot image, and %q is not in the view", img.ID, o.BootImage)
	}
	// The installer's command line sees the boot image's parameters, an
	// order overriding those only: the disk image's parameters (SSH keys,
	// anything with a space) go into the plan, not onto an iPXE line.
	b := httpboot.Boot{Cmdline: boot.Cmdline, Order: o.ID, Token: o.Token, Install: true, Params: maps.Clone(boot.Defaults)}
	if b.Params == nil {
		b.Params = map[string]string{}
	}
	for k := range b.Params {
		if v, ok := o.Params[k]; ok {
			b.Params[k] = v
		}
	}
	dropSecrets(b.Params, o.SecretParams)
	if err := files(&b, boot); err != nil {
		return httpboot.Boot{}, fmt.Errorf("boot image %s has no kernel file", boot.ID)
	}
	return b, nil
}

// files sets b's kernel (the first) and initrds (all, in order) from img.
func files(b *httpboot.Boot, img api.Image) error {
	for _, f := range img.Files {
		switch f.Role {
		case api.RoleKernel:
			if b.Kernel == "" {
				b.Kernel = FileName(img.ID, f.Name)
			}
		case api.RoleInitrd:
			b.Initrds = append(b.Initrds, FileName(img.ID, f.Name))
		}
	}
	if b.Kernel == "" {
		return fmt.Errorf("no kernel")
	}
	return nil
}

// AnswerFile is the answer-file template of an installer image.
func AnswerFile(img api.Image) (api.ImageFile, bool) {
	if img.Format == api.FormatDisk {
		return api.ImageFile{}, false
	}
	for _, f := range img.Files {
		if f.Role == api.RoleAnswer {
			return f, true
		}
	}
	return api.ImageFile{}, false
}

// HasAnswer reports whether img has an answer file.
func HasAnswer(img api.Image) bool {
	_, ok := AnswerFile(img)
	return ok
}

// dropSecrets removes the secret parameters: they reach the installer by
// its plan or answer file, never by a command line.
func dropSecrets(params map[string]string, secrets []string) {
	for _, k := range secrets {
		delete(params, k)
	}
}
