package dhcp

// PXEObserver, when the Backend implements it, hears the backend's answer
// to every request of a network boot client (PXE firmware, iPXE, UEFI HTTP
// boot; never a plain DHCP client, whom full mode asks the backend about
// too): what the boot server needs to know about machines that netboot,
// such as the arch an unknown machine announced (discovery) or a known
// one netbooting again and again without an order (boot loops). It is
// called on the packet path: it must not block.
type PXEObserver interface {
	ObservePXE(c Client, d Decision, err error)
}

// observe tells the backend, if it listens, what it answered c.
func (h *Handler) observe(c Client, d Decision, err error) {
	if o, ok := h.Backend.(PXEObserver); ok && c.Class != ClassOther {
		o.ObservePXE(c, d, err)
	}
}
