package agent

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/bootplan"
	"osim/controlplane/lifecycle"
	"osim/dataplane/dhcp"
	"osim/dataplane/httpboot"
	"osim/dataplane/tftp"
)

// The seams the dataplane calls, methods of localView that *Agent
// embeds; each answers from the local view only.
var (
	_ dhcp.Backend          = (*Agent)(nil)
	_ httpboot.Scripts      = (*Agent)(nil)
	_ httpboot.Files        = (*Agent)(nil)
	_ httpboot.Tokens       = (*Agent)(nil)
	_ httpboot.OrderTargets = (*Agent)(nil)
	_ httpboot.StatusSink   = (*Agent)(nil)
	_ tftp.Resolver         = (*Agent)(nil)
)

// seenEvery is how often one MAC (or TFTP client, or script fetch) may
// produce an event.
const seenEvery = 10 * time.Second

// lookupLocked finds the target of mac and its live order (l.mu held).
func (l *localView) lookupLocked(mac string) (t api.Target, o api.Order, known, hasOrder bool) {
	id, known := l.v.byMAC[mac]
	if !known {
		return t, o, false, false
	}
	t = l.v.targets[id]
	if oid, ok := l.v.byTgt[id]; ok {
		o, hasOrder = l.v.orders[oid]
	}
	return t, o, true, hasOrder
}

// fileName is how a staged image file is named to TFTP and HTTP clients.
func fileName(image, name string) string { return bootplan.FileName(image, name) }

// Lookup is the dhcp.Backend: staged, booting or installing orders boot
// their installer; pending orders stay silent until staged; known targets
// without a live order boot locally; unknown MACs get Config.Unknown.
func (l *localView) Lookup(_ context.Context, mac net.HardwareAddr, _ dhcp.Arch) (dhcp.Decision, error) {
	m := mac.String()
	l.mu.RLock()
	t, o, known, hasOrder := l.lookupLocked(m)
	var boot map[dhcp.Arch]string
	if hasOrder && lifecycle.Boots(o.State) {
		boot = l.bootFilesLocked(o)
	}
	l.mu.RUnlock()
	l.seenDHCP(m, t.ID, o.ID)

	if !known {
		switch l.cfg.Unknown {
		case 0:
			return dhcp.Decision{}, fmt.Errorf("%w: %s", dhcp.ErrUnknownMAC, m)
		case dhcp.ActionDiscovery:
			return dhcp.Decision{Action: dhcp.ActionDiscovery, BootFiles: l.discoveryNBPs(), Unknown: true}, nil
		}
		return dhcp.Decision{Action: l.cfg.Unknown, Unknown: true}, nil
	}
	var d dhcp.Decision
	switch {
	case hasOrder && lifecycle.Boots(o.State):
		d = dhcp.Decision{Action: dhcp.ActionBootImage, BootFiles: boot}
	case hasOrder:
		d = dhcp.Decision{Action: dhcp.ActionIgnore} // pending: silent until staged
	default:
		d = dhcp.Decision{Action: dhcp.ActionBootLocal}
	}
	if ad, err := netip.ParseAddr(t.Address); err == nil && ad.Is4() {
		d.Address = ad
	}
	return d, nil
}

// bootFilesLocked names the NBP per arch: the order's boot image's nbp
// files, or the boot server's own when it has none. The map is shared:
// callers read it only.
func (l *localView) bootFilesLocked(o api.Order) map[dhcp.Arch]string {
	if nbp, ok := l.v.nbps[o.BootImage]; ok && o.BootImage != "" {
		return nbp
	}
	return l.cfg.DefaultBootFiles
}

// nbpFiles maps canonical arch to the served name of img's nbp files.
func nbpFiles(img api.Image) map[dhcp.Arch]string {
	out := map[dhcp.Arch]string{}
	for _, f := range img.Files {
		if f.Role != api.RoleNBP {
			continue
		}
		arch, err := dhcp.ParseArchName(f.Arch)
		if err != nil {
			continue
		}
		out[arch.Canonical()] = fileName(img.ID, f.Name)
	}
	return out
}

