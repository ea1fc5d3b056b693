// Package syncbench is osim-syncbench's engine: how fast a fresh boot
// server takes in a large MDB. It fills a manager's store with N targets and N orders (one
// site) offline, starts osim-manager and osim-bootd as processes on
// loopback, and reports the time until the boot server's agent has synced
// the manager's revision, the time until every order is staged (the blobs
// fetched and N order.staged events uploaded and applied), and the boot
// server's peak RSS. `make bench-sync` runs it; figures go into
// bench/RESULTS.md.
package syncbench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"osim/bench/internal/lab"
	"osim/bench/internal/procstat"
	"osim/controlplane/api"
	"osim/controlplane/mdb"
	"osim/internal/bootd"
	"osim/internal/promtext"
)

// Options is what a run measures with.
type Options struct {
	N       int           // targets and orders
	Bin     string        // where osim-manager and osim-bootd are
	Keep    bool          // keep the work directory
	Timeout time.Duration // give up after this long
	Out     io.Writer     // progress and the report (a markdown table)
}

// Run populates the store, starts the two processes and measures.
func Run(o Options) error {
	return run(o.Out, o.N, o.Bin, o.Keep, o.Timeout)
}

func run(w io.Writer, n int, binDir string, keep bool, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	work, err := os.MkdirTemp("", "osim-syncbench-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(work)
	}
	mgrDir := filepath.Join(work, "manager")
	t0 := time.Now()
	rev, join, err := populate(ctx, w, mgrDir, n)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "populated %d targets + %d orders in %v (revision %d)\n", n, n, time.Since(t0).Round(time.Millisecond), rev)

	mgrPort, bootMetrics := freeTCP(), freeTCP()
	mgrURL := fmt.Sprintf("http://127.0.0.1:%d", mgrPort)
	mgrMetrics := freeTCP()
	mgr, err := lab.Start(lab.Spec{Name: "osim-manager", Argv: []string{filepath.Join(binDir, "osim-manager"), "serve",
		"--listen", fmt.Sprintf("127.0.0.1:%d", mgrPort), "--data-dir", mgrDir,
		"--metrics-listen", fmt.Sprintf("127.0.0.1:%d", mgrMetrics), "--log-level", "warn"},
		Log: filepath.Join(work, "manager.log")})
	if err != nil {
		return err
	}
	defer mgr.Stop()
	if err := waitHTTP(ctx, mgrURL+"/healthz"); err != nil {
		return fmt.Errorf("manager: %w (log %s)", err, mgr.Log)
	}
	joinFile := filepath.Join(work, "join.token")
	os.WriteFile(joinFile, []byte(join), 0o600)
	tftpDir := filepath.Join(work, "tftp")
	os.MkdirAll(tftpDir, 0o755)
	os.WriteFile(filepath.Join(tftpDir, "undionly.kpxe"), []byte("nbp"), 0o644)
	cfg := bootd.Config{
		Address:       "127.0.0.1",
		MetricsListen: fmt.Sprintf("127.0.0.1:%d", bootMetrics),
		DataDir:       filepath.Join(work, "bootd"),
		DHCP:          bootd.DHCPSection{Listen: fmt.Sprintf("127.0.0.1:%d", freeUDP()), BootListen: fmt.Sprintf("127.0.0.1:%d", freeUDP())},
		TFTP:          bootd.TFTPSection{Root: tftpDir, Listen: fmt.Sprintf("127.0.0.1:%d", freeUDP())},
		HTTP:          bootd.HTTPSection{Listen: fmt.Sprintf("127.0.0.1:%d", freeTCP())},
		Boot:          bootd.BootSection{BootFiles: map[string]string{"bios": "undionly.kpxe", "efi-x64": "undionly.kpxe"}},
		Manager:       &bootd.ManagerSection{URL: mgrURL, JoinTokenFile: joinFile, Name: "bench-bootd", Site: "bench"},
	}
	cfgPath := filepath.Join(work, "bootd.yaml")
	if err := cfg.WriteFile(cfgPath); err != nil {
		return err
	}
	start := time.Now()
	boot, err := lab.Start(lab.Spec{Name: "osim-bootd", Argv: []string{filepath.Join(binDir, "osim-bootd"), "serve", "--config", cfgPath, "--log-level", "warn"},
		Log: filepath.Join(work, "bootd.log")})
	if err != nil {
		return err
	}
	defer boot.Stop()

	var synced, staged time.Duration
	var peak, peakAnon, peakFile int64 // VmHWM; sampled RssAnon and RssFile
	for synced == 0 || staged == 0 {
		if boot.Exited() {
			b, _ := os.ReadFile(boot.Log)
			return fmt.Errorf("osim-bootd exited: %v\n%s", boot.Err(), b)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("after %v: synced %v staged %v: %w (logs in %s)", time.Since(start), synced, staged, err, work)
		}
		if hwm, _ := procstat.HWM(boot.PID); hwm > peak {
			peak = hwm
		}
		anon, file, _ := procstat.RSS(boot.PID)
		peakAnon, peakFile = max(peakAnon, anon), max(peakFile, file)
		if synced == 0 {
			if v, err := promtext.Scrape(ctx, fmt.Sprintf("http://127.0.0.1:%d/metrics", bootMetrics), "osim_agent_synced_revision"); err == nil && uint64(v) >= rev {
				synced = time.Since(start)
				fmt.Fprintf(w, "boot server synced revision %d after %v, RSS peak so far %d MiB\n", rev, synced.Round(time.Millisecond), peak>>20)
			}
		}
		if staged == 0 {
			if v, err := promtext.Scrape(ctx, fmt.Sprintf("http://127.0.0.1:%d/metrics", mgrMetrics), `osim_manager_orders{state="staged"}`); err == nil && int(v) == n {
				staged = time.Since(start)
				fmt.Fprintf(w, "all %d orders staged after %v\n", n, staged.Round(time.Millisecond))
			}
		}
		lab.Sleep(ctx, 50*time.Millisecond)
	}
	if hwm, _ := procstat.HWM(boot.PID); hwm > peak {
		peak = hwm
	}
	fmt.Fprintf(w, "\n| targets | orders | sync to revision | all orders staged | boot server peak RSS (VmHWM) | of which anonymous / file-mapped (sampled peaks) |\n|---|---|---|---|---|---|\n")
	fmt.Fprintf(w, "| %d | %d | %.2f s | %.2f s | %d MiB | %d / %d MiB |\n", n, n, synced.Seconds(), staged.Seconds(), peak>>20, peakAnon>>20, peakFile>>20)
	return nil
}

