package mdb

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/internal/badgerkv"
)

// pSite + name → Site JSON. Sites are not synced: an order carries the
// boot image its site's default resolved to when it was made.
const pSite = "mdb/site/"

func getSite(txn *badger.Txn, name string) (api.Site, bool, error) {
	var s api.Site
	ok, err := badgerkv.GetJSON(txn, k(pSite, name), &s)
	return s, ok, err
}

// GetSite reads a site's settings; ErrNotFound when none were set.
func (d *DB) GetSite(ctx context.Context, name string) (s api.Site, err error) {
	err = d.view(ctx, func(txn *badger.Txn) error {
		var ok bool
		if s, ok, err = getSite(txn, name); err == nil && !ok {
			err = fmt.Errorf("%w: site %q has no settings", ErrNotFound, name)
		}
		return err
	})
	return s, err
}

// ListSites lists the sites with settings, by name.
func (d *DB) ListSites(ctx context.Context) (out []api.Site, err error) {
	err = d.view(ctx, func(txn *badger.Txn) error {
		return scan(txn, pSite, "", true, func(_ []byte, item *badger.Item) (bool, error) {
			var s api.Site
			if err := item.Value(func(b []byte) error { return json.Unmarshal(b, &s) }); err != nil {
				return false, err
			}
			out = append(out, s)
			return true, nil
		})
	})
	return out, err
}

// PutSite sets a site's settings: its default boot image must be a boot
// image with the osim installer's kernel.
func (d *DB) PutSite(ctx context.Context, s api.Site) (out api.Site, err error) {
	if !api.ValidName(s.Name) {
		return out, invalidf("name: %q is not a valid site name", s.Name)
	}
	err = d.update(ctx, func(w *wtx) error {
		if s.DefaultBootImage != "" {
			if _, err := installerBoot(w.txn, s.DefaultBootImage, "default_boot_image"); err != nil {
				return err
			}
		}
		out = api.Site{Name: s.Name, DefaultBootImage: s.DefaultBootImage, Revision: w.bump(), Updated: w.now}
		return w.setJSON(k(pSite, s.Name), out)
	})
	return out, err
}

// installerBoot reads boot image id and checks it can boot the osim
// installer: kind boot, a kernel file. field names it in errors.
func installerBoot(txn *badger.Txn, id, field string) (api.Image, error) {
	im, err := getImage(txn, id)
	if err != nil {
		return im, invalidf("%s: %v", field, err)
	}
	if im.Kind != api.KindBoot {
		return im, invalidf("%s: image %s is a %s image, want boot", field, id, im.Kind)
	}
	for _, f := range im.Files {
		if f.Role == api.RoleKernel {
			return im, nil
		}
	}
	return im, invalidf("%s: boot image %s has no kernel file: it cannot boot the osim installer", field, id)
}

// defaultBootUser names the site whose default boot image id is, if any
// (DeleteImage keeps it).
func defaultBootUser(txn *badger.Txn, id string) (string, error) {
	site := ""
	err := scan(txn, pSite, "", true, func(_ []byte, item *badger.Item) (bool, error) {
		var s api.Site
		if err := item.Value(func(b []byte) error { return json.Unmarshal(b, &s) }); err != nil {
			return false, err
		}
		if s.DefaultBootImage == id {
			site = s.Name
			return false, nil
		}
		return true, nil
	})
	return site, err
}

// orderBoots resolves the boot image of each target of a request: the
// named one, or for a disk image the site's default (refused when a site
// has none). It answers the boot image per site ("" key: the request's
// own) and the images, by id, to check NBPs against.
func orderBoots(txn *badger.Txn, req api.OrderRequest, osImg api.Image, targets []api.Target) (map[string]string, map[string]api.Image, error) {
	bySite := map[string]string{}
	images := map[string]api.Image{}
	if osImg.Format != api.FormatDisk {
		return bySite, images, nil
	}
	if req.BootImage != "" {
		im, err := installerBoot(txn, req.BootImage, "boot_image")
		if err != nil {
			return nil, nil, fmt.Errorf("image %s is a disk image: %w", osImg.ID, err)
		}
		images[im.ID] = im
		return bySite, images, nil
	}
	for _, t := range targets {
		if _, done := bySite[t.Site]; done {
			continue
		}
		s, _, err := getSite(txn, t.Site)
		if err != nil {
			return nil, nil, err
		}
		if s.DefaultBootImage == "" {
			return nil, nil, invalidf("boot_image: image %s is a disk image and site %q (of target %s) has no default boot image: name one in the order (osimctl orders create --boot-image ID) or set the site's (osimctl sites set %s --default-boot-image ID)",
				osImg.ID, t.Site, t.ID, t.Site)
		}
		im, err := installerBoot(txn, s.DefaultBootImage, "site "+t.Site+" default_boot_image")
		if err != nil {
			return nil, nil, err
		}
		bySite[t.Site] = im.ID
		images[im.ID] = im
	}
	return bySite, images, nil
}
