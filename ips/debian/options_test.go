package debian

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestOptionsDefaultsComeFromTheAptConfiguration(t *testing.T) {
	apt := writeApt(t, map[string]string{"sources.list": "deb http://archive.example.test/debian bookworm main\n"})
	o, err := Options{Out: t.TempDir(), AptDir: apt}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.Suite != DefaultSuite || o.Kernel != DefaultKernel || o.Locale != DefaultLocale || o.Timezone != DefaultTimezone || o.Hostname != DefaultHostname {
		t.Errorf("defaults not filled: %+v", o)
	}
	if o.Mirror != "http://archive.example.test/debian" {
		t.Errorf("mirror %q, want the apt configuration's", o.Mirror)
	}
	inc := o.include()
	for _, p := range []string{DefaultKernel, "cloud-init", "openssh-server", "systemd-sysv", "initramfs-tools"} {
		if !strings.Contains(","+strings.Join(inc, ",")+",", ","+p+",") {
			t.Errorf("package set %v lacks %s", inc, p)
		}
	}
}

func TestOptionsRefuseBadValuesNamingTheOption(t *testing.T) {
	apt := writeApt(t, map[string]string{"sources.list": "deb http://archive.example.test/debian bookworm main\n"})
	cases := []struct {
		name string
		o    Options
		want string
	}{
		{"no out", Options{}, "Out"},
		{"suite", Options{Suite: "Book Worm"}, "suite"},
		{"kernel", Options{Kernel: "linux image"}, "kernel"},
		{"package", Options{Packages: []string{"vim", "-oAPT::x"}}, "package"},
		{"package uppercase", Options{Packages: []string{"Vim"}}, "package"},
		{"locale", Options{Locale: "en_US.UTF-8; rm"}, "locale"},
		{"timezone escapes", Options{Timezone: "../../etc/shadow"}, "timezone"},
		{"timezone dots", Options{Timezone: "Europe/../.."}, "timezone"},
		{"hostname", Options{Hostname: "bad_host"}, "hostname"},
		{"hostname dash", Options{Hostname: "-x.example"}, "hostname"},
		{"mirror scheme", Options{Mirror: "ftp://a.example.test/debian"}, "mirror"},
		{"mirror credentials", Options{Mirror: "http://u:secret@a.example.test/debian"}, "credentials"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := c.o
			if c.name != "no out" {
				o.Out = t.TempDir()
			}
			o.AptDir = apt
			_, err := o.withDefaults()
			if !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want ErrOptions naming %q", err, c.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error prints the mirror's password: %v", err)
			}
		})
	}
}

func TestBuildRefusesBadOptionsBeforeRunningAnything(t *testing.T) {
	_, err := Build(context.Background(), Options{Out: t.TempDir(), Suite: "no such suite"})
	if !errors.Is(err, ErrOptions) {
		t.Fatalf("err = %v, want ErrOptions", err)
	}
}

func TestRootSizeHoldsTheTreeWithRoom(t *testing.T) {
	for _, used := range []int64{0, 1, 900 << 20, 5 << 30} {
		got := RootSize(used)
		if got < used+used/5+200<<20 || got%(64<<20) != 0 {
			t.Errorf("RootSize(%d) = %d: not a 64 MiB multiple holding the tree with a fifth and 200 MiB to spare", used, got)
		}
	}
}

func TestCacheFileDependsOnTheInputs(t *testing.T) {
	base := Options{Cache: "/c", Suite: "bookworm", Kernel: DefaultKernel, Mirror: "http://a.example.test/d"}
	seen := map[string]string{base.cacheFile(): "base"}
	for name, o := range map[string]Options{
		"suite":   {Cache: "/c", Suite: "trixie", Kernel: DefaultKernel, Mirror: base.Mirror},
		"mirror":  {Cache: "/c", Suite: "bookworm", Kernel: DefaultKernel, Mirror: "http://b.example.test/d"},
		"package": {Cache: "/c", Suite: "bookworm", Kernel: DefaultKernel, Mirror: base.Mirror, Packages: []string{"vim"}},
	} {
		f := o.cacheFile()
		if prev, ok := seen[f]; ok {
			t.Errorf("%s: same cache file as %s: %s", name, prev, f)
		}
		seen[f] = name
	}
	same := base
	same.Packages = []string{"cloud-init"} // already in the set
	if same.cacheFile() != base.cacheFile() {
		t.Errorf("a package already in the set changes the cache file")
	}
}
