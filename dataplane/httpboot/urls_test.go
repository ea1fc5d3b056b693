package httpboot

import (
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestURLsNameTheRoutesThisServiceServes: the script URL DHCP hands out
// is /ipxe/<mac> of the machine itself, known or not (never a name that
// is not a MAC), and the HTTP boot file is under /files/.
func TestURLsNameTheRoutesThisServiceServes(t *testing.T) {
	f := newFixture(t)
	u := URLs{Base: "http://10.0.0.1:8080/"}
	unknown, _ := net.ParseMAC("52:54:00:00:00:99")
	if got := u.Script(unknown); got != "http://10.0.0.1:8080/ipxe/52:54:00:00:00:99" {
		t.Fatalf("Script = %q", got)
	}
	if got := u.File("efi/snp only.efi"); got != "http://10.0.0.1:8080/files/efi/snp%20only.efi" {
		t.Fatalf("File = %q", got)
	}
	if got := u.File("../x"); got != "" {
		t.Fatalf("File of a name that leaves the root = %q, want none", got)
	}
	known, _ := net.ParseMAC("52:54:00:12:34:56")
	if rec := f.do("GET", strings.TrimPrefix(u.Script(known), "http://10.0.0.1:8080"), nil); rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %q", u.Script(known), rec.Code, rec.Body)
	}
	// An unknown machine's script URL is a route of this service: 404
	// naming the MAC, not the 400 of a malformed one.
	rec := f.do("GET", strings.TrimPrefix(u.Script(unknown), "http://10.0.0.1:8080"), nil)
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "unknown target: 52:54:00:00:00:99") {
		t.Fatalf("GET %s: %d %q", u.Script(unknown), rec.Code, rec.Body)
	}
}
