package peers

import (
	"context"
	"fmt"
	"os"
	"strconv"
)

// Names of the peers, as selected with -servers.
const (
	Bootd      = "osim-bootd"
	HPA        = "tftpd-hpa"
	Atftpd     = "atftpd"
	Dnsmasq    = "dnsmasq"
	DnsmasqMax = "dnsmasq-max"
	Ceiling    = "ceiling"
	CeilingGSO = "ceiling-gso"
)

// HPABinary and DnsmasqBinary are where Debian installs them.
const (
	HPABinary     = "/usr/sbin/in.tftpd"
	DnsmasqBinary = "/usr/sbin/dnsmasq"
)

// All lists every peer in the order the bench runs them.
func All() []Peer {
	return []Peer{
		{Name: Bootd, Note: "--max-blksize 65464 --max-window 64 --max-transfers 20000 --max-per-client 20000, other flags default", start: startBootd},
		{Name: HPA, Note: "in.tftpd -L, forks a process per transfer", start: startHPA},
		{Name: Atftpd, Note: "atftpd 0.8.0 --daemon --no-fork, a thread per transfer, --maxthread clients+100", start: startAtftpd},
		{Name: Dnsmasq, Note: "dnsmasq defaults (--tftp-max 50), own netns, port 69", start: startDnsmasq(false)},
		{Name: DnsmasqMax, Note: "dnsmasq --tftp-max raised to the clients, own netns, port 69", start: startDnsmasq(true)},
		{Name: Ceiling, Note: "bare Go UDP sender, a window per sendmmsg: the machine's ceiling, not a server", start: startCeiling(false)},
		{Name: CeilingGSO, Note: "the same sender with UDP GSO (UDP_SEGMENT) instead of sendmmsg", start: startCeiling(true)},
	}
}

func startBootd(ctx context.Context, env Env) (*Running, error) {
	if err := need(env.Bootd); err != nil {
		return nil, err
	}
	// Caps raised so that they do not limit the bench.
	argv := []string{env.Bootd, "tftp",
		"--root", env.Root,
		"--listen", loopback(env.Port).String(),
		"--max-blksize", "65464",
		"--max-window", "64",
		"--max-transfers", strconv.Itoa(max(20000, 2*env.MaxClients)),
		// Every bench client comes from 127.0.0.1.
		"--max-per-client", strconv.Itoa(max(20000, 2*env.MaxClients)),
		"--metrics-listen", loopback(env.MetricsPort).String(),
	}
	r, err := launch(Bootd, argv, "", env, loopback(env.Port))
	if err != nil {
		return nil, err
	}
	r.Metrics = fmt.Sprintf("http://%s/metrics", loopback(env.MetricsPort))
	return r, nil
}

func startHPA(ctx context.Context, env Env) (*Running, error) {
	if err := need(HPABinary); err != nil {
		return nil, err
	}
	// -L: foreground; -s: chroot to the root (requests name files relative
	// to it); it runs transfers as nobody, and takes any blksize up to 65464.
	argv := []string{HPABinary, "-L", "-s", env.Root, "-a", loopback(env.Port).String()}
	return launch(HPA, argv, "", env, loopback(env.Port))
}

func startAtftpd(ctx context.Context, env Env) (*Running, error) {
	if err := need(env.Atftpd); err != nil {
		return nil, err
	}
	// atftpd switches to nobody before it opens its log file; a file in the
	// root-only work folder cannot be opened, which keeps it from logging
	// every transfer.
	argv := []string{env.Atftpd, "--daemon", "--no-fork",
		"--port", strconv.Itoa(env.Port),
		"--bind-address", "127.0.0.1",
		"--logfile", env.Work + "/atftpd-denied.log",
		"--maxthread", strconv.Itoa(env.MaxClients + 100),
		env.Root}
	return launch(Atftpd, argv, "", env, loopback(env.Port))
}

func startCeiling(gso bool) func(context.Context, Env) (*Running, error) {
	return func(ctx context.Context, env Env) (*Running, error) {
		name := Ceiling
		args := []string{"ceiling-sender", "-root", env.Root, "-listen", loopback(env.Port).String()}
		if gso {
			name = CeilingGSO
			args = append(args, "-gso")
		}
		return launch(name, append([]string{env.Self}, args...), "", env, loopback(env.Port))
	}
}

// SelfPath is the bench binary's own path, for the ceiling sender.
func SelfPath() string {
	p, err := os.Executable()
	if err != nil {
		return os.Args[0]
	}
	return p
}
