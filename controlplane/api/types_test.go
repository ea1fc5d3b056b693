package api

import "testing"

func TestTargetSpecValidateNamesTheField(t *testing.T) {
	good := TargetSpec{Hostname: "node-1.rack1", MACs: []string{"52-54-00-AA-BB-01"}, Site: "fra1"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	if good.MACs[0] != "52:54:00:aa:bb:01" || good.Arch != "bios" {
		t.Fatalf("not canonicalised: %+v", good)
	}
	bad := []struct {
		spec TargetSpec
		want string
	}{
		{TargetSpec{Hostname: "-x", MACs: []string{"52:54:00:aa:bb:01"}, Site: "s"}, `hostname: "-x" is not a valid host name`},
		{TargetSpec{Hostname: "x", Site: "s"}, `macs: at least one MAC address is required`},
		{TargetSpec{Hostname: "x", MACs: []string{"zz"}, Site: "s"}, `macs[0]: "zz" is not a MAC address`},
		{TargetSpec{Hostname: "x", MACs: []string{"52:54:00:aa:bb:01", "52:54:00:AA:BB:01"}, Site: "s"}, `macs[1]: 52:54:00:aa:bb:01 is macs[0] again`},
		{TargetSpec{Hostname: "x", MACs: []string{"52:54:00:aa:bb:01"}, Site: "s", Arch: "sparc"}, `arch: "sparc" is not one of bios, efi-x64, efi-ia32, efi-arm64`},
		{TargetSpec{Hostname: "x", MACs: []string{"52:54:00:aa:bb:01"}, Site: ""}, `site: is required: the site whose boot servers serve the target`},
		{TargetSpec{Hostname: "x", MACs: []string{"52:54:00:aa:bb:01"}, Site: "a b"}, `site: "a b" is not a valid site name`},
		{TargetSpec{MACs: []string{"52:54:00:aa:bb:01"}, Site: "s"}, `hostname: is required`},
		{TargetSpec{Hostname: "x", MACs: []string{"52:54:00:aa:bb:01"}, Site: "s", Address: "::1"}, `address: "::1" is not an IPv4 address`},
		{TargetSpec{Hostname: "x", MACs: []string{"52:54:00:aa:bb:01"}, Site: "s", Labels: map[string]string{"a b": "c"}}, `labels: key "a b" is not valid (1-63 of A-Z a-z 0-9 . _ -)`},
	}
	for _, b := range bad {
		err := b.spec.Validate()
		if err == nil || err.Error() != b.want {
			t.Errorf("Validate(%+v) = %v, want %q", b.spec, err, b.want)
		}
	}
}
