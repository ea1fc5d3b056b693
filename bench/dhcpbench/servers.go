package dhcpbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"osim/bench/internal/lab"
	"osim/dataplane/dhcp"
	"osim/internal/bootd"
	"osim/internal/promtext"
	"osim/internal/testlab"
)

// LeaseTime is the pools' lease time on both servers: longer than the
// bench, so nothing expires during it.
const LeaseTime = time.Hour

// Server is a DHCP server the bench measures. Start runs it in the lab's
// server namespace on its lease store (kept from one Start to the next);
// Leases is the server's own count of bound leases.
type Server interface {
	Name() string
	Note() string // how it is run, for the report
	Start(ctx context.Context) (*lab.Proc, error)
	Leases(ctx context.Context, p *lab.Proc) (int, error)
}

// cpu is p's CPU time so far (all threads); 0 once it is gone.
func cpu(p *lab.Proc) time.Duration {
	d, _ := p.CPU()
	return d
}

func pinned(argv []string, cpu int) []string {
	if cpu < 0 {
		return argv
	}
	return append([]string{"taskset", "-c", strconv.Itoa(cpu)}, argv...)
}

// Bootd is `osim-bootd serve` in full DHCP mode, leases in Badger.
type Bootd struct {
	Lab *testlab.Pair
	Bin string      // osim-bootd
	Dir string      // scratch folder: config, data_dir, logs
	CPU int         // pin to this CPU; -1: not pinned
	Cap *lab.CPUCap // nil: uncapped
	// Profile, when set, is where osim-bootd writes its CPU profile
	// (--cpu-profile), one file per start.
	Profile string
	// Fetch returns the body of a URL fetched inside the server namespace
	// (osim-dhcpbench re-executes itself there).
	Fetch func(ctx context.Context, ns, url string) (string, error)
}

// bootdMetrics is where osim-bootd serves /metrics inside its namespace.
const bootdMetrics = "127.0.0.1:9167"

func (b *Bootd) Name() string { return "osim-bootd" }

func (b *Bootd) Note() string {
	return "`osim-bootd serve`, `dhcp: {mode: full}`, one pool, leases in Badger (`data_dir`) and in memory, `boot: {unknown: ignore}`"
}

func (b *Bootd) config() (string, error) {
	for _, d := range []string{"tftp", "files", "data"} {
		if err := os.MkdirAll(filepath.Join(b.Dir, d), 0o755); err != nil {
			return "", err
		}
	}
	// perfdhcp sends plain DHCP (no option 60): full mode gives every
	// client an address whatever the boot backend says of its MAC. Its
	// clients are all unknown: no cap and the same lease as Kea's, so the
	// two are compared on the same work. perfdhcp is a relay to the
	// server (giaddr RelayIP), which full mode serves only when named.
	lease := LeaseTime.String()
	cfg := bootd.Config{
		Address:       ServerIP.String(),
		MetricsListen: bootdMetrics,
		DataDir:       filepath.Join(b.Dir, "data"),
		DHCP: bootd.DHCPSection{Mode: "full", BootListen: "127.0.0.1:4011", Pools: []dhcp.PoolConfig{{
			Network: Network.String(), Start: PoolStart.String(), End: PoolEnd.String(),
			LeaseTime: lease, UnknownLeaseTime: lease, MaxUnknownLeases: "off", AllowedRelays: []string{RelayIP.String()},
		}}},
		TFTP: bootd.TFTPSection{Root: filepath.Join(b.Dir, "tftp"), Listen: "127.0.0.1:69"},
		HTTP: bootd.HTTPSection{Files: filepath.Join(b.Dir, "files"), Listen: "127.0.0.1:8080"},
		Boot: bootd.BootSection{Unknown: "ignore"},
	}
	f := filepath.Join(b.Dir, "serve.yaml")
	return f, cfg.WriteFile(f)
}

func (b *Bootd) Start(ctx context.Context) (*lab.Proc, error) {
	cfg, err := b.config()
	if err != nil {
		return nil, err
	}
	n := 0
	for {
		n++
		if _, err := os.Stat(filepath.Join(b.Dir, fmt.Sprintf("bootd-%d.log", n))); err != nil {
			break
		}
	}
	cmd := []string{b.Bin, "serve", "--config", cfg, "--log-level", "info"}
	if b.Profile != "" {
		cmd = append(cmd, "--cpu-profile", fmt.Sprintf("%s.%d", b.Profile, n))
	}
	p, err := lab.Start(lab.Spec{Name: "osim-bootd", Argv: pinned(cmd, b.CPU), Netns: b.Lab.Server,
		Log: filepath.Join(b.Dir, fmt.Sprintf("bootd-%d.log", n))})
	if err != nil {
		return nil, err
	}
	if err := b.Cap.Add(p.PID); err != nil {
		p.Stop()
		return nil, err
	}
	if err := p.WaitLog(ctx, 60*time.Second, `msg="boot server serving"`); err != nil {
		p.Stop()
		return nil, fmt.Errorf("dhcpbench: osim-bootd: %w", err)
	}
	return p, nil
}

// Leases reads osim_dhcp_leases_active (bound, unexpired leases, counted
// in the store at scrape time).
func (b *Bootd) Leases(ctx context.Context, _ *lab.Proc) (int, error) {
	m, err := b.Metrics(ctx)
	if err != nil {
		return 0, err
	}
	v, ok := m["osim_dhcp_leases_active"]
	if !ok {
		return 0, errors.New("dhcpbench: osim-bootd: no osim_dhcp_leases_active in /metrics")
	}
	return int(v), nil
}

