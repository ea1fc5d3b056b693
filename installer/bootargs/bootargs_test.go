package bootargs

import (
	"errors"
	"testing"
)

func TestParseReadsOsimKeysAndIgnoresOthers(t *testing.T) {
	a, err := Parse("console=ttyS0 osim.mode=install osim.url=http://10.0.0.1:8080/ osim.order=o1 osim.token=tk osim.mac=52-54-00-AA-BB-CC quiet osim.debug\n")
	if err != nil {
		t.Fatal(err)
	}
	want := Args{Mode: ModeInstall, URL: "http://10.0.0.1:8080", Order: "o1", Token: "tk", MAC: "52:54:00:aa:bb:cc", DiscoverThen: ThenPowerOff, Debug: true}
	if a != want {
		t.Fatalf("got %+v, want %+v", a, want)
	}
}

func TestParseRefusesIncompleteArgs(t *testing.T) {
	for _, line := range []string{
		"", // no url
		"osim.url=ftp://x osim.order=o osim.token=t",
		"osim.url=http://x osim.order=o",       // no token
		"osim.url=http://x osim.mode=discover", // no mac
		"osim.url=http://x osim.mode=dance osim.mac=52:54:00:00:00:01",
		"osim.url=http://x osim.mode=discover osim.mac=zz",
		"osim.url=http://x osim.mode=discover osim.mac=52:54:00:00:00:01 osim.discover_then=reboot",
	} {
		if _, err := Parse(line); !errors.Is(err, ErrArgs) {
			t.Errorf("Parse(%q) = %v, want ErrArgs", line, err)
		}
	}
}
