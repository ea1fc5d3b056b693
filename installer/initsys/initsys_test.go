package initsys

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadModulesWarnsAndGoesOn(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "modules")
	os.WriteFile(list, []byte("# drivers\nkernel/drivers/net/missing.ko\n\nkernel/fs/also-missing.ko\n"), 0o644)
	var warned []string
	n, err := LoadModules(list, dir, func(m string, err error) { warned = append(warned, m) })
	if err != nil || n != 0 {
		t.Fatalf("loaded %d, %v", n, err)
	}
	if strings.Join(warned, ",") != "kernel/drivers/net/missing.ko,kernel/fs/also-missing.ko" {
		t.Errorf("warned about %v, want both missing modules in order", warned)
	}
	if _, err := LoadModules(filepath.Join(dir, "none"), dir, nil); err == nil {
		t.Error("a missing list is not an error")
	}
}

func TestReleaseIsTheRunningKernels(t *testing.T) {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	if got := Release(); got == "" || got != strings.TrimSpace(string(b)) {
		t.Errorf("Release() = %q, /proc says %q", got, b)
	}
}
