package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"osim/controlplane/api"
	"osim/dataplane/dhcp"
	"osim/dataplane/httpboot"
)

// discoveryImage puts a boot image with the installer's kernel and initrd
// into the fake manager.
func (e *env) discoveryImage() api.Image {
	kernel, initrd := []byte("installer kernel"), []byte("installer initramfs")
	img := api.Image{ID: "img-disc", Name: "osim-installer", Version: "1", Kind: api.KindBoot,
		Files:   []api.ImageFile{blobFileOf("vmlinuz", api.RoleKernel, "", kernel), blobFileOf("initrd.cpio.zst", api.RoleInitrd, "", initrd)},
		Cmdline: "console=ttyS0 quiet"}
	e.fm.set(func(f *fakeManager) {
		for _, d := range [][]byte{kernel, initrd} {
			s := sha256.Sum256(d)
			f.blobs[hex.EncodeToString(s[:])] = d
		}
	})
	e.fm.putImage(img)
	return img
}

// pxe sends a PXE firmware's DHCPDISCOVER of mac through a real DHCP
// handler over the agent: Lookup, then the observer.
func (e *env) pxe(mac string, arch iana.Arch) {
	e.t.Helper()
	req, err := dhcpv4.New(dhcpv4.WithHwAddr(mustMAC(mac)), dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(arch)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, make([]byte, 16)...)))
	if err != nil {
		e.t.Fatal(err)
	}
	h := &dhcp.Handler{Backend: e.a, ServerIP: net.IPv4(10, 0, 0, 1), URLs: httpboot.URLs{Base: "http://10.0.0.1:8080"}}
	h.Handle(context.Background(), req.ToBytes(), dhcp.PortDHCP, e.clock.Now())
}

func discoveryEnv(t *testing.T, mod func(*Config)) *env {
	e := newEnv(t, func(c *Config) {
		c.Unknown = dhcp.ActionDiscovery
		c.DiscoveryImage = "img-disc"
		if mod != nil {
			mod(c)
		}
	})
	e.register()
	e.world()
	e.discoveryImage()
	e.sync()
	return e
}

func TestUnknownMACUnderDiscoveryBootsTheDiscoveryImageInDiscoverMode(t *testing.T) {
	e := discoveryEnv(t, func(c *Config) { c.DiscoverThen = DiscoverWait })
	b, err := e.a.Script(context.Background(), mustMAC("52:54:00:00:0d:01"))
	if err != nil {
		t.Fatal(err)
	}
	if b.Local || b.Kernel != "images/img-disc/vmlinuz" || len(b.Initrds) != 1 || b.Initrds[0] != "images/img-disc/initrd.cpio.zst" || b.Order != "" {
		t.Fatalf("script of an unknown MAC: %+v, want the discovery image without an order", b)
	}
	for _, want := range []string{"console=ttyS0 quiet", "osim.mode=discover", "osim.url={{.BaseURL}}", "osim.mac={{.MAC}}", "osim.discover_then=wait"} {
		if !strings.Contains(b.Cmdline, want) {
			t.Errorf("command line %q lacks %q", b.Cmdline, want)
		}
	}
	// Staged though no order names it: unknown machines boot it.
	if e.stagePass(map[string]string{}) {
		t.Fatal("staging failed")
	}
	for _, f := range []string{"images/img-disc/vmlinuz", "images/img-disc/initrd.cpio.zst"} {
		fh, err := e.a.Open(context.Background(), f)
		if err != nil {
			t.Fatalf("discovery image file %s not staged: %v", f, err)
		}
		fh.Close()
	}
}

func TestUnknownMACWithoutDiscoveryImageStaysUnknown(t *testing.T) {
	e := discoveryEnv(t, func(c *Config) { c.DiscoveryImage = "" })
	if _, err := e.a.Script(context.Background(), mustMAC("52:54:00:00:0d:01")); !errors.Is(err, httpboot.ErrUnknownTarget) {
		t.Fatalf("no discovery image: %v, want ErrUnknownTarget", err)
	}
}

