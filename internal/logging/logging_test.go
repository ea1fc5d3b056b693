package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNewAcceptsTheFourLevelsAndNamesABadOne(t *testing.T) {
	for _, l := range []string{"debug", "info", "warn", "error", "INFO"} {
		if _, err := New(l, ""); err != nil {
			t.Errorf("New(%q): %v", l, err)
		}
	}
	if _, err := New("loud", "text"); err == nil || err.Error() != `--log-level "loud": want debug, info, warn or error` {
		t.Errorf("New(loud): %v", err)
	}
	if _, err := New("info", "xml"); err == nil || err.Error() != `--log-format "xml": want text or json` {
		t.Errorf("New(info, xml): %v", err)
	}
}

// One line per event with the same keys in both formats; JSON lines
// parse one by one.
func TestFormatsCarryTheSameKeys(t *testing.T) {
	var text, js bytes.Buffer
	for _, c := range []struct {
		buf    *bytes.Buffer
		format string
	}{{&text, "text"}, {&js, "json"}} {
		l, _, err := newTo(c.buf, "info", c.format)
		if err != nil {
			t.Fatal(err)
		}
		l.Debug("hidden")
		l.Info("order done", "order", "o-1", "target", "t-1")
		l.Warn("slow", "ms", 12)
	}
	if n := strings.Count(text.String(), "\n"); n != 2 || !strings.Contains(text.String(), `msg="order done" order=o-1 target=t-1`) {
		t.Errorf("text:\n%s", text.String())
	}
	lines := strings.Split(strings.TrimSpace(js.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("json: %d lines:\n%s", len(lines), js.String())
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &ev); err != nil {
		t.Fatalf("json line %q: %v", lines[0], err)
	}
	for k, want := range map[string]any{"level": "INFO", "msg": "order done", "order": "o-1", "target": "t-1"} {
		if ev[k] != want {
			t.Errorf("json %s = %v, want %v", k, ev[k], want)
		}
	}
	if _, ok := ev["time"]; !ok {
		t.Error("json line has no time")
	}
}
