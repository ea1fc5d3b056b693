package blobs

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"osim/bench/internal/lab"
	"osim/internal/bootd"
)

// server is one HTTP server under measure: where the blob is and what it
// has spent so far.
type server struct {
	name string
	url  string // the blob's URL
	proc *lab.Proc
}

// freePort asks the kernel for a loopback port that is free now (network
// "tcp" or "udp").
func freePort(network string) (int, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func ports(networks ...string) ([]int, error) {
	out := make([]int, len(networks))
	for i, n := range networks {
		p, err := freePort(n)
		if err != nil {
			return nil, fmt.Errorf("blobs: free %s port: %w", n, err)
		}
		out[i] = p
	}
	return out, nil
}

// startBootd runs the real osim-bootd with http.files = filesDir, every
// socket on loopback, logging at warn (nginx runs without an access log).
func startBootd(ctx context.Context, bin, dir, filesDir, blob, profile string) (*server, error) {
	p, err := ports("udp", "udp", "udp", "tcp", "tcp")
	if err != nil {
		return nil, err
	}
	tftpRoot := filepath.Join(dir, "tftp")
	if err := os.MkdirAll(tftpRoot, 0o755); err != nil {
		return nil, err
	}
	addr := func(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
	cfg := bootd.Config{
		Address:       "127.0.0.1",
		MetricsListen: addr(p[4]),
		LogLevel:      "warn",
		DHCP:          bootd.DHCPSection{Mode: "proxy", Listen: addr(p[0]), BootListen: addr(p[1])},
		TFTP:          bootd.TFTPSection{Listen: addr(p[2]), Root: tftpRoot},
		HTTP:          bootd.HTTPSection{Listen: addr(p[3]), Files: filesDir},
		Boot:          bootd.BootSection{Arches: []string{"bios"}, BootFiles: map[string]string{"bios": "undionly.kpxe"}, Unknown: "ignore"},
	}
	cfgPath := filepath.Join(dir, "bootd.yaml")
	if err := cfg.WriteFile(cfgPath); err != nil {
		return nil, err
	}
	argv := []string{bin, "serve", "--config", cfgPath}
	if profile != "" {
		argv = append(argv, "--cpu-profile", profile)
	}
	proc, err := lab.Start(lab.Spec{Name: "osim-bootd", Argv: argv,
		Log: filepath.Join(dir, "bootd.log"), Meter: true})
	if err != nil {
		return nil, err
	}
	s := &server{name: "osim-bootd", url: "http://" + addr(p[3]) + "/files/" + blob, proc: proc}
	return s, waitServing(ctx, s, 10*time.Second)
}

// nginxConf is a minimal nginx.conf: two workers (one per core here),
// sendfile, no access log, everything under the run's folder.
const nginxConf = `daemon off;
master_process on;
worker_processes 2;
worker_rlimit_nofile 8192;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 100000;
	default_type application/octet-stream;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen 127.0.0.1:%[2]d;
		root %[3]s;
		location /files/ { alias %[3]s/; }
	}
}
`

// startNginx runs Debian's nginx as a child (daemon off) with its own
// prefix, pid and logs in dir, serving filesDir under /files/.
func startNginx(ctx context.Context, bin, dir, filesDir, blob string) (*server, error) {
	p, err := ports("tcp")
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, dir, p[0], filesDir), 0o644); err != nil {
		return nil, err
	}
	proc, err := lab.Start(lab.Spec{Name: "nginx", Argv: []string{bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log")},
		Log: filepath.Join(dir, "nginx.out"), Meter: true})
	if err != nil {
		return nil, err
	}
	s := &server{name: "nginx", url: fmt.Sprintf("http://127.0.0.1:%d/files/%s", p[0], blob), proc: proc}
	return s, waitServing(ctx, s, 10*time.Second)
}

// waitServing polls a HEAD of the blob until it answers 200.
func waitServing(ctx context.Context, s *server, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodHead, s.url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HEAD %s: %s", s.url, resp.Status)
		}
		if s.proc.Exited() {
			return fmt.Errorf("blobs: %s exited: %s", s.name, s.proc.ExitReason())
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("blobs: %s not serving: %v; log: %s", s.name, err, s.proc.Tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
