package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestProcessBootdWhoseNameIsTakenKeepsServingAndRetries: a second
// osim-bootd registering a name another boot server holds is refused
// (409) and, instead of exiting and taking DHCP and TFTP down, keeps
// answering TFTP and HTTP, logs the refusal, counts it and retries; once
// the operator deletes the stale boot server, it registers.
func TestProcessBootdWhoseNameIsTakenKeepsServingAndRetries(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	ctx := context.Background()
	m := startManager(t, t.TempDir())
	first := newBootd(t, "bootd-dup", "dup", m.url, m.joinToken(t, "dup"))
	first.restart()
	var stale string
	waitFor(t, 20*time.Second, "the first bootd-dup to register", func() (bool, string) {
		l, err := m.admin.ListBootServers(ctx)
		if err != nil || len(l) != 1 {
			return false, fmt.Sprintf("%v %v", l, err)
		}
		stale = l[0].ID
		return true, ""
	})
	first.stop()

	second := newBootd(t, "bootd-dup", "dup", m.url, m.joinToken(t, "dup"))
	second.restart()
	const refused = `osim_agent_register_refused_total{code="409"}`
	waitFor(t, 20*time.Second, "two refused registrations", func() (bool, string) {
		if ok, why := second.checkAlive(); !ok {
			t.Fatal(why)
		}
		n := second.metric(refused)
		return n >= 2, fmt.Sprintf("%s %v", refused, n)
	})
	if got, err := tftpGet(second.tftpPort, "undionly.kpxe"); err != nil || !bytes.Equal(got, nbpBytes) {
		t.Errorf("tftp while the name is taken: %d bytes, %v", len(got), err)
	}
	c := http.Client{Timeout: 3 * time.Second}
	if resp, err := c.Get(second.http + "/ipxe/02:0f:00:00:00:01"); err != nil {
		t.Errorf("http while the name is taken: %v", err)
	} else {
		resp.Body.Close()
	}
	if log := second.log.String(); !strings.Contains(log, "the manager refuses the name") || !strings.Contains(log, "is taken by "+stale) {
		t.Errorf("the refusal is not logged with the manager's reason:\n%s", log)
	}

	if err := m.admin.Do(ctx, http.MethodDelete, "/bootservers/"+stale, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "bootd-dup to register once the name is free", func() (bool, string) {
		if ok, why := second.checkAlive(); !ok {
			t.Fatal(why)
		}
		l, err := m.admin.ListBootServers(ctx)
		if err != nil || len(l) != 1 || l[0].ID == stale {
			return false, fmt.Sprintf("%v %v", l, err)
		}
		return true, ""
	})
}
