package console

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"osim/controlplane/api"
)

// The stream says "change" when the MDB's revision moves (a target
// added) and when events arrive (a DHCP event changes no record), at most
// once per LiveInterval, and "gone" once the session's token is revoked.
func TestTheLiveStreamFollowsRevisionsAndEventsAndEndsWithTheToken(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(api.RoleViewer)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.ts.URL+"/ui/stream", nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// next returns the next message's event name and data.
	next := func(what string) (string, string) {
		t.Helper()
		var ev, data string
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("%s: the stream ended", what)
				}
				switch {
				case strings.HasPrefix(l, "event: "):
					ev = strings.TrimPrefix(l, "event: ")
				case strings.HasPrefix(l, "data: "):
					data = strings.TrimPrefix(l, "data: ")
				case l == "" && ev != "":
					return ev, data
				}
			case <-ctx.Done():
				t.Fatalf("%s: no message", what)
			}
		}
	}
	time.Sleep(100 * time.Millisecond) // the stream's long-polls are in place
	seedTargets(t, e, 1)
	if ev, data := next("a target added"); ev != "change" || !strings.Contains(data, "revision") {
		t.Errorf("after a target was added: %s %q", ev, data)
	}
	if _, err := e.store.AppendEvent(ctx, api.Event{Type: api.EventDHCPSeen, MAC: "52:54:00:00:00:01"}); err != nil {
		t.Fatal(err)
	}
	if ev, data := next("an event"); ev != "change" || !strings.Contains(data, api.EventDHCPSeen) {
		t.Errorf("after a DHCP event: %s %q", ev, data)
	}
	if err := e.admin.DeleteToken(ctx, e.ids[api.RoleViewer]); err != nil {
		t.Fatal(err)
	}
	if ev, data := next("the token revoked"); ev != "gone" || !strings.HasPrefix(data, "401") {
		t.Errorf("after the token was revoked: %s %q", ev, data)
	}
}
