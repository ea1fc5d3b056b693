package debian

import (
	"os/exec"
	"strings"
	"testing"

	"osim/internal/testlab"
)

// TestDebianVersionsSortAsGoVersions: scripts/package.sh turns the
// binaries' Go version into the packages' Debian version, and dpkg orders
// those as Go orders the versions they came from: a pre-release and a
// commit after a tag (pseudo-version) before their release, untagged
// commits by time, a modified checkout after its clean version but before
// the next commit.
func TestDebianVersionsSortAsGoVersions(t *testing.T) {
	testlab.RequireTool(t, "dpkg", "dpkg")
	// Ascending, as Go sorts them (+dirty after its clean version).
	versions := []struct{ goVersion, deb string }{
		{"v0.0.0-20260101000000-ffffffffffff", "0.0.0~git20260101000000.ffffffffffff"},
		{"v0.0.0-20260101000000-ffffffffffff+dirty", "0.0.0~git20260101000000.ffffffffffff+dirty"},
		{"v0.0.0-20260202000000-000000000000", "0.0.0~git20260202000000.000000000000"},
		{"v0.1.0-rc.1", "0.1.0~rc.1"},
		{"v0.1.0", "0.1.0"},
		{"v1.2.3-rc.1", "1.2.3~rc.1"},
		{"v1.2.3-rc.1+dirty", "1.2.3~rc.1+dirty"},
		{"v1.2.3-rc.1.0.20260303000000-abcdefabcdef", "1.2.3~rc.1.0.20260303000000.abcdefabcdef"},
		{"v1.2.3-rc.2", "1.2.3~rc.2"},
		{"v1.2.3", "1.2.3"},
		{"v1.2.3+dirty", "1.2.3+dirty"},
		{"v1.2.4-0.20260404000000-abcdefabcdef", "1.2.4~0.20260404000000.abcdefabcdef"},
		{"v1.2.4-0.20260404000000-abcdefabcdef+dirty", "1.2.4~0.20260404000000.abcdefabcdef+dirty"},
		{"v1.2.4-0.20260505000000-012345012345", "1.2.4~0.20260505000000.012345012345"},
		{"v1.2.4", "1.2.4"},
		{"v1.10.0-beta-2", "1.10.0~beta.2"},
		{"v1.10.0", "1.10.0"},
	}
	for i, v := range versions {
		out, err := exec.Command("bash", "../../scripts/package.sh", "--deb-version", v.goVersion).CombinedOutput()
		got := strings.TrimSpace(string(out))
		if err != nil || got != v.deb {
			t.Errorf("package.sh --deb-version %s = %q (%v), want %q", v.goVersion, got, err, v.deb)
			continue
		}
		if i == 0 {
			continue
		}
		prev := versions[i-1]
		if err := exec.Command("dpkg", "--compare-versions", prev.deb, "lt", v.deb).Run(); err != nil {
			t.Errorf("dpkg sorts %s (%s) not before %s (%s)", prev.deb, prev.goVersion, v.deb, v.goVersion)
		}
	}
}
