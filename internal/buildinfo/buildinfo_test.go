package buildinfo

import "testing"

func TestShortAndString(t *testing.T) {
	for _, c := range []struct {
		i            Info
		short, human string
	}{
		{Info{Version: "devel", Commit: "unknown", GoVersion: "go1.26.8"}, "devel+unknown", "devel (commit unknown), go1.26.8"},
		{Info{Version: "v0.0.0-20261207131632-7e41228ce64e+dirty", Commit: "7e41228ce64e", Date: "2026-12-07T13:16:32Z", Modified: true, GoVersion: "go1.26.8"},
			"v0.0.0-20261207131632-7e41228ce64e+dirty",
			"v0.0.0-20261207131632-7e41228ce64e+dirty (commit 7e41228ce64e, 2026-12-07T13:16:32Z, modified), go1.26.8"},
		{Info{Version: "v1.2.0", Commit: "7e41228ce64e", Modified: true, GoVersion: "go1.26.8"}, "v1.2.0+7e41228ce64e-modified", "v1.2.0 (commit 7e41228ce64e, modified), go1.26.8"},
	} {
		if got := c.i.Short(); got != c.short {
			t.Errorf("Short() = %q, want %q", got, c.short)
		}
		if got := c.i.String(); got != c.human {
			t.Errorf("String() = %q, want %q", got, c.human)
		}
	}
	// A test binary carries no VCS stamp: the fallbacks, never empty.
	if i := Get(); i.Version == "" || i.Commit == "" || i.GoVersion == "" {
		t.Errorf("Get() = %+v", i)
	}
}
