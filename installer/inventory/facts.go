package inventory

import (
	"regexp"
	"strconv"
)

// Limits of facts the boot server accepts.
const (
	MaxFacts      = 256
	MaxKeyLen     = 63
	MaxValueBytes = 256
)

var keyRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Facts flattens the inventory: dmi.*, cpu.*, memory.bytes, firmware,
// secure_boot, disk.<name>.*, nic.<name>.*. Empty values are left out,
// keys a device name would make invalid are dropped, values are cut to
// MaxValueBytes, and past MaxFacts the rest (NICs first: they come last)
// is dropped.
func (inv Inventory) Facts() map[string]string {
	var kv [][2]string
	add := func(k, v string) {
		if v != "" && keyRE.MatchString(k) {
			if len(v) > MaxValueBytes {
				v = v[:MaxValueBytes]
			}
			kv = append(kv, [2]string{k, v})
		}
	}
	add("dmi.vendor", inv.Vendor)
	add("dmi.product", inv.Product)
	add("dmi.serial", inv.Serial)
	add("dmi.uuid", inv.UUID)
	add("cpu.count", strconv.Itoa(inv.CPUCount))
	add("cpu.model", inv.CPUModel)
	add("memory.bytes", strconv.FormatInt(inv.MemoryBytes, 10))
	add("firmware", inv.Firmware)
	add("secure_boot", inv.SecureBoot)
	add("disk.count", strconv.Itoa(len(inv.Disks)))
	for _, d := range inv.Disks {
		p := "disk." + d.Name + "."
		add(p+"size", strconv.FormatInt(d.Size, 10))
		add(p+"model", d.Model)
		add(p+"serial", d.Serial)
		add(p+"rotational", strconv.FormatBool(d.Rotational))
		add(p+"removable", strconv.FormatBool(d.Removable))
	}
	for _, n := range inv.NICs {
		p := "nic." + n.Name + "."
		add(p+"mac", n.MAC)
		add(p+"driver", n.Driver)
		add(p+"link", map[bool]string{true: "up", false: "down"}[n.Up])
		if n.Speed > 0 {
			add(p+"speed", strconv.Itoa(n.Speed))
		}
	}
	if len(kv) > MaxFacts {
		kv = kv[:MaxFacts]
	}
	out := make(map[string]string, len(kv))
	for _, p := range kv {
		out[p[0]] = p[1]
	}
	return out
}
