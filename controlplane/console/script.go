package console

import (
	"context"
	"fmt"
	"net"

	"osim/controlplane/api"
	"osim/controlplane/bootplan"
	"osim/controlplane/lifecycle"
	"osim/dataplane/httpboot"
)

// Placeholders of a script shown in the console: the token is the
// installer's credential and never leaves the boot servers; the boot
// server's address depends on which one answers.
const (
	maskedToken = "ORDER-TOKEN"
	bootBase    = "http://BOOT-SERVER:8080"
)

// bootScript renders the iPXE script a boot server would answer t's next
// PXE boot with, and a line saying why that one. The order's token and the
// boot server's address are placeholders.
func bootScript(ctx context.Context, cl interface {
	GetOrder(context.Context, string) (api.Order, error)
	GetImage(context.Context, string) (api.Image, error)
}, t api.Target) (script, why string) {
	mac, err := net.ParseMAC(firstMAC(t))
	if err != nil {
		return "", "the target has no MAC"
	}
	platform := "efi"
	if t.Arch == "bios" {
		platform = "pcbios"
	}
	local := func(why string) (string, string) {
		s, err := httpboot.RenderScript(httpboot.Boot{Local: true}, mac, bootBase, platform)
		if err != nil {
			return "", err.Error()
		}
		return string(s), why
	}
	if t.State == api.TargetDiscovered {
		return "", "a discovered machine boots the site's discovery image (boot.discovery_image) until it is accepted"
	}
	if t.CurrentOrder == "" {
		return local("no live order: the machine boots from its local disk")
	}
	o, err := cl.GetOrder(ctx, t.CurrentOrder)
	if err != nil {
		return "", "its order: " + errMsg(err)
	}
	if !lifecycle.Boots(o.State) {
		return "", fmt.Sprintf("order %s is %s: the boot server does not answer its PXE requests until the order is staged", o.ID, o.State)
	}
	img, err := cl.GetImage(ctx, o.Image)
	if err != nil {
		return "", "its image: " + errMsg(err)
	}
	images := map[string]api.Image{img.ID: img}
	if o.BootImage != "" {
		if b, err := cl.GetImage(ctx, o.BootImage); err == nil {
			images[b.ID] = b
		}
	}
	o.Token = maskedToken
	b, err := bootplan.For(o, img, func(id string) (api.Image, bool) { im, ok := images[id]; return im, ok })
	if err != nil {
		return "", err.Error()
	}
	s, err := httpboot.RenderScript(b, mac, bootBase, platform)
	if err != nil {
		return "", err.Error()
	}
	return string(s), fmt.Sprintf("order %s is %s: the boot server answers with its installer", o.ID, o.State)
}

func firstMAC(t api.Target) string {
	if len(t.MACs) == 0 {
		return ""
	}
	return t.MACs[0]
}
