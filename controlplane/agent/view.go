package agent

import (
	"net"
	"slices"
	"strings"

	"osim/controlplane/api"
	"osim/controlplane/lifecycle"
	"osim/dataplane/dhcp"
)

// view is the in-memory mirror of the current generation; the seams
// answer from it. It changes only after the Badger write that holds the
// same change committed.
type view struct {
	targets map[string]api.Target
	byMAC   map[string]string // canonical MAC → target id
	orders  map[string]api.Order
	byTgt   map[string]string // target id → its live order id
	images  map[string]api.Image
	// nbps is, per image with nbp files, the NBP name per canonical arch:
	// built when the image enters the view, not on every DHCP lookup.
	nbps map[string]map[dhcp.Arch]string
	// full keeps whole objects; the seams' mirror drops what they never
	// read (labels, facts, order history) to stay small at 100,000 targets.
	full bool
}

func newView() *view {
	return &view{targets: map[string]api.Target{}, byMAC: map[string]string{}, orders: map[string]api.Order{},
		byTgt: map[string]string{}, images: map[string]api.Image{},
		nbps: map[string]map[dhcp.Arch]string{}}
}

// apply changes the in-memory view the way putChange changed the store.
func (v *view) apply(c api.Change) {
	switch c.Kind {
	case api.ChangeTarget:
		if old, ok := v.targets[c.ID]; ok {
			for _, m := range old.MACs {
				if v.byMAC[m] == c.ID {
					delete(v.byMAC, m)
				}
			}
			delete(v.targets, c.ID)
		}
		if !removes(c) {
			// The seams need neither labels nor facts: keep the mirror
			// small (100,000 targets), Badger has the whole object.
			t := *c.Target
			if !v.full {
				t.Labels, t.Facts = nil, nil
			}
			v.targets[c.ID] = t
			for _, m := range c.Target.MACs {
				v.byMAC[canonMAC(m)] = c.ID
			}
		}
	case api.ChangeOrder:
		if old, ok := v.orders[c.ID]; ok {
			if v.byTgt[old.Target] == c.ID {
				delete(v.byTgt, old.Target)
			}
			delete(v.orders, c.ID)
		}
		if !removes(c) {
			o := *c.Order
			if !v.full {
				o.History = nil
			}
			v.orders[c.ID] = o
			v.byTgt[c.Order.Target] = c.ID
		}
	case api.ChangeImage:
		delete(v.images, c.ID)
		delete(v.nbps, c.ID)
		if !removes(c) {
			v.images[c.ID] = *c.Image
			if nbp := nbpFiles(*c.Image); len(nbp) > 0 {
				v.nbps[c.ID] = nbp
			}
		}
	}
}

func canonMAC(m string) string {
	if c, err := api.CanonicalMAC(m); err == nil {
		return c
	}
	return strings.ToLower(m)
}

// liveMACsOf lists the MACs the DHCP service answers with an installer:
// those of targets whose live order is staged, booting or installing.
func liveMACsOf(v *view) (string, []net.HardwareAddr) {
	var set []string
	for _, o := range v.orders {
		if !lifecycle.Boots(o.State) {
			continue
		}
		macs := o.MACs
		if t, ok := v.targets[o.Target]; ok {
			macs = t.MACs
		}
		for _, m := range macs {
			set = append(set, canonMAC(m))
		}
	}
	slices.Sort(set)
	set = slices.Compact(set)
	out := make([]net.HardwareAddr, 0, len(set))
	for _, m := range set {
		if hw, err := net.ParseMAC(m); err == nil {
			out = append(out, hw)
		}
	}
	return strings.Join(set, ","), out
}
