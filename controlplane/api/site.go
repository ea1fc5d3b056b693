package api

import (
	"context"
	"net/url"
	"time"
)

// Site is what the MDB keeps about a site itself (its targets and boot
// servers name it). GET/PUT /api/v1/sites/{site}.
type Site struct {
	Name string `json:"name"`
	// DefaultBootImage is the boot image (kind boot, with the osim
	// installer's kernel) a disk-image order of this site's targets boots
	// when the order names none.
	DefaultBootImage string    `json:"default_boot_image,omitempty"`
	Revision         uint64    `json:"revision,omitempty"`
	Updated          time.Time `json:"updated,omitzero"`
}

// SiteList answers GET /api/v1/sites.
type SiteList struct {
	Sites []Site `json:"sites"`
}

// GetSite reads a site's settings (404 when none were ever set).
func (c *Client) GetSite(ctx context.Context, name string) (Site, error) {
	var s Site
	err := c.Do(ctx, "GET", "/sites/"+url.PathEscape(name), nil, nil, &s)
	return s, err
}

// PutSite sets a site's settings (Name is taken from name).
func (c *Client) PutSite(ctx context.Context, name string, s Site) (Site, error) {
	var out Site
	s.Name = name
	err := c.Do(ctx, "PUT", "/sites/"+url.PathEscape(name), nil, s, &out)
	return out, err
}

// ListSites lists the sites with settings.
func (c *Client) ListSites(ctx context.Context) ([]Site, error) {
	var l SiteList
	err := c.Do(ctx, "GET", "/sites", nil, nil, &l)
	return l.Sites, err
}