// seenDHCP emits dhcp.seen at most once per MAC per seenEvery.
func (l *localView) seenDHCP(mac, target, order string) {
	if !l.seen.pass("dhcp/"+mac, target == "", l.clock.Now()) {
		return
	}
	if err := l.q.Emit(api.Event{Type: api.EventDHCPSeen, Target: target, MAC: mac, Order: order}); err != nil {
		l.log.Warn("dhcp.seen not buffered", "mac", mac, "err", err)
	}
}

// Script is the httpboot.Scripts: the installer of a staged, booting or
// installing order; local boot for other known targets.
func (l *localView) Script(_ context.Context, mac net.HardwareAddr) (httpboot.Boot, error) {
	m := mac.String()
	l.mu.RLock()
	t, o, known, hasOrder := l.lookupLocked(m)
	img, haveImg := l.v.images[o.Image]
	l.mu.RUnlock()
	if !known {
		return l.discoveryBoot(m) // ErrUnknownTarget unless under discovery
	}
	if !hasOrder || !lifecycle.Boots(o.State) {
		return httpboot.Boot{Local: true}, nil
	}
	if !haveImg {
		return httpboot.Boot{}, fmt.Errorf("agent: order %s of %s: image %q is not in the local view", o.ID, m, o.Image)
	}
	b, err := bootplan.For(o, img, l.image)
	if err != nil {
		return httpboot.Boot{}, fmt.Errorf("agent: order %s of %s: %w", o.ID, m, err)
	}
	l.scriptFetched(t, o, m)
	return b, nil
}

// image looks an image up in the view.
func (l *localView) image(id string) (api.Image, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	img, ok := l.v.images[id]
	return img, ok
}

// stagedFile finds images/<id>/<name> in the view: its blob path, or
// found=false when the name is not an image file of the view.
func (l *localView) stagedFile(name string) (f api.ImageFile, found bool) {
	rest, ok := strings.CutPrefix(name, "images/")
	if !ok {
		return f, false
	}
	id, fname, ok := strings.Cut(rest, "/")
	if !ok {
		return f, false
	}
	l.mu.RLock()
	img, ok := l.v.images[id]
	l.mu.RUnlock()
	if !ok {
		return f, false
	}
	for _, f := range img.Files {
		if f.Name == fname && api.ValidSHA256(f.SHA256) {
			return f, true
		}
	}
	return f, false
}

// blobFile is a staged blob served over HTTP and TFTP.
type blobFile struct {
	*os.File
	size int64
	mod  time.Time
	sha  string
}

func (b *blobFile) Size() int64        { return b.size }
func (b *blobFile) ModTime() time.Time { return b.mod }
func (b *blobFile) ETag() string       { return `"` + b.sha + `"` }
func (b *blobFile) CacheKey() string   { return "blob:" + b.sha }

func (l *localView) openBlob(f api.ImageFile) (*blobFile, error) {
	fh, err := os.Open(l.blobs.path(f.SHA256))
	if err != nil {
		return nil, err
	}
	st, err := fh.Stat()
	if err != nil || st.Size() != f.Size {
		fh.Close()
		return nil, fmt.Errorf("blob %s is not complete", f.SHA256)
	}
	return &blobFile{File: fh, size: st.Size(), mod: st.ModTime(), sha: f.SHA256}, nil
}

// Open is the httpboot.Files: images/<image-id>/<name> from the staged
// blobs, anything else from FallbackFiles.
func (l *localView) Open(ctx context.Context, name string) (httpboot.File, error) {
	if f, ok := l.stagedFile(name); ok {
		b, err := l.openBlob(f)
		if err != nil {
			return nil, fmt.Errorf("%w: %s not staged: %v", httpboot.ErrNotFound, name, err)
		}
		return b, nil
	}
	if l.cfg.FallbackFiles == nil {
		return nil, fmt.Errorf("%w: %s", httpboot.ErrNotFound, name)
	}
	return l.cfg.FallbackFiles.Open(ctx, name)
}

