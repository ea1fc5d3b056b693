package main

import (
	"flag"
	"fmt"

	"osim/controlplane/api"
)

func (a *app) showSite(s api.Site) error {
	if a.json() {
		return a.printJSON(s)
	}
	a.fields([][2]string{{"name", s.Name}, {"default boot image", s.DefaultBootImage},
		{"revision", fmt.Sprint(s.Revision)}, {"updated", fmtTime(s.Updated)}})
	return nil
}

func sitesGet(a *app, args []string) error {
	fs := a.flags("sites.get", "usage: osimctl sites get SITE\n")
	pos, err := a.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	s, err := a.client.GetSite(a.ctx, pos[0])
	if err != nil {
		return err
	}
	return a.showSite(s)
}

func sitesSet(a *app, args []string) error {
	const help = `usage: osimctl sites set SITE --default-boot-image ID

Sets the boot image (kind boot, with the osim installer's kernel) that a disk image's orders of
SITE's targets boot when the order names none. --default-boot-image "" clears it.
`
	fs := a.flags("sites.set", help)
	boot := fs.String("default-boot-image", "", "boot image id")
	pos, err := a.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "default-boot-image" })
	if !given {
		return usagef("osimctl sites set", "--default-boot-image is required (\"\" clears it)")
	}
	s, err := a.client.PutSite(a.ctx, pos[0], api.Site{DefaultBootImage: *boot})
	if err != nil {
		return err
	}
	return a.showSite(s)
}
