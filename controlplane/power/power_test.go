package power

import (
	"errors"
	"testing"
)

func TestOpenRefusesIncompleteSpecsAndNamesTheDrivers(t *testing.T) {
	for _, s := range []Spec{
		{},
		{Driver: "redfish"},
		{Driver: "ipmi"},
		{Driver: "ipmi", Address: "bmc-1"},
		{Driver: "ipmi", Address: "bmc-1:0", Username: "u"},
		{Driver: "ipmi", Address: "bmc-1:x", Username: "u"},
		{Driver: "ipmi", Address: "-oProxyCommand", Username: "u"},
		{Driver: "ipmi", Address: "bmc-1", Username: "-E"},
	} {
		if _, err := Open(s); !errors.Is(err, ErrSpec) {
			t.Errorf("%+v: %v, want ErrSpec", s, err)
		}
	}
	d, err := Open(Spec{Driver: "ipmi", Address: "bmc-1.example.net", Username: "admin"})
	if err != nil || d.(*ipmi).port != 623 || d.(*ipmi).host != "bmc-1.example.net" {
		t.Fatalf("default port: %+v %v", d, err)
	}
	d, err = Open(Spec{Driver: "ipmi", Address: "[fd00::7]:6230", Username: "admin"})
	if err != nil || d.(*ipmi).port != 6230 || d.(*ipmi).host != "fd00::7" {
		t.Fatalf("IPv6 with a port: %+v %v", d, err)
	}
}

func TestTheManualDriverLeavesItToTheOperator(t *testing.T) {
	d, err := Open(Spec{Driver: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func() error{"on": func() error { return d.On(t.Context()) },
		"off": func() error { return d.Off(t.Context()) }, "cycle": func() error { return d.Cycle(t.Context()) },
		"network boot": func() error { return d.NetworkBootOnce(t.Context()) }} {
		if err := f(); !errors.Is(err, ErrManual) {
			t.Errorf("%s: %v, want ErrManual", name, err)
		}
	}
	if st, err := d.Status(t.Context()); st != Unknown || err != nil {
		t.Errorf("status %s %v", st, err)
	}
}

func TestPowerStatusParsing(t *testing.T) {
	for out, want := range map[string]State{"Chassis Power is on\n": On, "Chassis Power is off": Off,
		"noise\nChassis Power is on\n": On} {
		if got, err := parsePowerStatus(out); got != want || err != nil {
			t.Errorf("%q: %s %v", out, got, err)
		}
	}
	if _, err := parsePowerStatus("Chassis Power is sideways"); err == nil {
		t.Error("an unknown state parsed")
	}
}