// Resolve is the tftp.Resolver: images/<image-id>/<name> from the staged
// blobs, anything else from Fallback; a served file is reported.
func (l *localView) Resolve(ctx context.Context, client netip.AddrPort, name string) (tftp.File, error) {
	clean, err := tftp.CleanName(name)
	if err != nil {
		return nil, err
	}
	var out tftp.File
	if f, ok := l.stagedFile(clean); ok {
		b, err := l.openBlob(f)
		if err != nil {
			return nil, fmt.Errorf("%w: %s not staged: %v", tftp.ErrFileNotFound, clean, err)
		}
		out = b
	} else if l.cfg.Fallback == nil {
		return nil, fmt.Errorf("%w: %q", tftp.ErrFileNotFound, clean)
	} else if out, err = l.cfg.Fallback.Resolve(ctx, client, name); err != nil {
		return nil, err
	}
	if !l.seen.pass("tftp/"+client.Addr().String()+"/"+clean, true, l.clock.Now()) {
		return out, nil
	}
	if err := l.q.Emit(api.Event{Type: api.EventFileServed, Data: map[string]string{"file": clean, "client": client.String()}}); err != nil {
		l.log.Warn("file.served not buffered", "file", clean, "client", client.String(), "err", err)
	}
	return out, nil
}

// Token is the httpboot.Tokens: live orders' tokens; an order that ended
// or is unknown here is refused.
func (l *localView) Token(_ context.Context, order string) (string, error) {
	l.mu.RLock()
	o, ok := l.v.orders[order]
	l.mu.RUnlock()
	if !ok {
		return "", fmt.Errorf("%w: %q", httpboot.ErrUnknownOrder, order)
	}
	return o.Token, nil
}

// OrderTarget is the httpboot.OrderTargets: the MACs and the fixed
// address of a live order's target, which the order's status token is
// bound to.
func (l *localView) OrderTarget(_ context.Context, order string) (httpboot.Target, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	o, ok := l.v.orders[order]
	if !ok {
		return httpboot.Target{}, fmt.Errorf("%w: %q", httpboot.ErrUnknownOrder, order)
	}
	var out httpboot.Target
	macs := o.MACs
	if t, ok := l.v.targets[o.Target]; ok {
		macs = t.MACs
		if ad, err := netip.ParseAddr(t.Address); err == nil {
			out.Addrs = append(out.Addrs, ad.Unmap())
		}
	}
	for _, m := range macs {
		if hw, err := net.ParseMAC(m); err == nil {
			out.MACs = append(out.MACs, hw)
		}
	}
	return out, nil
}

// Report is the httpboot.StatusSink: an install.status event, plus an
// inventory event when the installer sent facts, buffered together.
func (l *localView) Report(_ context.Context, s httpboot.Status) error {
	l.mu.RLock()
	o := l.v.orders[s.Order]
	mac := ""
	if t, ok := l.v.targets[o.Target]; ok && len(t.MACs) > 0 {
		mac = t.MACs[0]
	} else if len(o.MACs) > 0 {
		mac = o.MACs[0]
	}
	l.mu.RUnlock()
	ev := api.Event{Type: api.EventInstallStatus, Time: s.Received, Order: s.Order, Target: o.Target, MAC: mac,
		Phase: string(s.Phase), Progress: max(s.Progress, 0), Message: s.Message, Data: statusData(s)}
	if s.Phase == httpboot.PhaseFailed && s.Step != "" && !strings.HasPrefix(s.Message, s.Step+": ") {
		// The order's message names the step (once: the osim installer
		// already sends "<step>: <reason>").
		ev.Message = s.Step + ": " + s.Message
	}
	evs := []api.Event{ev}
	if len(s.Facts) > 0 {
		evs = append(evs, api.Event{Type: api.EventInventory, Time: s.Received, Order: s.Order, Target: o.Target,
			MAC: mac, Data: maps.Clone(s.Facts)})
	}
	return l.q.emitWith(nil, evs...)
}
