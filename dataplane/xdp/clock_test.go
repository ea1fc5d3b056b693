package xdp

import (
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"
)

func TestConfigHZ(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "config")
	cfg := "# CONFIG_HZ_100 is not set\nCONFIG_HZ_250=y\nCONFIG_HZ=250\nCONFIG_SCHED_HRTICK=y\n"
	if err := os.WriteFile(plain, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	gz := filepath.Join(dir, "config.gz")
	f, err := os.Create(gz)
	if err != nil {
		t.Fatal(err)
	}
	z := gzip.NewWriter(f)
	z.Write([]byte("CONFIG_HZ=1000\n"))
	z.Close()
	f.Close()
	for _, c := range []struct {
		path string
		hz   int
	}{{plain, 250}, {gz, 1000}, {filepath.Join(dir, "none"), 0}} {
		if hz := configHZ(c.path); hz != c.hz {
			t.Errorf("configHZ(%s) = %d, want %d", filepath.Base(c.path), hz, c.hz)
		}
	}
	if j := jiffyNanos(); j != 0 && 1_000_000_000%j != 0 {
		t.Errorf("jiffyNanos() = %d: not a whole tick", j)
	}
	t.Logf("this kernel: %d ns per jiffy", jiffyNanos())
}
