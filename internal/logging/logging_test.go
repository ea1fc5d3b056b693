package logging

import "testing"

func TestNewAcceptsTheFourLevelsAndNamesABadOne(t *testing.T) {
	for _, l := range []string{"debug", "info", "warn", "error", "INFO"} {
		if _, err := New(l); err != nil {
			t.Errorf("New(%q): %v", l, err)
		}
	}
	if _, err := New("loud"); err == nil || err.Error() != `--log-level "loud": want debug, info, warn or error` {
		t.Errorf("New(loud): %v", err)
	}
}
