package manager

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"osim/controlplane/api"
)

// orderWarnings says what will keep orders just created from booting as
// they are, and records each warning as an order.warning event: a site
// without any boot server (nothing stages its orders: they stay pending),
// and targets of an arch for which neither the order's boot image has an
// NBP nor any boot server of the site a default boot file (the boot
// server answers such a target nothing). The orders stand: a boot server
// may register, a boot file may be added. A failure to look is logged,
// never answered.
func (s *Server) orderWarnings(ctx context.Context, orders []api.Order, request string) []string {
	if len(orders) == 0 {
		return nil
	}
	bss, err := s.store.ListBootServers(ctx)
	if err != nil {
		s.log.Warn("order warnings: listing boot servers", "err", err)
		return nil
	}
	served := map[string]map[string]bool{} // site → arches its boot servers have a boot file for
	for _, b := range bss {
		if served[b.Site] == nil {
			served[b.Site] = map[string]bool{}
		}
		for _, a := range b.BootArches {
			served[b.Site][a] = true
		}
	}
	type siteArch struct{ site, arch string }
	noServer, noFile := map[string]int{}, map[siteArch]int{}
	nbps := map[string]map[string]bool{} // boot image → arches of its NBPs
	for _, o := range orders {
		switch {
		case served[o.Site] == nil:
			noServer[o.Site]++
		case !served[o.Site][o.Arch] && !s.imageBoots(ctx, nbps, o.BootImage, o.Arch):
			noFile[siteArch{o.Site, o.Arch}]++
		}
	}
	var out []string
	for _, site := range slices.Sorted(maps.Keys(noServer)) {
		msg := fmt.Sprintf("site %s has no boot server: its %d new orders stay pending until one registers", site, noServer[site])
		out = append(out, s.orderWarning(ctx, msg, request, site, "", noServer[site]))
	}
	keys := slices.SortedFunc(maps.Keys(noFile), func(a, b siteArch) int {
		return cmp.Or(cmp.Compare(a.site, b.site), cmp.Compare(a.arch, b.arch))
	})
	for _, k := range keys {
		msg := fmt.Sprintf("%d new orders for %s targets of site %s will not boot: no boot server of the site has a %s boot file (boot.boot_files) and their boot image has no %s NBP",
			noFile[k], k.arch, k.site, k.arch, k.arch)
		out = append(out, s.orderWarning(ctx, msg, request, k.site, k.arch, noFile[k]))
	}
	return out
}

// imageBoots reports whether boot image id has an NBP for arch; cache
// holds the images already read.
func (s *Server) imageBoots(ctx context.Context, cache map[string]map[string]bool, id, arch string) bool {
	if id == "" {
		return false
	}
	arches, ok := cache[id]
	if !ok {
		arches = map[string]bool{}
		if img, err := s.store.GetImage(ctx, id); err == nil {
			for _, f := range img.Files {
				if f.Role == api.RoleNBP {
					arches[f.Arch] = true
				}
			}
		}
		cache[id] = arches
	}
	return arches[arch]
}

// orderWarning logs msg and records it as an order.warning event.
func (s *Server) orderWarning(ctx context.Context, msg, request, site, arch string, n int) string {
	s.log.Warn("order warning", "request", request, "site", site, "arch", arch, "orders", n, "msg", msg)
	data := map[string]string{"site": site, "orders": strconv.Itoa(n)}
	if request != "" {
		data["request"] = request
	}
	if arch != "" {
		data["arch"] = arch
	}
	if _, err := s.store.AppendEvent(ctx, api.Event{Type: api.EventOrderWarning, Message: msg, Data: data}); err != nil {
		s.log.Warn("order warning: recording the event", "err", err)
	}
	return msg
}
