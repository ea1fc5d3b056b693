package dhcp

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestFileBackendMachineAddressBecomesReservation(t *testing.T) {
	fb, err := NewFileBackend(exampleFile())
	if err != nil {
		t.Fatal(err)
	}
	d, err := fb.Lookup(context.Background(), macA, ArchBIOS)
	if err != nil || d.Address != ip("10.0.0.21") {
		t.Fatalf("reservation of %s: %v, %v; want 10.0.0.21", macA, d.Address, err)
	}
	d, _ = fb.Lookup(context.Background(), macB, ArchBIOS)
	if d.Address.IsValid() {
		t.Fatalf("%s has no address in the file, got %s", macB, d.Address)
	}
}

func TestFileBackendRejectsBadAddresses(t *testing.T) {
	cases := []struct {
		name     string
		machines []FileMachine
		want     string
	}{
		{"not an address", []FileMachine{{MAC: "52:54:00:00:00:01", Address: "10.0.0.300"}},
			`machines[0] (52:54:00:00:00:01): address "10.0.0.300" is not an IPv4 address`},
		{"IPv6", []FileMachine{{MAC: "52:54:00:00:00:01", Address: "fe80::1"}}, `address "fe80::1" is not an IPv4 address`},
		{"reserved twice", []FileMachine{{MAC: "52:54:00:00:00:01", Address: "10.0.0.5"}, {MAC: "52:54:00:00:00:02", Address: "10.0.0.5"}},
			`machines[1] (52:54:00:00:00:02): address 10.0.0.5 already reserved for machines[0]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := siteFile()
			cfg.Machines = c.machines
			_, err := NewFileBackend(cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestNewPoolsReadsConfigAndNamesEachMistake(t *testing.T) {
	good := PoolConfig{Network: "10.0.0.0/24", Start: "10.0.0.100", End: "10.0.0.199", Router: "10.0.0.1",
		DNS: []string{"10.0.0.53"}, Domain: "lab.example", LeaseTime: "30m"}
	pools, err := NewPools([]PoolConfig{good, {Network: "10.1.0.0/24", Start: "10.1.0.10", End: "10.1.0.10"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := pools[0]; p.LeaseTime != 30*time.Minute || p.Router != ip("10.0.0.1") || len(p.DNS) != 1 || !p.InRange(ip("10.0.0.150")) || p.InRange(ip("10.0.0.200")) {
		t.Fatalf("pool 0: %+v", p)
	}
	if pools[1].LeaseTime != DefaultLeaseTime || pools[1].Router.IsValid() {
		t.Fatalf("pool 1 defaults: %+v", pools[1])
	}
	cases := []struct {
		name string
		edit func(*PoolConfig)
		want string
	}{
		{"bad network", func(c *PoolConfig) { c.Network = "10.0.0.0" }, `pools[0] (10.0.0.0): network "10.0.0.0" is not an IPv4 CIDR`},
		{"start outside network", func(c *PoolConfig) { c.Start = "10.9.0.1" }, "start 10.9.0.1 is outside the network"},
		{"end before start", func(c *PoolConfig) { c.End = "10.0.0.50" }, "end 10.0.0.50 is before start 10.0.0.100"},
		{"bad router", func(c *PoolConfig) { c.Router = "gw" }, `router "gw" is not an IPv4 address`},
		{"bad dns", func(c *PoolConfig) { c.DNS = []string{"dns1"} }, `dns "dns1" is not an IPv4 address`},
		{"bad lease time", func(c *PoolConfig) { c.LeaseTime = "10s" }, `lease_time "10s" is not a duration of at least 1m`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := good
			c.edit(&cfg)
			_, err := NewPools([]PoolConfig{cfg})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, err := NewPools([]PoolConfig{good, {Network: "10.0.0.128/25", Start: "10.0.0.130", End: "10.0.0.140"}}); err == nil ||
		!strings.Contains(err.Error(), "pools[1] (10.0.0.128/25): overlaps pools[0] (10.0.0.0/24)") {
		t.Fatalf("overlap: %v", err)
	}
}