// populate fills a fresh MDB: one image, n targets in site bench, one
// order each (a mass reimage by selector), and a join token. It returns the
// revision and the join token's secret.
func populate(ctx context.Context, w io.Writer, dir string, n int) (uint64, string, error) {
	db, err := mdb.Open(dir, mdb.Options{})
	if err != nil {
		return 0, "", err
	}
	defer db.Close()
	blob := bytes.Repeat([]byte("osim-syncbench kernel "), 1000)
	sum := sha256.Sum256(blob)
	sha := hex.EncodeToString(sum[:])
	if _, err := db.WriteBlob(ctx, sha, int64(len(blob)), 0, bytes.NewReader(blob)); err != nil {
		return 0, "", err
	}
	img, err := db.CreateImage(ctx, api.ImageSpec{Name: "bench", Version: "1", Kind: api.KindOS,
		Files: []api.ImageFile{{Name: "vmlinuz", SHA256: sha, Size: int64(len(blob)), Role: api.RoleKernel}}})
	if err != nil {
		return 0, "", err
	}
	specs := make([]api.TargetSpec, n)
	for i := range specs {
		specs[i] = api.TargetSpec{Hostname: fmt.Sprintf("node-%06d", i), Site: "bench", Arch: "bios",
			MACs:   []string{fmt.Sprintf("02:00:00:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff)},
			Labels: map[string]string{"bench": "true", "rack": fmt.Sprintf("r%03d", i/40)}}
	}
	t0 := time.Now()
	if _, err := db.CreateTargets(ctx, specs); err != nil {
		return 0, "", fmt.Errorf("creating targets: %w", err)
	}
	fmt.Fprintf(w, "  %d targets in %v\n", n, time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	if _, err := db.CreateOrders(ctx, api.OrderRequest{Selector: "bench=true", Image: img.ID}); err != nil {
		return 0, "", fmt.Errorf("creating orders: %w", err)
	}
	fmt.Fprintf(w, "  %d orders in %v\n", n, time.Since(t0).Round(time.Millisecond))
	secret := "osim_syncbench_join_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	h := sha256.Sum256([]byte(secret))
	if err := db.CreateToken(ctx, mdb.Token{TokenInfo: api.TokenInfo{ID: "tok-syncbench", Role: api.RoleJoin, Name: "bench-bootd",
		Site: "bench", Uses: 1, Expires: time.Now().Add(24 * time.Hour), Created: time.Now()},
		Hash: hex.EncodeToString(h[:])}); err != nil {
		return 0, "", err
	}
	rev, err := db.Revision(ctx)
	return rev, secret, err
}

func waitHTTP(ctx context.Context, u string) error {
	for {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if lab.Sleep(ctx, 50*time.Millisecond) != nil {
			return fmt.Errorf("%s never answered: %v", u, err)
		}
	}
}

func freeTCP() int {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func freeUDP() int {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}
