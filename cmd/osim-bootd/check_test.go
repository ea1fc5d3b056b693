package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"osim/internal/bootd"
)

// runCheck runs "bin serve --check" on cfg written to dir; exit code and
// stderr.
func runCheck(t *testing.T, bin, dir, cfg string) (int, string) {
	t.Helper()
	p := filepath.Join(dir, "check.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return run(t, bin, "serve", "--check", "--config", p)
}

func TestCheckReportsEverythingServeWouldRefuseAtOnceEachByItsKey(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBootd(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "tftp"), 0o755)
	os.MkdirAll(filepath.Join(dir, "files"), 0o755)
	os.WriteFile(filepath.Join(dir, "tftp", "undionly.kpxe"), []byte("nbp"), 0o644)
	// 192.0.2.0/24 is TEST-NET-1: on no host's interface.
	cfg := fmt.Sprintf(`address: 192.0.2.77
metrics_listen: 127.0.0.1:99999
log_level: chatty
dhcp: {listen: 127.0.0.1:1067, boot_listen: 127.0.0.1:14011}
tftp: {root: %[1]s/tftp, listen: 127.0.0.1:1069, max_blksize: -1, max_window: -5, max_transfers: -3, max_unacked: -2, first_ack_timeout: 1ms}
http: {files: %[1]s/files, listen: 192.0.2.78:8080}
boot: {boot_files: {bios: undionly.kpxe, efi-x64: snponly.efi}}
images: {deb: {kernel: debian/vmlinuz, initrds: [debian/initrd.gz]}}
targets: [{mac: "52:54:00:00:00:01", image: deb, order: o-1, token: tok1}]
`, dir)
	code, out := runCheck(t, bin, dir, cfg)
	if code != 2 {
		t.Fatalf("exit %d, want 2\n%s", code, out)
	}
	for _, want := range []string{
		"config has 12 mistake(s)",
		`metrics_listen: "127.0.0.1:99999" is not [IPv4]:port`,
		`log_level: "chatty"`,
		"address: 192.0.2.77 is not an address of this host",
		"http.listen: 192.0.2.78 is not an address of this host",
		"tftp.max_blksize: -1:",
		"tftp.max_window: -5:",
		"tftp.max_transfers: -3:",
		"tftp.max_unacked: -2:",
		"tftp.first_ack_timeout: 1ms:",
		`boot.boot_files.efi-x64: "snponly.efi" is not a file under tftp.root`,
		`images.deb.kernel: "debian/vmlinuz" is not a file under http.files`,
		`images.deb.initrds[0]: "debian/initrd.gz" is not a file under http.files`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--check output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "bios") {
		t.Errorf("the bios boot file is there, yet reported:\n%s", out)
	}
}

func TestCheckPassesWhatServeRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBootd(t)
	dir := t.TempDir()
	for _, f := range []string{"tftp/undionly.kpxe", "tftp/snponly.efi", "files/debian/vmlinuz", "files/debian/initrd.gz"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
		os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644)
	}
	cfg := fmt.Sprintf(`address: 127.0.0.1
metrics_listen: 127.0.0.1:19167
dhcp: {listen: 127.0.0.1:1067, boot_listen: 127.0.0.1:14011}
tftp: {root: %[1]s/tftp, listen: 127.0.0.1:1069, max_blksize: 1468, max_unacked: 512, first_ack_timeout: 3s}
http: {files: %[1]s/files, listen: 127.0.0.1:18080}
images: {deb: {kernel: debian/vmlinuz, initrds: [debian/initrd.gz]}}
targets: [{mac: "52:54:00:00:00:01", image: deb, order: o-1, token: tok1}]
`, dir)
	if code, out := runCheck(t, bin, dir, cfg); code != 0 {
		t.Fatalf("exit %d, want 0\n%s", code, out)
	}
	// Without the efi-x64 NBP --check fails, while serve would start
	// and log it (the other arches still boot).
	os.Remove(filepath.Join(dir, "tftp", "snponly.efi"))
	if code, out := runCheck(t, bin, dir, cfg); code != 2 || !strings.Contains(out, "boot.boot_files.efi-x64") {
		t.Fatalf("exit %d, want 2 naming boot.boot_files.efi-x64\n%s", code, out)
	}
	c, err := bootd.LoadConfig(filepath.Join(dir, "check.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bootd.Check(c, false); err != nil {
		t.Fatalf("serve's checks refuse a missing NBP: %v", err)
	}
}
