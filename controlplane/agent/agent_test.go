package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"osim/controlplane/api"
	"osim/dataplane/dhcp"
	"osim/dataplane/httpboot"
	"osim/dataplane/tftp"
	"osim/internal/clock"
)

type env struct {
	t     *testing.T
	fm    *fakeManager
	dir   string
	db    *badger.DB
	a     *Agent
	clock *clock.Fake // the agent's timers wait on it: a test steps it
	mod   func(*Config)
	// memTable, when set, makes Badger's transactions small.
	memTable int64
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	e := &env{t: t, fm: newFakeManager(t), dir: t.TempDir(), clock: clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)), mod: mod}
	e.open()
	t.Cleanup(func() {
		if e.db != nil {
			e.db.Close()
		}
	})
	return e
}

func (e *env) open() {
	e.t.Helper()
	opts := badger.DefaultOptions(filepath.Join(e.dir, "db")).WithLogger(nil)
	if e.memTable > 0 {
		opts = opts.WithMemTableSize(e.memTable).WithValueThreshold(64 << 10)
	}
	db, err := badger.Open(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.db = db
	cfg := Config{DB: db, BlobDir: filepath.Join(e.dir, "blobs"), Client: api.NewClient(e.fm.srv.URL, "", false),
		JoinToken: joinToken, Name: "bs-a", Site: "lab",
		DefaultBootFiles: map[dhcp.Arch]string{dhcp.ArchBIOS: "undionly.kpxe", dhcp.ArchEFIx64: "snponly.efi"},
		Clock:            e.clock, Registry: prometheus.NewRegistry(), SyncWait: 50 * time.Millisecond,
		HeartbeatInterval: 20 * time.Millisecond, BackoffMin: time.Millisecond, BackoffMax: 20 * time.Millisecond,
		Rand: func() float64 { return 0.5 }}
	if e.mod != nil {
		e.mod(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.a = a
}

func (e *env) restart() {
	e.t.Helper()
	if err := e.db.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

func (e *env) register() {
	e.t.Helper()
	if err := e.a.register(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) sync() {
	e.t.Helper()
	if err := e.a.syncOnce(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

// checkView compares the agent's persisted view with the manager's.
func (e *env) checkView() {
	e.t.Helper()
	ts, os, is, rev, err := e.a.View()
	if err != nil {
		e.t.Fatal(err)
	}
	mts, mos, mis, mrev := e.fm.view()
	if rev != mrev || e.a.Revision() != mrev {
		e.t.Errorf("agent at revision %d (memory %d), manager at %d", rev, e.a.Revision(), mrev)
	}
	if !reflect.DeepEqual(ts, mts) || !reflect.DeepEqual(os, mos) || !reflect.DeepEqual(is, mis) {
		e.t.Errorf("views differ:\nagent   targets %v\n        orders %v\n        images %v\nmanager targets %v\n        orders %v\n        images %v",
			ids(ts), ids(os), ids(is), ids(mts), ids(mos), ids(mis))
	}
}

func ids[T any](xs []T) []string {
	var out []string
	for _, x := range xs {
		switch v := any(x).(type) {
		case api.Target:
			out = append(out, v.ID)
		case api.Order:
			out = append(out, v.ID+":"+string(v.State))
		case api.Image:
			out = append(out, v.ID)
		}
	}
	return out
}

// localEvents lists the events still buffered in Badger.
func (e *env) localEvents(typ string) []api.Event {
	e.t.Helper()
	evs, err := e.a.q.readBatch(1 << 20)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []api.Event
	for _, ev := range evs {
		if typ == "" || ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitPending waits until n of the agent's timers wait on e.clock.
func (e *env) waitPending(n int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), 10*time.Second)
	defer cancel()
	if err := e.clock.WaitPending(ctx, n); err != nil {
		e.t.Fatalf("waiting for %d timers (%d pending): %v", n, e.clock.Pending(), err)
	}
}

// stagePass runs one staging pass, stepping e.clock whenever the pass
// waits out a download's retry backoff.
func (e *env) stagePass(failed map[string]string) (retry bool) {
	ctx, passed := context.WithCancel(e.t.Context())
	go func() {
		defer passed()
		retry = e.a.st.stagePass(context.Background(), failed)
	}()
	for ctx.Err() == nil {
		if e.clock.WaitPending(ctx, 1) == nil {
			e.clock.Step(e.a.cfg.BackoffMax)
		}
	}
	return retry
}

func blobFileOf(name, role, arch string, data []byte) api.ImageFile {
	s := sha256.Sum256(data)
	return api.ImageFile{Name: name, SHA256: hex.EncodeToString(s[:]), Size: int64(len(data)), Role: role, Arch: arch}
}

func target(id string, macs ...string) api.Target {
	return api.Target{ID: id, Hostname: id, MACs: macs, Arch: "bios", Site: "lab"}
}

func order(id, tgt, mac string, state api.OrderState, image, boot string) api.Order {
	return api.Order{ID: id, Target: tgt, Site: "lab", MACs: []string{mac}, Arch: "bios", Image: image, BootImage: boot,
		State: state, Attempt: 1, Token: "tok-" + id, Params: map[string]string{"disk": "sda"}}
}

// world puts a small site into the fake: an OS image, a boot image, and
// targets in every situation the seams distinguish.
func (e *env) world() (osImg, bootImg api.Image) {
	kernel := []byte("kernel bytes " + string(bytes.Repeat([]byte("k"), 3000)))
	initrd := []byte("initrd bytes " + string(bytes.Repeat([]byte("i"), 5000)))
	nbp := []byte("undionly for the boot image")
	osImg = api.Image{ID: "img-os", Name: "debian", Version: "12", Kind: api.KindOS,
		Files:   []api.ImageFile{blobFileOf("vmlinuz", api.RoleKernel, "", kernel), blobFileOf("initrd.gz", api.RoleInitrd, "", initrd)},
		Cmdline: "console=ttyS0 disk={{.Params.disk}}", Defaults: map[string]string{"disk": "vda", "lang": "en"}}
	bootImg = api.Image{ID: "img-boot", Name: "ipxe", Version: "1", Kind: api.KindBoot,
		Files: []api.ImageFile{blobFileOf("undionly.kpxe", api.RoleNBP, "bios", nbp)}}
	e.fm.set(func(f *fakeManager) {
		for _, d := range [][]byte{kernel, initrd, nbp} {
			s := sha256.Sum256(d)
			f.blobs[hex.EncodeToString(s[:])] = d
		}
	})
	e.fm.putImage(osImg)
	e.fm.putImage(bootImg)
	e.fm.putTarget(target("t-staged", "52:54:00:00:00:01"))
	e.fm.putTarget(target("t-default", "52:54:00:00:00:02"))
	e.fm.putTarget(target("t-pending", "52:54:00:00:00:03"))
	e.fm.putTarget(target("t-done", "52:54:00:00:00:04"))
	e.fm.putOrder(order("o-staged", "t-staged", "52:54:00:00:00:01", api.OrderStaged, "img-os", "img-boot"))
	e.fm.putOrder(order("o-default", "t-default", "52:54:00:00:00:02", api.OrderBooting, "img-os", ""))
	e.fm.putOrder(order("o-pending", "t-pending", "52:54:00:00:00:03", api.OrderPending, "img-os", ""))
	e.fm.putOrder(order("o-done", "t-done", "52:54:00:00:00:04", api.OrderInstalling, "img-os", ""))
	e.fm.putOrder(order("o-done", "t-done", "52:54:00:00:00:04", api.OrderDone, "img-os", ""))
	return osImg, bootImg
}

func TestRegistersOnceAndReusesTheCredentialAfterRestart(t *testing.T) {
	e := newEnv(t, nil)
	e.register()
	if e.a.ID() != "bs-1" || e.a.cfg.Client.Token != bsToken {
		t.Fatalf("after register: id %q token %q", e.a.ID(), e.a.cfg.Client.Token)
	}
	e.restart()
	if e.a.ID() != "bs-1" || e.a.cfg.Client.Token != bsToken {
		t.Fatalf("after restart: id %q token %q, want the stored credential", e.a.ID(), e.a.cfg.Client.Token)
	}
	e.register()
	e.sync() // the stored credential works
	if n := e.fm.registers; n != 1 {
		t.Errorf("manager saw %d registrations, want 1", n)
	}
}

func TestRegisterWithABadJoinTokenFails(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.JoinToken = "wrong" })
	if err := e.a.Run(context.Background()); !api.IsStatus(err, 401) {
		t.Fatalf("Run = %v, want the 401", err)
	}
}

func TestATakenNameIsRetriedWithBackoffInsteadOfStoppingTheAgent(t *testing.T) {
	e := newEnv(t, nil)
	e.fm.mu.Lock()
	e.fm.taken = 3
	e.fm.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.a.Run(ctx) }()
	for e.a.ID() == "" {
		// Each 409 leaves register waiting out its backoff (at most
		// BackoffMax); once registered, the heartbeat's ticker waits.
		e.waitPending(1)
		e.clock.Step(e.a.cfg.BackoffMax)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want it to keep retrying while the name is taken", err)
	}
	if e.a.ID() != "bs-1" {
		t.Fatalf("not registered after the name was freed: id %q", e.a.ID())
	}
	if n := testutil.ToFloat64(e.a.m.regRefused.WithLabelValues("409")); n != 3 {
		t.Errorf("osim_agent_register_refused_total{code=409} = %v, want 3", n)
	}
}

func TestHeartbeatsOncePerIntervalOfTheClock(t *testing.T) {
	e := newEnv(t, nil)
	e.register()
	beats := func() int { e.fm.mu.Lock(); defer e.fm.mu.Unlock(); return e.fm.heartbeats }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.a.heartbeatLoop(ctx) }()
	waitFor(t, "the first heartbeat", func() bool { return beats() == 1 })
	e.waitPending(1)
	interval := e.a.cfg.HeartbeatInterval
	e.clock.Step(interval - time.Millisecond)
	if e.clock.Pending() != 1 || beats() != 1 {
		t.Fatalf("a heartbeat before the interval: %d heartbeats, %d timers", beats(), e.clock.Pending())
	}
	e.clock.Step(time.Millisecond)
	waitFor(t, "the second heartbeat", func() bool { return beats() == 2 })
	e.clock.Step(interval)
	waitFor(t, "the third heartbeat", func() bool { return beats() == 3 })
	cancel()
	<-done
	if n := beats(); n != 3 {
		t.Errorf("%d heartbeats over two intervals, want 3", n)
	}
}

// With no interval configured the agent heartbeats every 10 s until the
// manager's answer names its own interval, and then follows it; it says in
// each heartbeat which interval it keeps. One configured stays.
func TestHeartbeatFollowsTheManagersIntervalUnlessConfigured(t *testing.T) {
	for _, configured := range []time.Duration{0, 30 * time.Second} {
		e := newEnv(t, func(c *Config) { c.HeartbeatInterval = configured })
		e.register()
		e.fm.set(func(f *fakeManager) { f.managerInterval = 2 })
		last := func() (int, float64) {
			e.fm.mu.Lock()
			defer e.fm.mu.Unlock()
			return e.fm.heartbeats, e.fm.lastHeartbeat.IntervalSeconds
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); e.a.heartbeatLoop(ctx) }()
		waitFor(t, "the first heartbeat", func() bool { n, _ := last(); return n == 1 })
		want := 10.0
		if configured > 0 {
			want = configured.Seconds()
		}
		if _, every := last(); every != want {
			t.Errorf("configured %v: the first heartbeat says %v s, want %v", configured, every, want)
		}
		e.waitPending(1)
		e.clock.Step(2 * time.Second)
		if configured == 0 {
			waitFor(t, "a heartbeat 2 s later", func() bool { n, _ := last(); return n == 2 })
			if _, every := last(); every != 2 {
				t.Errorf("following the manager: the heartbeat says %v s, want 2", every)
			}
		} else {
			time.Sleep(50 * time.Millisecond)
			if n, _ := last(); n != 1 {
				t.Errorf("configured %v: a heartbeat after 2 s (%d)", configured, n)
			}
		}
		cancel()
		<-done
	}
}

func TestIncrementalChangesApplyAndRestartResumesFromN(t *testing.T) {
	e := newEnv(t, nil)
	e.register()
	e.world()
	e.sync() // since=0: a snapshot
	e.checkView()
	n := e.a.Revision()

	e.fm.putTarget(target("t-new", "52:54:00:00:00:09"))
	e.fm.putOrder(order("o-new", "t-new", "52:54:00:00:00:09", api.OrderPending, "img-os", ""))
	e.fm.putOrder(order("o-pending", "t-pending", "52:54:00:00:00:03", api.OrderCancelled, "img-os", ""))
	e.fm.del(api.ChangeTarget, "t-done")
	e.sync()
	e.checkView()
	if e.fm.syncSince[len(e.fm.syncSince)-1] != n {
		t.Errorf("incremental sync asked since=%d, want %d", e.fm.syncSince[len(e.fm.syncSince)-1], n)
	}
	if _, err := e.a.Lookup(context.Background(), mustMAC("52:54:00:00:00:04"), dhcp.ArchBIOS); !errors.Is(err, dhcp.ErrUnknownMAC) {
		t.Errorf("deleted target's MAC still known: %v", err)
	}

	e.restart()
	e.checkView()
	e.fm.putTarget(target("t-after", "52:54:00:00:00:0a"))
	e.sync()
	e.checkView()
	if got, want := e.fm.syncSince[len(e.fm.syncSince)-1], e.fm.rev-1; got != want {
		t.Errorf("after restart sync asked since=%d, want %d", got, want)
	}
	if n := testutil.ToFloat64(e.a.m.snapshots); n != 0 {
		t.Errorf("restart took %v snapshots, want 0 (it resumes from N)", n)
	}
}

func TestAnAnswerTooLargeForOneTransactionIsAskedForInParts(t *testing.T) {
	e := newEnv(t, nil)
	e.memTable = 1 << 20 // transactions of about 150 kB
	e.restart()
	e.register()
	e.fm.putTarget(target("t-first", "52:54:00:00:ff:ff"))
	e.sync() // a snapshot; then incremental
	big := map[string]string{}
	for i := 0; i < 20; i++ {
		big[fmt.Sprintf("label%02d", i)] = strings.Repeat("v", 60)
	}
	for i := 0; i < 400; i++ {
		tg := target(fmt.Sprintf("t-%03d", i), fmt.Sprintf("52:54:00:00:%02x:%02x", i>>8, i&0xff))
		tg.Labels = big
		e.fm.putTarget(tg)
	}
	for e.a.Revision() < e.fm.rev {
		e.sync()
	}
	e.checkView()
	if limits := e.fm.syncLimits; len(limits) < 2 || limits[0] != 0 || limits[1] == 0 || limits[len(limits)-1] == 0 {
		t.Errorf("sync limits asked %v, want smaller limits after the first answer", limits)
	}
}

func TestSnapshotReplacesTheViewAndAnAbortedOneKeepsTheOld(t *testing.T) {
	e := newEnv(t, nil)
	e.register()
	e.world()
	e.sync()
	oldT, oldO, oldI, oldRev, _ := e.a.View()

	// The log is truncated and the site changed: the next answer is a snapshot.
	e.fm.truncate()
	e.fm.del(api.ChangeTarget, "t-default")
	e.fm.putTarget(target("t-x", "52:54:00:00:00:11"))
	e.fm.putTarget(target("t-y", "52:54:00:00:00:12"))
	e.fm.truncate()
	e.fm.set(func(f *fakeManager) { f.failPage = 3 })
	if err := e.a.syncOnce(context.Background()); err == nil {
		t.Fatal("sync with a failing snapshot page succeeded")
	}
	ts, os, is, rev, err := e.a.View()
	if err != nil || rev != oldRev || !reflect.DeepEqual(ts, oldT) || !reflect.DeepEqual(os, oldO) || !reflect.DeepEqual(is, oldI) {
		t.Fatalf("aborted snapshot changed the view: rev %d (was %d), targets %v, err %v", rev, oldRev, ids(ts), err)
	}
	if _, err := e.a.Lookup(context.Background(), mustMAC("52:54:00:00:00:02"), dhcp.ArchBIOS); err != nil {
		t.Errorf("seams lost the old view: %v", err)
	}

	// A crash mid-snapshot leaves a partial generation: the next start removes it.
	err = e.db.Update(func(txn *badger.Txn) error {
		return txn.Set(objKey(e.a.gen+1, 't', "t-half"), []byte(`{"id":"t-half"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	e.restart()
	if n := countKeys(t, e.db, genPrefix(e.a.gen+1)); n != 0 {
		t.Errorf("%d keys of the partial generation survived the restart", n)
	}
	ts, _, _, _, _ = e.a.View()
	if !reflect.DeepEqual(ts, oldT) {
		t.Errorf("after restart targets %v, want %v", ids(ts), ids(oldT))
	}

	e.fm.set(func(f *fakeManager) { f.failPage = 0 })
	e.sync()
	e.checkView()
	if n := testutil.ToFloat64(e.a.m.snapshots); n != 1 {
		t.Errorf("snapshot_total = %v, want 1", n)
	}
	if n := countKeys(t, e.db, prefixGens); n != countKeys(t, e.db, genPrefix(e.a.gen)) {
		t.Errorf("the previous generation was not dropped")
	}
	if _, err := e.a.Lookup(context.Background(), mustMAC("52:54:00:00:00:12"), dhcp.ArchBIOS); err != nil {
		t.Errorf("new target unknown after the snapshot: %v", err)
	}
	if _, err := e.a.Lookup(context.Background(), mustMAC("52:54:00:00:00:02"), dhcp.ArchBIOS); !errors.Is(err, dhcp.ErrUnknownMAC) {
		t.Errorf("deleted target still known after the snapshot: %v", err)
	}
}

func countKeys(t *testing.T, db *badger.DB, prefix []byte) int {
	t.Helper()
	n := 0
	_ = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func TestStagingVerifiesSHA256AndQueuesStagedOnce(t *testing.T) {
	e := newEnv(t, nil)
	e.register()
	osImg, _ := e.world()
	e.sync()
	kernel := osImg.Files[0]
	e.fm.set(func(f *fakeManager) { f.corrupt[kernel.SHA256] = true })
	failed := map[string]string{}
	if retry := e.stagePass(failed); !retry {
		t.Error("a corrupt blob did not ask for a retry")
	}
	if evs := e.localEvents(api.EventOrderStaged); len(evs) != 0 {
		t.Fatalf("order.staged queued for a corrupt blob: %+v", evs)
	}
	sf := e.localEvents(api.EventStageFailed)
	if len(sf) != 1 || sf[0].Order != "o-pending" || sf[0].Message == "" {
		t.Fatalf("stage_failed events %+v, want one for o-pending with the reason", sf)
	}
	if _, err := os.Stat(e.a.st.blobs.path(kernel.SHA256)); err == nil {
		t.Error("the corrupt blob was stored")
	}
	e.stagePass(failed) // same failure again: reported once
	if sf := e.localEvents(api.EventStageFailed); len(sf) != 1 {
		t.Errorf("%d stage_failed events for one failure, want 1", len(sf))
	}

	e.fm.set(func(f *fakeManager) { delete(f.corrupt, kernel.SHA256) })
	if retry := e.stagePass(failed); retry {
		t.Error("staging still failing with good blobs")
	}
	e.stagePass(failed)
	st := e.localEvents(api.EventOrderStaged)
	if len(st) != 1 || st[0].Order != "o-pending" || st[0].Data["attempt"] != "1" {
		t.Fatalf("order.staged events %+v, want one for o-pending attempt 1", st)
	}
	for _, f := range osImg.Files {
		b, err := os.ReadFile(e.a.st.blobs.path(f.SHA256))
		if err != nil || int64(len(b)) != f.Size {
			t.Errorf("blob %s: %d bytes, %v", f.Name, len(b), err)
		}
	}
	if n := testutil.ToFloat64(e.a.m.blobsStaged); n != 3 {
		t.Errorf("blobs_staged_total = %v, want 3 (kernel, initrd, the staged order's NBP)", n)
	}

	// A retried order is a new attempt: staged again.
	o := order("o-pending", "t-pending", "52:54:00:00:00:03", api.OrderPending, "img-os", "")
	o.Attempt = 2
	e.fm.putOrder(o)
	e.sync()
	e.stagePass(failed)
	if st := e.localEvents(api.EventOrderStaged); len(st) != 2 || st[1].Data["attempt"] != "2" {
		t.Errorf("order.staged after retry: %+v", st)
	}
}

func TestStagingResumesAPartialDownload(t *testing.T) {
	e := newEnv(t, nil)
	e.register()
	osImg, bootImg := e.world()
	e.sync()
	initrd := osImg.Files[1]
	data := e.fm.blobs[initrd.SHA256]
	if err := os.WriteFile(e.a.st.blobs.partial(initrd.SHA256), data[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	e.a.st.stagePass(context.Background(), map[string]string{})
	got, err := os.ReadFile(e.a.st.blobs.path(initrd.SHA256))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("resumed blob: %d bytes, %v", len(got), err)
	}
	e.fm.mu.Lock()
	ranges := e.fm.ranges
	e.fm.mu.Unlock()
	found := false
	for _, r := range ranges {
		found = found || r == "bytes=1000-"
	}
	if !found {
		t.Errorf("the manager saw ranges %q, want bytes=1000-", ranges)
	}
	// The kernel, the rest of the initrd and the boot image's NBP (the
	// staged order needs it here too).
	if n := testutil.ToFloat64(e.a.m.blobBytes); n != float64(len(data)-1000+int(osImg.Files[0].Size)+int(bootImg.Files[0].Size)) {
		t.Errorf("blob_bytes_downloaded_total = %v", n)
	}
}

func TestBlobsNoImageReferencesAreCollected(t *testing.T) {
	e := newEnv(t, nil)
	e.register()
	osImg, _ := e.world()
	e.sync()
	e.a.st.stagePass(context.Background(), map[string]string{})
	stray := filepath.Join(e.a.cfg.BlobDir, "partial", "00stray")
	_ = os.WriteFile(stray, []byte("x"), 0o644)
	if err := e.a.st.collectBlobs(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.a.st.blobs.path(osImg.Files[0].SHA256)); err != nil {
		t.Fatalf("a referenced blob was collected: %v", err)
	}
	if _, err := os.Stat(stray); err == nil {
		t.Error("an unreferenced partial survived")
	}
	for _, id := range []string{"o-staged", "o-default", "o-pending"} {
		e.fm.putOrder(order(id, "x", "52:54:00:00:00:ff", api.OrderDone, "img-os", ""))
	}
	e.fm.del(api.ChangeImage, "img-os")
	e.sync()
	if err := e.a.st.collectBlobs(); err != nil {
		t.Fatal(err)
	}
	for _, f := range osImg.Files {
		if _, err := os.Stat(e.a.st.blobs.path(f.SHA256)); err == nil {
			t.Errorf("blob %s of a deleted image survived", f.Name)
		}
	}
	if n := countKeys(t, e.db, prefixStaged); n != 0 {
		t.Errorf("%d staged markers of ended orders survived", n)
	}
}

func TestEventsBufferedWhileTheManagerIsDownArriveExactlyOnce(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.UploadBatch = 7 })
	e.register()
	e.fm.set(func(f *fakeManager) { f.down = true })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.a.Run(ctx) }()
	for i := 0; i < 40; i++ {
		if err := e.a.Emit(api.Event{Type: api.EventDHCPSeen, MAC: "52:54:00:00:00:01", Message: "n"}); err != nil {
			t.Fatal(err)
		}
	}
	// While the manager is down the heartbeat's ticker, the sync's, the
	// uploader's and the power claims' backoffs wait on the clock (the
	// stager has nothing to stage): four timers. Each step is a retry of
	// every loop; a step before all four wait would leave one behind.
	for range 5 {
		e.waitPending(4)
		e.clock.Step(e.a.cfg.BackoffMax)
	}
	e.waitPending(4)
	if n := len(e.fm.eventsOf("")); n != 0 {
		t.Fatalf("manager down but got %d events", n)
	}
	if n := testutil.ToFloat64(e.a.m.reachable); n != 0 {
		t.Errorf("manager_reachable = %v while it is down, want 0", n)
	}
	if n := testutil.ToFloat64(e.a.m.eventsPending); n != 40 {
		t.Errorf("events_pending = %v, want 40", n)
	}
	e.fm.set(func(f *fakeManager) { f.down = false })
	e.clock.Step(e.a.cfg.BackoffMax) // the uploader's and the sync's retries
	waitFor(t, "40 events at the manager", func() bool { return len(e.fm.eventsOf("")) == 40 })
	waitFor(t, "empty buffer", func() bool { return testutil.ToFloat64(e.a.m.eventsPending) == 0 })
	cancel()
	<-done
	e.fm.mu.Lock()
	received := e.fm.received
	e.fm.mu.Unlock()
	if received != 40 {
		t.Errorf("manager received %d events for 40 emitted, want each once", received)
	}
	for i, ev := range e.fm.eventsOf("") {
		if ev.OriginSeq != uint64(i+1) {
			t.Fatalf("event %d has origin_seq %d", i, ev.OriginSeq)
		}
	}
	if n := countKeys(t, e.db, prefixEvq); n != 0 {
		t.Errorf("%d events left in evq/", n)
	}
	// After a restart the sequence continues (the manager would drop a reused one).
	e.restart()
	_ = e.a.Emit(api.Event{Type: api.EventDHCPSeen})
	if evs := e.localEvents(""); len(evs) != 1 || evs[0].OriginSeq != 41 {
		t.Errorf("after restart: %+v, want origin_seq 41", evs)
	}
}

func TestAnEventTheManagerRefusesIsDroppedAloneNotTheBuffer(t *testing.T) {
	e := newEnv(t, nil)
	e.register()
	e.fm.set(func(f *fakeManager) { f.reject = "bogus" })
	for i := 0; i < 9; i++ {
		typ := api.EventDHCPSeen
		if i == 5 {
			typ = "bogus"
		}
		if err := e.a.Emit(api.Event{Type: typ}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.a.q.run(ctx) }()
	waitFor(t, "8 events at the manager", func() bool { return len(e.fm.eventsOf(api.EventDHCPSeen)) == 8 })
	waitFor(t, "empty buffer", func() bool { return testutil.ToFloat64(e.a.m.eventsPending) == 0 })
	cancel()
	<-done
	if n := len(e.fm.eventsOf("bogus")); n != 0 {
		t.Errorf("the refused event arrived %d times", n)
	}
}

func TestRunSyncsStagesAndReportsUntilCancelled(t *testing.T) {
	e := newEnv(t, nil)
	e.world()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.a.Run(ctx) }()
	waitFor(t, "order.staged at the manager", func() bool { return len(e.fm.eventsOf(api.EventOrderStaged)) == 1 })
	e.fm.putTarget(target("t-live", "52:54:00:00:00:21"))
	waitFor(t, "the long-poll to bring t-live", func() bool { return e.a.Revision() == e.fm.rev })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.checkView()
}

func TestSeamDecisions(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Unknown = dhcp.ActionIgnore })
	e.register()
	e.world()
	e.sync()
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		mac    string
		action dhcp.Action
		bios   string
		local  bool
		err    error
	}{
		{"staged order boots with its boot image's NBP", "52:54:00:00:00:01", dhcp.ActionBootImage, "images/img-boot/undionly.kpxe", false, nil},
		{"order without boot image boots the local NBP", "52:54:00:00:00:02", dhcp.ActionBootImage, "undionly.kpxe", false, nil},
		{"pending order stays silent", "52:54:00:00:00:03", dhcp.ActionIgnore, "", true, nil},
		{"done order boots local", "52:54:00:00:00:04", dhcp.ActionBootLocal, "", true, nil},
		{"unknown MAC gets the configured action", "52:54:00:00:00:99", dhcp.ActionIgnore, "", false, httpboot.ErrUnknownTarget},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := e.a.Lookup(ctx, mustMAC(tc.mac), dhcp.ArchBIOS)
			if err != nil || d.Action != tc.action || d.BootFiles[dhcp.ArchBIOS] != tc.bios {
				t.Fatalf("Lookup = %+v, %v; want %v with bios %q", d, err, tc.action, tc.bios)
			}
			if unknown := tc.err != nil; d.Unknown != unknown { // full DHCP's short lease and cap
				t.Errorf("Decision.Unknown = %v, want %v", d.Unknown, unknown)
			}
			b, err := e.a.Script(ctx, mustMAC(tc.mac))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Script err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || b.Local != tc.local {
				t.Fatalf("Script = %+v, %v; want local=%v", b, err, tc.local)
			}
			if !tc.local {
				want := httpboot.Boot{Kernel: "images/img-os/vmlinuz", Initrds: []string{"images/img-os/initrd.gz"},
					Cmdline: "console=ttyS0 disk={{.Params.disk}}", Params: map[string]string{"disk": "sda", "lang": "en"},
					Order: b.Order, Token: "tok-" + b.Order}
				if !reflect.DeepEqual(b, want) || b.Order == "" {
					t.Errorf("Script = %+v\nwant %+v", b, want)
				}
			}
		})
	}
	e.a.cfg.Unknown = 0
	if _, err := e.a.Lookup(ctx, mustMAC("52:54:00:00:00:98"), dhcp.ArchBIOS); !errors.Is(err, dhcp.ErrUnknownMAC) {
		t.Errorf("unknown MAC without a policy: %v, want ErrUnknownMAC", err)
	}
	served := e.localEvents(api.EventFileServed)
	if len(served) != 2 || served[0].Order != "o-staged" || served[0].MAC != "52:54:00:00:00:01" {
		t.Errorf("file.served for scripts: %+v", served)
	}
}

func TestFilesAndTFTPServeStagedBlobsElseTheFallback(t *testing.T) {
	fb := t.TempDir()
	_ = os.WriteFile(filepath.Join(fb, "undionly.kpxe"), []byte("local nbp"), 0o644)
	folder, err := tftp.NewFolderResolver(fb)
	if err != nil {
		t.Fatal(err)
	}
	defer folder.Close()
	ff, err := httpboot.NewFolderFiles(fb)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Fallback, c.FallbackFiles = folder, ff })
	e.register()
	osImg, _ := e.world()
	e.sync()
	ctx := context.Background()
	if _, err := e.a.Open(ctx, "images/img-os/vmlinuz"); !errors.Is(err, httpboot.ErrNotFound) {
		t.Errorf("unstaged blob: %v, want ErrNotFound", err)
	}
	e.a.st.stagePass(ctx, map[string]string{})
	f, err := e.a.Open(ctx, "images/img-os/vmlinuz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(b, e.fm.blobs[osImg.Files[0].SHA256]) || f.ETag() != `"`+osImg.Files[0].SHA256+`"` {
		t.Errorf("HTTP blob: %d bytes, etag %s", len(b), f.ETag())
	}
	client := netip.MustParseAddrPort("10.0.0.7:2001")
	tf, err := e.a.Resolve(ctx, client, "/images/img-os/initrd.gz")
	if err != nil || tf.Size() != osImg.Files[1].Size {
		t.Fatalf("TFTP blob: %v", err)
	}
	tf.Close()
	tf, err = e.a.Resolve(ctx, client, "undionly.kpxe")
	if err != nil || tf.Size() != int64(len("local nbp")) {
		t.Fatalf("TFTP fallback: %v", err)
	}
	tf.Close()
	if _, err := e.a.Resolve(ctx, client, "nope"); !errors.Is(err, tftp.ErrFileNotFound) {
		t.Errorf("missing file: %v", err)
	}
	hf, err := e.a.Open(ctx, "undionly.kpxe")
	if err != nil {
		t.Fatalf("HTTP fallback: %v", err)
	}
	hf.Close()
	served := e.localEvents(api.EventFileServed)
	if len(served) != 2 || served[0].Data["file"] != "images/img-os/initrd.gz" || served[0].Data["client"] != "10.0.0.7:2001" {
		t.Errorf("file.served for TFTP: %+v", served)
	}
}

func TestStatusTokensOnlyForLiveOrdersAndReportsBecomeEvents(t *testing.T) {
	e := newEnv(t, nil)
	e.register()
	e.world()
	e.sync()
	ctx := context.Background()
	if tok, err := e.a.Token(ctx, "o-staged"); err != nil || tok != "tok-o-staged" {
		t.Errorf("live order token %q, %v", tok, err)
	}
	for _, id := range []string{"o-done", "o-nope"} {
		if _, err := e.a.Token(ctx, id); !errors.Is(err, httpboot.ErrUnknownOrder) {
			t.Errorf("token of %s: %v, want ErrUnknownOrder", id, err)
		}
	}
	e.fm.putOrder(order("o-staged", "t-staged", "52:54:00:00:00:01", api.OrderFailed, "img-os", "img-boot"))
	e.sync()
	if _, err := e.a.Token(ctx, "o-staged"); !errors.Is(err, httpboot.ErrUnknownOrder) {
		t.Errorf("token of an order that failed: %v, want ErrUnknownOrder", err)
	}

	err := e.a.Report(ctx, httpboot.Status{Order: "o-default", Phase: httpboot.PhaseInstalling, Progress: 40,
		Message: "partitioning", Client: "10.0.0.7:4000", Received: e.clock.Now(), Facts: map[string]string{"cpu": "EPYC"}})
	if err != nil {
		t.Fatal(err)
	}
	st, inv := e.localEvents(api.EventInstallStatus), e.localEvents(api.EventInventory)
	if len(st) != 1 || st[0].Order != "o-default" || st[0].Target != "t-default" || st[0].MAC != "52:54:00:00:00:02" ||
		st[0].Phase != "installing" || st[0].Progress != 40 || st[0].Message != "partitioning" {
		t.Errorf("install.status %+v", st)
	}
	if len(inv) != 1 || inv[0].Data["cpu"] != "EPYC" || inv[0].Target != "t-default" {
		t.Errorf("inventory %+v", inv)
	}
}

func TestDHCPSeenAtMostOncePerMACPer10s(t *testing.T) {
	e := newEnv(t, nil)
	e.register()
	e.world()
	e.sync()
	ctx := context.Background()
	look := func(mac string) { _, _ = e.a.Lookup(ctx, mustMAC(mac), dhcp.ArchBIOS) }
	look("52:54:00:00:00:01")
	e.clock.Step(5 * time.Second)
	look("52:54:00:00:00:01")
	look("52:54:00:00:00:02")
	e.clock.Step(4 * time.Second)
	look("52:54:00:00:00:01")
	if n := len(e.localEvents(api.EventDHCPSeen)); n != 2 {
		t.Errorf("%d dhcp.seen within 10 s, want 2 (one per MAC)", n)
	}
	e.clock.Step(time.Second)
	look("52:54:00:00:00:01")
	seen := e.localEvents(api.EventDHCPSeen)
	if len(seen) != 3 || seen[0].Target != "t-staged" || seen[0].Order != "o-staged" || seen[0].MAC != "52:54:00:00:00:01" {
		t.Errorf("dhcp.seen %+v", seen)
	}
}

func TestLiveMACsFollowTheOrdersAndSignalChanges(t *testing.T) {
	e := newEnv(t, nil)
	e.register()
	e.world()
	e.sync()
	drain := func() bool {
		select {
		case <-e.a.PolicyChanged():
			return true
		default:
			return false
		}
	}
	drain()
	want := []string{"52:54:00:00:00:01", "52:54:00:00:00:02"}
	if got := macStrings(e.a.LiveMACs()); !reflect.DeepEqual(got, want) {
		t.Fatalf("LiveMACs %v, want %v", got, want)
	}
	e.fm.putOrder(order("o-pending", "t-pending", "52:54:00:00:00:03", api.OrderStaged, "img-os", ""))
	e.sync()
	if !drain() {
		t.Error("no PolicyChanged after an order was staged")
	}
	if got := macStrings(e.a.LiveMACs()); len(got) != 3 || got[2] != "52:54:00:00:00:03" {
		t.Errorf("LiveMACs %v", got)
	}
	e.fm.putTarget(target("t-other", "52:54:00:00:00:30"))
	e.sync()
	if drain() {
		t.Error("PolicyChanged without a change of the MAC set")
	}
	e.fm.putOrder(order("o-staged", "t-staged", "52:54:00:00:00:01", api.OrderDone, "img-os", ""))
	e.sync()
	if !drain() || len(e.a.LiveMACs()) != 2 {
		t.Errorf("order done: LiveMACs %v", macStrings(e.a.LiveMACs()))
	}
}

func macStrings(ms []net.HardwareAddr) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.String())
	}
	return out
}

func TestBootImageChangeReplacesItsNBPs(t *testing.T) {
	v := newView()
	nbp := func(name, arch string) api.ImageFile {
		return api.ImageFile{Name: name, Role: api.RoleNBP, Arch: arch, SHA256: strings.Repeat("a", 64)}
	}
	img := api.Image{ID: "img-boot", Kind: api.KindBoot, Files: []api.ImageFile{nbp("undionly.kpxe", "bios"), nbp("snponly.efi", "efi-x64")}}
	v.apply(api.Change{Kind: api.ChangeImage, ID: img.ID, Image: &img})
	want := map[dhcp.Arch]string{dhcp.ArchBIOS: "images/img-boot/undionly.kpxe", dhcp.ArchEFIx64: "images/img-boot/snponly.efi"}
	if got := v.nbps[img.ID]; !maps.Equal(got, want) {
		t.Fatalf("nbps after create = %v, want %v", got, want)
	}
	img2 := api.Image{ID: img.ID, Kind: api.KindBoot, Files: []api.ImageFile{{Name: "readme", Role: api.RoleOther}}}
	v.apply(api.Change{Kind: api.ChangeImage, ID: img.ID, Image: &img2})
	if got, ok := v.nbps[img.ID]; ok {
		t.Fatalf("nbps after the image lost its nbp files = %v, want none", got)
	}
	v.apply(api.Change{Kind: api.ChangeImage, ID: img.ID, Image: &img})
	v.apply(api.Change{Kind: api.ChangeImage, ID: img.ID, Deleted: true})
	if got, ok := v.nbps[img.ID]; ok {
		t.Fatalf("nbps after delete = %v, want none", got)
	}
}

// TestUnauthenticatedTrafficEventsAreCoalesced: TFTP requests and script
// fetches are unauthenticated; repeated ones from one client or for one
// MAC make one event per seenEvery, and a flood from many (spoofable)
// sources makes at most maxCoalesce (before: one event per request, 3,000
// script fetches made 3,000 manager events).
func TestUnauthenticatedTrafficEventsAreCoalesced(t *testing.T) {
	fb := t.TempDir()
	_ = os.WriteFile(filepath.Join(fb, "undionly.kpxe"), []byte("local nbp"), 0o644)
	folder, err := tftp.NewFolderResolver(fb)
	if err != nil {
		t.Fatal(err)
	}
	defer folder.Close()
	e := newEnv(t, func(c *Config) { c.Fallback = folder })
	e.register()
	e.world()
	e.sync()
	ctx := context.Background()
	client := netip.MustParseAddrPort("10.0.0.7:2001")
	for range 100 {
		tf, err := e.a.Resolve(ctx, client, "undionly.kpxe")
		if err != nil {
			t.Fatal(err)
		}
		tf.Close()
	}
	if n := len(e.localEvents(api.EventFileServed)); n != 1 {
		t.Fatalf("100 fetches of one file by one client: %d events, want 1", n)
	}
	for i := range maxCoalesce + 1000 {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}), 2000)
		tf, err := e.a.Resolve(ctx, src, "undionly.kpxe")
		if err != nil {
			t.Fatal(err)
		}
		tf.Close()
	}
	if n := len(e.localEvents(api.EventFileServed)); n > maxCoalesce {
		t.Fatalf("a flood from %d sources: %d events, want at most %d", maxCoalesce+1000, n, maxCoalesce)
	}
	// A known target's script fetch still moves its order: the flood's
	// keys do not take its room.
	mac, _ := net.ParseMAC("52:54:00:00:00:01")
	for range 3 {
		if _, err := e.a.Script(ctx, mac); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, ev := range e.localEvents(api.EventFileServed) {
		if ev.Order == "o-staged" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("3 script fetches of a staged order after the flood: %d events, want 1", n)
	}
}
