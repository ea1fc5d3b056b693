package manpage

import (
	"bytes"
	"os/exec"
	"testing"

	"osim/internal/testlab"
)

// Check formats page with groff (Debian's groff-base) and fails t on any
// warning; it answers the page as text.
func Check(t testing.TB, page []byte) string {
	t.Helper()
	if _, err := exec.LookPath("groff"); err != nil {
		testlab.Unavailable(t, "needs groff (apt-get install groff-base)")
	}
	cmd := exec.Command("groff", "-man", "-Tutf8", "-P-cbou", "-ww", "-rLL=200n") // plain text: no bold by overstriking
	cmd.Stdin = bytes.NewReader(page)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil || errb.Len() > 0 {
		t.Fatalf("groff: %v %s\n%s", err, errb.String(), page)
	}
	return out.String()
}