func TestDiscoveryReportBecomesAnEventWithTheArchSeenInDHCP(t *testing.T) {
	e := discoveryEnv(t, nil)
	const mac = "52:54:00:00:0d:02"
	e.pxe(mac, iana.EFI_X86_64)
	err := e.a.Discovered(context.Background(), httpboot.Discovery{MAC: mustMAC(mac), Client: "10.0.0.9:1234",
		Arch: "bios", Facts: map[string]string{"dmi.vendor": "QEMU", api.DataDHCPArch: "forged"}, Received: e.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	evs := e.localEvents(api.EventTargetDiscovered)
	if len(evs) != 1 || evs[0].MAC != mac || evs[0].Data["dmi.vendor"] != "QEMU" || evs[0].Data[api.DataDHCPArch] != "efi-x64" {
		t.Fatalf("target.discovered events %+v, want one with the facts and dhcp_arch efi-x64 (what DHCP saw, not the report)", evs)
	}
	if n := testutil.ToFloat64(e.a.disc.discovered); n != 1 {
		t.Errorf("osim_agent_discovered_total %v, want 1", n)
	}
	// Without a DHCP record the installer's word is taken.
	_ = e.a.Discovered(context.Background(), httpboot.Discovery{MAC: mustMAC("52:54:00:00:0d:03"), Arch: "efi-arm64",
		Facts: map[string]string{"a": "b"}})
	if evs := e.localEvents(api.EventTargetDiscovered); len(evs) != 2 || evs[1].Data[api.DataDHCPArch] != "efi-arm64" {
		t.Errorf("report without a DHCP record: %+v", evs)
	}
	// A known MAC is refused.
	err = e.a.Discovered(context.Background(), httpboot.Discovery{MAC: mustMAC("52:54:00:00:00:04"), Facts: map[string]string{"a": "b"}})
	if !errors.Is(err, httpboot.ErrKnownTarget) {
		t.Errorf("known MAC: %v, want ErrKnownTarget", err)
	}
}

func TestArchRecordsAreBounded(t *testing.T) {
	a := archLRU{max: 3}
	for i, m := range []string{"a", "b", "c", "d"} {
		a.put(m, string(rune('0'+i)))
	}
	if _, ok := a.get("a"); ok {
		t.Error("the oldest MAC is still remembered past the bound")
	}
	if v, ok := a.get("d"); !ok || v != "3" {
		t.Errorf("newest: %q %v", v, ok)
	}
}

func TestBootLoopIsRaisedOnceAfterMoreThanNBootsWithinTAndAgainAfterAnOrder(t *testing.T) {
	e := discoveryEnv(t, func(c *Config) { c.BootLoop = BootLoopConfig{Boots: 3, Window: 30 * time.Minute} })
	const mac = "52:54:00:00:00:04" // t-done: its order is done, DHCP answers the local disk
	boot := func() {
		e.pxe(mac, iana.INTEL_X86PC)
		e.clock.Step(10 * time.Second)
		e.pxe(mac, iana.INTEL_X86PC) // the firmware's retry: the same boot
		e.clock.Step(2 * time.Minute)
	}
	loops := func() int { return len(e.localEvents(api.EventBootLoop)) }
	for range 3 {
		boot()
	}
	if n := loops(); n != 0 {
		t.Fatalf("%d boot.loop after 3 boots with N=3, want none (more than N)", n)
	}
	boot()
	evs := e.localEvents(api.EventBootLoop)
	if len(evs) != 1 || evs[0].Target != "t-done" || evs[0].MAC != mac || evs[0].Data["boots"] != "4" {
		t.Fatalf("after the 4th boot: %+v, want one boot.loop for t-done", evs)
	}
	for range 5 {
		boot()
	}
	if n := loops(); n != 1 {
		t.Fatalf("%d boot.loop events in one episode, want 1", n)
	}
	if n := testutil.ToFloat64(e.a.disc.bootLoops); n != 1 {
		t.Errorf("osim_agent_boot_loops_total %v, want 1", n)
	}
	// A new order ends the episode; after it, a new loop is a new episode.
	e.fm.putOrder(order("o-again", "t-done", mac, api.OrderStaged, "img-os", ""))
	e.sync()
	boot()
	e.fm.putOrder(order("o-again", "t-done", mac, api.OrderDone, "img-os", ""))
	e.sync()
	for range 3 {
		boot()
	}
	if n := loops(); n != 1 {
		t.Fatalf("%d boot.loop after 3 boots of a new count, want still 1", n)
	}
	boot()
	if n := loops(); n != 2 {
		t.Fatalf("%d boot.loop, want a second episode after the order", n)
	}
}

func TestBootLoopEpisodeEndsAfterAQuietWindow(t *testing.T) {
	tr := newLoopTracker(BootLoopConfig{Boots: 2, Window: 10 * time.Minute, Gap: time.Minute})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	raised := 0
	for i := range 10 {
		if r, _ := tr.netboot("m", now.Add(time.Duration(i)*2*time.Minute)); r {
			raised++
		}
	}
	// Boots 2 min apart keep 5 in a 10 min window: one episode.
	if raised != 1 {
		t.Fatalf("%d episodes in a steady loop, want 1", raised)
	}
	now = now.Add(40 * time.Minute) // quiet for more than a window
	for i := range 3 {
		if r, _ := tr.netboot("m", now.Add(time.Duration(i)*2*time.Minute)); r {
			raised++
		}
	}
	if raised != 2 {
		t.Fatalf("%d episodes, want a second after a quiet window", raised)
	}
	// Slow boots (one per 6 min, 2 per 10 min) never loop.
	for i := range 10 {
		if r, _ := tr.netboot("slow", now.Add(time.Duration(i)*6*time.Minute)); r {
			t.Fatalf("boot %d of a slow machine raised a loop", i)
		}
	}
}