// Metrics scrapes osim-bootd's /metrics: series (with labels) -> value.
func (b *Bootd) Metrics(ctx context.Context) (map[string]float64, error) {
	body, err := b.Fetch(ctx, b.Lab.Server, "http://"+bootdMetrics+"/metrics")
	if err != nil {
		return nil, fmt.Errorf("dhcpbench: osim-bootd metrics: %w", err)
	}
	sm, err := promtext.Parse(strings.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("dhcpbench: osim-bootd metrics: %w", err)
	}
	return sm.Series(), nil
}

// Kea is ISC's kea-dhcp4 with memfile leases (a CSV file, no fsync),
// configured as Debian's package ships it otherwise: single-threaded.
type Kea struct {
	Lab *testlab.Pair
	Bin string // kea-dhcp4
	Dir string
	CPU int
	Cap *lab.CPUCap // nil: uncapped
}

func (k *Kea) Name() string { return "Kea " + keaVersion(k.Bin) }

func (k *Kea) Note() string {
	return "`kea-dhcp4`, memfile leases (`persist: true`, LFC off), UDP sockets, one subnet and pool, multi-threading off (2.2's default)"
}

func keaVersion(bin string) string {
	out, err := exec.Command(bin, "-v").Output()
	if err != nil {
		return "kea-dhcp4"
	}
	return "kea-dhcp4 " + strings.TrimSpace(string(out))
}

func (k *Kea) sock() string { return filepath.Join(k.Dir, "kea.sock") }

func (k *Kea) config() (string, error) {
	if err := os.MkdirAll(k.Dir, 0o755); err != nil {
		return "", err
	}
	lt := int(LeaseTime.Seconds())
	cfg := map[string]any{"Dhcp4": map[string]any{
		"interfaces-config": map[string]any{"interfaces": []string{k.Lab.ServerIf}, "dhcp-socket-type": "udp"},
		"lease-database": map[string]any{"type": "memfile", "persist": true, "lfc-interval": 0,
			"name": filepath.Join(k.Dir, "leases4.csv")},
		"control-socket": map[string]any{"socket-type": "unix", "socket-name": k.sock()},
		// The same T1 and T2 as osim-bootd: 1/2 and 7/8 of the lease.
		"valid-lifetime": lt, "renew-timer": lt / 2, "rebind-timer": lt * 7 / 8,
		"subnet4": []any{map[string]any{"id": 1, "subnet": Network.String(),
			"pools": []any{map[string]any{"pool": PoolStart.String() + " - " + PoolEnd.String()}}}},
		// WARN: at INFO Kea logs every lease it allocates, osim-bootd
		// logs no packet at info.
		"loggers": []any{map[string]any{"name": "kea-dhcp4", "severity": "WARN",
			"output_options": []any{map[string]any{"output": "stdout"}}}},
	}}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return "", err
	}
	f := filepath.Join(k.Dir, "kea-dhcp4.json")
	return f, os.WriteFile(f, b, 0o644)
}

func (k *Kea) Start(ctx context.Context) (*lab.Proc, error) {
	cfg, err := k.config()
	if err != nil {
		return nil, err
	}
	n := 0
	for {
		n++
		if _, err := os.Stat(filepath.Join(k.Dir, fmt.Sprintf("kea-%d.log", n))); err != nil {
			break
		}
	}
	os.Remove(k.sock())

	env := []string{"KEA_PIDFILE_DIR=" + k.Dir, "KEA_LOCKFILE_DIR=" + k.Dir}
	p, err := lab.Start(lab.Spec{Name: "kea-dhcp4", Argv: pinned([]string{k.Bin, "-c", cfg}, k.CPU), Env: env, Netns: k.Lab.Server,
		Log: filepath.Join(k.Dir, fmt.Sprintf("kea-%d.log", n))})
	if err != nil {
		return nil, err
	}
	if err := k.Cap.Add(p.PID); err != nil {
		p.Stop()
		return nil, err
	}
	// Ready when the control socket answers: Kea opens it with the DHCP
	// sockets, after loading the lease file.
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := k.Leases(ctx, p)
		if err == nil {
			return p, nil
		}
		if p.Exited() || time.Now().After(deadline) || ctx.Err() != nil {
			p.Stop()
			return nil, fmt.Errorf("dhcpbench: kea-dhcp4 not ready: %w; log: %s", err, p.Tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Leases asks Kea's control socket for subnet[1].assigned-addresses, which
// Kea recounts from the lease file when it starts.
func (k *Kea) Leases(ctx context.Context, _ *lab.Proc) (int, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", k.sock())
	if err != nil {
		return 0, fmt.Errorf("dhcpbench: kea control socket: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := `{"command": "statistic-get", "arguments": {"name": "subnet[1].assigned-addresses"}}`
	if _, err := c.Write([]byte(req)); err != nil {
		return 0, fmt.Errorf("dhcpbench: kea control socket: %w", err)
	}
	var resp struct {
		Result    int                `json:"result"`
		Text      string             `json:"text"`
		Arguments map[string][][]any `json:"arguments"`
	}
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return 0, fmt.Errorf("dhcpbench: kea statistic-get: %w", err)
	}
	s := resp.Arguments["subnet[1].assigned-addresses"]
	if resp.Result != 0 || len(s) == 0 || len(s[0]) == 0 {
		return 0, fmt.Errorf("dhcpbench: kea statistic-get: result %d %s", resp.Result, resp.Text)
	}
	v, ok := s[0][0].(float64)
	if !ok {
		return 0, fmt.Errorf("dhcpbench: kea statistic-get: %v", s[0])
	}
	return int(v), nil
}
