package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"osim/controlplane/api"
	"osim/controlplane/mdb"
)

// populate fills a fresh MDB offline: a small OS image, n targets of site
// big (the first labelled grp=a are labelled so, the rest grp=b) and, if
// orders, one order for each grp=a target.
func populate(t *testing.T, dir string, n, grpA int, orders bool) {
	t.Helper()
	t0 := time.Now()
	ctx := context.Background()
	db, err := mdb.Open(dir, mdb.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	blob := bytes.Repeat([]byte("e2e kernel "), 1000)
	sha := sha256Hex(blob)
	if _, err := db.WriteBlob(ctx, sha, int64(len(blob)), 0, bytes.NewReader(blob)); err != nil {
		t.Fatal(err)
	}
	img, err := db.CreateImage(ctx, api.ImageSpec{Name: "big", Version: "1", Kind: api.KindOS,
		Files: []api.ImageFile{{Name: "vmlinuz", SHA256: sha, Size: int64(len(blob)), Role: api.RoleKernel}}})
	if err != nil {
		t.Fatal(err)
	}
	specs := make([]api.TargetSpec, n)
	for i := range specs {
		grp := "b"
		if i < grpA {
			grp = "a"
		}
		specs[i] = api.TargetSpec{Hostname: fmt.Sprintf("node-%06d", i), Site: "big", Arch: "bios",
			MACs:   []string{fmt.Sprintf("02:01:00:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff)},
			Labels: map[string]string{"grp": grp, "rack": fmt.Sprintf("r%03d", i/40)}}
	}
	if _, err := db.CreateTargets(ctx, specs); err != nil {
		t.Fatal(err)
	}
	if orders {
		if _, err := db.CreateOrders(ctx, api.OrderRequest{Selector: "grp=a", Image: img.ID}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("populated %d targets (%d in grp=a, orders %v) offline in %v", n, grpA, orders, time.Since(t0).Round(time.Millisecond))
}

// quiesce waits until nothing moves: no order is pending at the manager,
// no boot server has an event buffered, and then every boot server has
// synced a fence: an image (images reach every site) made last, whose
// revision is still the manager's. The fence is needed because a boot
// server's long-poll answers only for changes of its own site, so its
// revision legitimately trails the manager's while other sites change.
func quiesce(t *testing.T, d time.Duration, m *managerProc, bs ...*bootd) {
	t.Helper()
	deadline := time.Now().Add(d)
	left := func() time.Duration { return max(time.Until(deadline), time.Second) }
	alive := func() {
		if ok, why := m.checkAlive(); !ok {
			t.Fatal(why)
		}
		for _, b := range bs {
			if ok, why := b.checkAlive(); !ok {
				t.Fatal(why)
			}
		}
	}
	for fence := 1; ; fence++ {
		waitFor(t, left(), "no pending order and no buffered event", func() (bool, string) {
			alive()
			l, err := m.admin.ListOrders(context.Background(), api.OrderPending, "", "", "", 1)
			if err != nil {
				return false, err.Error()
			}
			if len(l.Orders) > 0 {
				return false, "order " + l.Orders[0].ID + " still pending"
			}
			for _, b := range bs {
				if p := b.metric("osim_agent_events_pending"); p != 0 {
					return false, fmt.Sprintf("%s has %v events pending", b.name, p)
				}
			}
			return true, ""
		})
		img := uploadImage(t, m.admin, fmt.Sprintf("fence-%d", fence), []byte(fmt.Sprintf("fence %d %d", fence, time.Now().UnixNano())))
		waitFor(t, left(), fmt.Sprintf("the boot servers to sync fence %d (revision %d)", fence, img.Revision), func() (bool, string) {
			alive()
			for _, b := range bs {
				if r := uint64(b.metric("osim_agent_synced_revision")); r < img.Revision {
					return false, fmt.Sprintf("%s at revision %d", b.name, r)
				}
			}
			return true, ""
		})
		if r := m.revision(); r == img.Revision {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("the manager's revision keeps moving: %d past fence %d", r, img.Revision)
		}
	}
}

// stopAndCompare stops the boot servers and the manager (SIGTERM) and
// compares each boot server's store with the manager's view of its site.
func stopAndCompare(t *testing.T, m *managerProc, bs ...*bootd) {
	t.Helper()
	for _, b := range bs {
		b.stop()
	}
	m.stop()
	for _, b := range bs {
		compareStopped(t, m.dir, b.data, b.site)
	}
}

// TestProcessSyncTwoSites runs osim-manager and two osim-bootd of sites A
// and B as processes: targets, an image, orders by selector per site and
// updates (a move from A to B, a cancel, a delete) made through the API
// end with each boot server's Badger equal to the manager's view of its
// site.
func TestProcessSyncTwoSites(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m := startManager(t, t.TempDir())
	a := newBootd(t, "bootd-a", "A", m.url, m.joinToken(t, "A"))
	b := newBootd(t, "bootd-b", "B", m.url, m.joinToken(t, "B"))
	a.restart()
	b.restart()
	img := uploadImage(t, m.admin, "deb", bytes.Repeat([]byte("vmlinuz "), 4000))
	var targets []api.Target
	for i := range 16 {
		site := []string{"A", "B"}[i%2]
		tg, err := m.admin.CreateTarget(ctx, api.TargetSpec{Hostname: fmt.Sprintf("n%02d", i), Site: site, Arch: "bios",
			MACs: []string{fmt.Sprintf("02:0a:00:00:00:%02x", i)}, Labels: map[string]string{"grp": fmt.Sprintf("g%d", i%4), "site": site}})
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, tg)
	}
	oa, err := m.admin.CreateOrders(ctx, api.OrderRequest{Selector: "site=A,grp=g0", Image: img.ID, All: true})
	if err != nil {
		t.Fatal(err)
	}
	ob, err := m.admin.CreateOrders(ctx, api.OrderRequest{Selector: "site=B", Image: img.ID, All: true})
	if err != nil {
		t.Fatal(err)
	}
	siteB := "B"
	if _, err := m.admin.UpdateTarget(ctx, oa[0].Target, api.TargetPatch{Site: &siteB}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.admin.CancelOrder(ctx, ob[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := m.admin.DeleteTarget(ctx, targets[2].ID); err != nil { // site A, grp g2: no order
		t.Fatal(err)
	}
	quiesce(t, 30*time.Second, m, a, b)
	// Each osim-bootd's heartbeat carries its service counters, the
	// images it holds whole (the console shows them) and its version.
	waitFor(t, 30*time.Second, "boot server stats in heartbeats", func() (bool, string) {
		bss, err := m.admin.ListBootServers(ctx)
		if err != nil {
			return false, err.Error()
		}
		var got []string
		ok := len(bss) == 2
		for _, bs := range bss {
			// Counter vectors with no sample yet (no DHCP packet here) are
			// not gathered; plain counters and gauges always are.
			_, tftp := bs.Stats["osim_tftp_bytes_sent_total"]
			// Its version too (the build's, from internal/buildinfo).
			ok = ok && bs.Stats["osim_disk_free_bytes"] > 0 && bs.Stats["osim_agent_blobs_staged_total"] == 1 && tftp &&
				slices.Contains(bs.StagedImages, img.ID) && bs.Version != ""
			got = append(got, fmt.Sprintf("%s %s: %v staged %v", bs.Name, bs.Version, bs.Stats, bs.StagedImages))
		}
		return ok, strings.Join(got, "; ")
	})
	stopAndCompare(t, m, a, b)
}

// TestProcessManagerKilledMidSync gives a synced boot server a big change
// set (5,000 orders over 20,000 targets: five revisions of 2,000 changes,
// answered one revision per sync through a slowing proxy), SIGKILLs the
// manager while the boot server's revision is between where it was and
// the final one, restarts the manager on the same data dir, and checks
// that the boot server resumes (no second snapshot) and converges.
func TestProcessManagerKilledMidSync(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	dir := t.TempDir()
	populate(t, dir, 20000, 5000, false)
	m := startManager(t, dir)
	p := newSlowProxy(t, m.url)
	b := newBootd(t, "bootd-big", "big", p.srv.URL, m.joinToken(t, "big"))
	b.restart()
	r0 := m.revision()
	waitFor(t, 60*time.Second, "the first snapshot", func() (bool, string) {
		if ok, why := b.checkAlive(); !ok {
			t.Fatal(why)
		}
		r := uint64(b.metric("osim_agent_synced_revision"))
		return r >= r0, fmt.Sprintf("boot server at %d, manager at %d", r, r0)
	})
	p.syncLimit.Store(1000)
	p.syncDelay.Store(int64(400 * time.Millisecond))
	imgs, err := m.admin.ListImages(context.Background())
	if err != nil || len(imgs) != 1 {
		t.Fatalf("images: %v %v", imgs, err)
	}
	start := uint64(b.metric("osim_agent_synced_revision"))
	if _, err := m.admin.CreateOrders(context.Background(), api.OrderRequest{Selector: "grp=a", Image: imgs[0].ID, All: true}); err != nil {
		t.Fatal(err)
	}
	final := m.revision()
	var at uint64
	waitFor(t, 30*time.Second, "the boot server between revisions", func() (bool, string) {
		at = uint64(b.metric("osim_agent_synced_revision"))
		return at > start && at < final, fmt.Sprintf("at %d, start %d, final %d", at, start, final)
	})
	m.kill()
	t.Logf("manager SIGKILLed with the boot server at revision %d of %d..%d", at, start, final)
	p.syncDelay.Store(0)
	p.syncLimit.Store(0)
	m.restart()
	quiesce(t, 60*time.Second, m, b)
	if n := b.metric("osim_agent_snapshot_total"); n != 1 {
		t.Errorf("the boot server took %v snapshots; after the manager's restart it should have resumed", n)
	}
	if v, _ := scrape(m.metrics, `osim_manager_orders{state="staged"}`); v != 5000 {
		t.Errorf("%v orders staged at the manager, want 5000", v)
	}
	stopAndCompare(t, m, b)
}

// TestProcessBootdKilledMidSnapshot SIGKILLs a boot server while it
// writes its first snapshot (20,000 targets and 2,000 orders in pages of
// 2,000, slowed by a proxy), restarts it on the same data dir and checks
// that it drops the unfinished snapshot and converges.
func TestProcessBootdKilledMidSnapshot(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	dir := t.TempDir()
	populate(t, dir, 20000, 2000, true)
	m := startManager(t, dir)
	p := newSlowProxy(t, m.url)
	p.syncLimit.Store(2000)
	p.snapDelay.Store(int64(300 * time.Millisecond))
	b := newBootd(t, "bootd-snap", "big", p.srv.URL, m.joinToken(t, "big"))
	b.restart()
	waitFor(t, 30*time.Second, "three snapshot pages", func() (bool, string) {
		if ok, why := b.checkAlive(); !ok {
			t.Fatal(why)
		}
		return p.snapPages.Load() >= 3, fmt.Sprintf("%d pages", p.snapPages.Load())
	})
	if r := b.metric("osim_agent_synced_revision"); r != 0 {
		t.Fatalf("the snapshot finished before the kill (revision %v): the test did not hit it", r)
	}
	b.kill()
	t.Logf("boot server SIGKILLed after %d snapshot pages", p.snapPages.Load())
	p.snapDelay.Store(0)
	p.syncLimit.Store(0)
	b.restart()
	quiesce(t, 60*time.Second, m, b)
	if !strings.Contains(b.log.String(), "removed an unfinished snapshot") {
		t.Errorf("the restarted boot server did not report removing the unfinished snapshot")
	}
	stopAndCompare(t, m, b)
}

// TestProcessBootdKilledMidBlob SIGKILLs a boot server while it stages a
// 48 MiB blob (the download slowed by a proxy), checks that no
// half-written blob sits under sha256/, restarts it and checks that the
// download resumes, the order reaches staged and the blob hashes right.
func TestProcessBootdKilledMidBlob(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	ctx := context.Background()
	m := startManager(t, t.TempDir())
	p := newSlowProxy(t, m.url)
	p.blobRate.Store(16 << 20)
	b := newBootd(t, "bootd-blob", "blob", p.srv.URL, m.joinToken(t, "blob"))
	b.restart()
	data := make([]byte, 48<<20)
	rand.Read(data)
	img := uploadImage(t, m.admin, "big-blob", data)
	sha := img.Files[0].SHA256
	tg, err := m.admin.CreateTarget(ctx, api.TargetSpec{Hostname: "blobby", Site: "blob", Arch: "bios", MACs: []string{"02:0b:00:00:00:01"}})
	if err != nil {
		t.Fatal(err)
	}
	ords, err := m.admin.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: img.ID})
	if err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(b.data, "blobs", "partial", sha)
	final := filepath.Join(b.data, "blobs", "sha256", sha)
	var last int64
	waitFor(t, 30*time.Second, "the partial blob to grow", func() (bool, string) {
		if ok, why := b.checkAlive(); !ok {
			t.Fatal(why)
		}
		st, err := os.Stat(partial)
		if err != nil {
			return false, err.Error()
		}
		grew := last > 0 && st.Size() > last && st.Size() > 8<<20 && st.Size() < int64(len(data))
		last = st.Size()
		return grew, fmt.Sprintf("partial at %d of %d", st.Size(), len(data))
	})
	b.kill()
	st, err := os.Stat(partial)
	if err != nil {
		t.Fatalf("partial after the kill: %v", err)
	}
	t.Logf("boot server SIGKILLed with %d of %d bytes staged", st.Size(), len(data))
	if _, err := os.Stat(final); err == nil {
		if got, n, err := fileSHA256(final); err != nil || got != sha {
			t.Fatalf("sha256/%s holds %d bytes hashing to %s (%v): a half-written blob", sha, n, got, err)
		}
		t.Fatalf("the blob was complete before the kill: the test did not hit the download")
	}
	p.blobRate.Store(0)
	b.restart()
	waitFor(t, 60*time.Second, "the order to be staged", func() (bool, string) {
		if ok, why := b.checkAlive(); !ok {
			t.Fatal(why)
		}
		o, err := m.admin.GetOrder(ctx, ords[0].ID)
		if err != nil {
			return false, err.Error()
		}
		return o.State == api.OrderStaged, string(o.State)
	})
	got, n, err := fileSHA256(final)
	if err != nil || got != sha || n != int64(len(data)) {
		t.Fatalf("staged blob: %d bytes hashing to %s (%v), want %d bytes hashing to %s", n, got, err, len(data), sha)
	}
	if dl := int64(b.metric("osim_agent_blob_bytes_downloaded_total")); dl > int64(len(data))-st.Size() {
		t.Errorf("after the restart %d bytes were downloaded; resuming from %d needs only %d", dl, st.Size(), int64(len(data))-st.Size())
	}
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Errorf("partial/%s still there after staging: %v", sha, err)
	}
}

// tftpGet fetches name from 127.0.0.1:port in lockstep at 512 bytes.
func tftpGet(port int, name string) ([]byte, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	srv := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	if _, err := c.WriteToUDP(append([]byte{0, 1}, name+"\x00octet\x00"...), srv); err != nil {
		return nil, err
	}
	var out []byte
	buf := make([]byte, 600)
	for block := uint16(1); ; block++ {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			return nil, fmt.Errorf("tftp %s block %d: %w", name, block, err)
		}
		if n < 4 || binary.BigEndian.Uint16(buf) != 3 || binary.BigEndian.Uint16(buf[2:]) != block {
			return nil, fmt.Errorf("tftp %s: unexpected % x", name, buf[:min(n, 40)])
		}
		out = append(out, buf[4:n]...)
		if _, err := c.WriteToUDP([]byte{0, 4, byte(block >> 8), byte(block)}, from); err != nil {
			return nil, err
		}
		if n-4 < 512 {
			return out, nil
		}
	}
}

// bootServerID finds a boot server's id by name.
func bootServerID(t *testing.T, m *managerProc, name string) string {
	t.Helper()
	bss, err := m.admin.ListBootServers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, bs := range bss {
		if bs.Name == name {
			return bs.ID
		}
	}
	t.Fatalf("boot server %s not registered", name)
	return ""
}

// TestProcessManagerKilledMidEventUpload makes a boot server emit K
// file.served events (K TFTP transfers of one file, counted by the test)
// while the manager is
// SIGKILLed three times under the uploads: once at a random moment, twice
// right after it stored a batch and before the boot server got the
// acknowledgement (a proxy kills it there). After the restarts the
// manager holds exactly K such events, each OriginSeq once, and it
// dropped the re-sent batch as duplicates.
func TestProcessManagerKilledMidEventUpload(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	m := startManager(t, t.TempDir())
	p := newSlowProxy(t, m.url)
	b := newBootd(t, "bootd-ev", "ev", p.srv.URL, m.joinToken(t, "ev"))
	// The boot server coalesces file.served per client and file (once per
	// 10 s): the transfers go round more files than are fetched in that
	// time, so that each one is an event.
	const files = 4000
	for i := range files {
		if err := os.WriteFile(filepath.Join(b.tftpRoot, fmt.Sprintf("count-%d.bin", i)), []byte("counted"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b.restart()
	waitFor(t, 30*time.Second, "the boot server's first sync", func() (bool, string) {
		return b.metric("osim_agent_synced_revision") > 0, "not synced"
	})
	origin := bootServerID(t, m, b.name)

	// Transfers run until the kills are done, then tail more: uploads are
	// flowing at every kill. K is what was served.
	const tail = 50
	var served atomic.Int64
	release := make(chan struct{})
	genErr := make(chan error, 1)
	go func() {
		for left := tail; left > 0; {
			select {
			case <-release:
				left--
			default:
			}
			if _, err := tftpGet(b.tftpPort, fmt.Sprintf("count-%d.bin", served.Load()%files)); err != nil {
				genErr <- err
				return
			}
			served.Add(1)
			time.Sleep(5 * time.Millisecond) // pacing: spread the events over the kills
		}
		genErr <- nil
	}()
	for kill := 1; kill <= 3; kill++ {
		up := b.metric("osim_agent_events_uploaded_total")
		waitFor(t, 30*time.Second, "uploads to flow", func() (bool, string) {
			v := b.metric("osim_agent_events_uploaded_total")
			return v >= up+10, fmt.Sprintf("uploaded %v", v)
		})
		if kill == 1 {
			m.kill()
		} else {
			fired := make(chan struct{})
			hook := func() { m.kill(); close(fired) }
			p.afterEvents.Store(&hook)
			select {
			case <-fired:
			case <-time.After(30 * time.Second):
				t.Fatal("no event upload reached the manager")
			}
		}
		pend := b.metric("osim_agent_events_pending")
		waitFor(t, 30*time.Second, "events to buffer", func() (bool, string) {
			v := b.metric("osim_agent_events_pending")
			return v >= pend+10, fmt.Sprintf("pending %v", v)
		})
		t.Logf("kill %d: %d transfers served, %v events pending", kill, served.Load(), b.metric("osim_agent_events_pending"))
		m.restart()
	}
	close(release)
	select {
	case err := <-genErr:
		if err != nil {
			t.Fatalf("TFTP while the manager came and went: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the TFTP transfers did not finish")
	}
	waitFor(t, 60*time.Second, "the buffer to drain", func() (bool, string) {
		v := b.metric("osim_agent_events_pending")
		return v == 0, fmt.Sprintf("pending %v", v)
	})
	K := int(served.Load())
	seqs := map[uint64]bool{}
	count := 0
	for after := uint64(0); ; {
		l, err := m.admin.ListEvents(context.Background(), after, api.EventFilter{Type: api.EventFileServed, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range l.Events {
			if e.Origin != origin || !strings.HasPrefix(e.Data["file"], "count-") {
				continue
			}
			count++
			if seqs[e.OriginSeq] {
				t.Errorf("origin_seq %d stored twice", e.OriginSeq)
			}
			seqs[e.OriginSeq] = true
		}
		if len(l.Events) == 0 {
			break
		}
		after = l.Last
	}
	dup, _ := scrape(m.metrics, "osim_manager_events_duplicate_total")
	t.Logf("%d file.served events at the manager; %v duplicates dropped since its last start", count, dup)
	if count != K {
		t.Fatalf("%d file.served events at the manager, want exactly %d", count, K)
	}
	if dup == 0 {
		t.Errorf("the manager dropped no duplicate after being killed between storing a batch and acknowledging it")
	}
}

// TestProcessManagerDown SIGKILLs the manager under a boot server with a
// staged order: the boot server keeps answering HTTP (the iPXE script),
// TFTP (the NBP) and DHCP (the PXE boot server exchange, and a relayed
// DISCOVER when port 67 can be bound), accepts the installer's status
// reports and buffers them; after the manager's restart they arrive, the
// order is done and the buffer is empty.
func TestProcessManagerDown(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	ctx := context.Background()
	m := startManager(t, t.TempDir())
	b := newBootd(t, "bootd-down", "down", m.url, m.joinToken(t, "down"))
	b.restart()
	img := uploadImage(t, m.admin, "deb", bytes.Repeat([]byte("vmlinuz!"), 3000))
	const mac = "02:0d:00:00:00:01"
	tg, err := m.admin.CreateTarget(ctx, api.TargetSpec{Hostname: "down1", Site: "down", Arch: "bios", MACs: []string{mac}})
	if err != nil {
		t.Fatal(err)
	}
	ords, err := m.admin.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: img.ID})
	if err != nil {
		t.Fatal(err)
	}
	order := ords[0].ID
	get := func(path string) (int, string) {
		c := http.Client{Timeout: 3 * time.Second}
		resp, err := c.Get(b.http + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	tokRe := regexp.MustCompile(`osim\.token=([0-9a-f]+)`)
	var token string
	waitFor(t, 30*time.Second, "the staged order's script", func() (bool, string) {
		code, body := get("/ipxe/" + mac)
		if mm := tokRe.FindStringSubmatch(body); code == 200 && mm != nil {
			token = mm[1]
			return true, ""
		}
		return false, fmt.Sprintf("%d %.200s", code, body)
	})
	quiesce(t, 30*time.Second, m, b)

	m.kill()
	// HTTP: the script, from the local copy.
	if code, body := get("/ipxe/" + mac); code != 200 || !strings.Contains(body, "images/"+img.ID+"/vmlinuz") || !strings.Contains(body, token) {
		t.Errorf("script with the manager down: %d\n%s", code, body)
	}
	if code, body := get("/files/images/" + img.ID + "/vmlinuz"); code != 200 || body != strings.Repeat("vmlinuz!", 3000) {
		t.Errorf("kernel with the manager down: %d, %d bytes", code, len(body))
	}
	// TFTP: the NBP.
	if got, err := tftpGet(b.tftpPort, "undionly.kpxe"); err != nil || !bytes.Equal(got, nbpBytes) {
		t.Errorf("tftp with the manager down: %d bytes, %v", len(got), err)
	}
	// DHCP: the PXE boot server exchange (port 4011's role) answers the
	// client's address.
	hw, _ := net.ParseMAC(mac)
	req, err := dhcpv4.NewDiscovery(hw, dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)))
	if err != nil {
		t.Fatal(err)
	}
	if ack, err := dhcpExchange(b.bootPort, req, nil); err != nil {
		t.Errorf("dhcp (boot server port) with the manager down: %v", err)
	} else if ack.MessageType() != dhcpv4.MessageTypeAck || ack.BootFileName != "undionly.kpxe" {
		t.Errorf("dhcp ack with the manager down: %s", ack.Summary())
	}
	// A relayed DISCOVER: the offer goes to giaddr:67, which we can bind
	// only as root with the port free.
	relay, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 67})
	if err != nil {
		t.Logf("relayed DISCOVER not tried: %v", err)
	} else {
		disc, err := dhcpv4.NewDiscovery(hw, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)), dhcpv4.WithGatewayIP(net.IPv4(127, 0, 0, 1)))
		if err != nil {
			t.Fatal(err)
		}
		if offer, err := dhcpExchange(b.dhcpPort, disc, relay); err != nil {
			t.Errorf("dhcp DISCOVER with the manager down: %v", err)
		} else if offer.MessageType() != dhcpv4.MessageTypeOffer || offer.BootFileName != "undionly.kpxe" {
			t.Errorf("dhcp offer with the manager down: %s", offer.Summary())
		}
		relay.Close()
	}
	// The installer reports: accepted and buffered.
	for _, body := range []string{`{"phase":"installing","progress":40,"facts":{"cpu":"e2e"}}`, `{"phase":"done","progress":100}`} {
		r, _ := http.NewRequest(http.MethodPost, b.http+"/status/"+order, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+token)
		r.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 && resp.StatusCode != 204 {
			t.Fatalf("status report with the manager down: %s", resp.Status)
		}
	}
	if p := b.metric("osim_agent_events_pending"); p < 3 {
		t.Errorf("%v events pending with the manager down, want at least 3 (status, inventory, status)", p)
	}
	if ok, why := b.checkAlive(); !ok {
		t.Fatal(why)
	}

	m.restart()
	waitFor(t, 60*time.Second, "the order to be done", func() (bool, string) {
		o, err := m.admin.GetOrder(ctx, order)
		if err != nil {
			return false, err.Error()
		}
		return o.State == api.OrderDone, string(o.State)
	})
	waitFor(t, 30*time.Second, "the buffer to drain", func() (bool, string) {
		v := b.metric("osim_agent_events_pending")
		return v == 0, fmt.Sprintf("pending %v", v)
	})
	if tg2, err := m.admin.GetTarget(ctx, tg.ID); err != nil || tg2.Facts["cpu"] != "e2e" {
		t.Errorf("inventory from the buffered report: %v %v", tg2.Facts, err)
	}
}

// dhcpExchange sends req to 127.0.0.1:port and reads one reply on recv
// (nil: the sending socket).
func dhcpExchange(port int, req *dhcpv4.DHCPv4, recv *net.UDPConn) (*dhcpv4.DHCPv4, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if recv == nil {
		recv = c
	}
	if _, err := c.WriteToUDP(req.ToBytes(), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
		return nil, err
	}
	buf := make([]byte, 1500)
	for {
		recv.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, _, err := recv.ReadFromUDP(buf)
		if err != nil {
			return nil, err
		}
		reply, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			return nil, err
		}
		if reply.TransactionID == req.TransactionID && reply.OpCode == dhcpv4.OpcodeBootReply {
			return reply, nil
		}
	}
}
