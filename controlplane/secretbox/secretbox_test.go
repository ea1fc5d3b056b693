package secretbox

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpensOnlyWithTheSameKeyAndLabel(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	if err := GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	if err := GenerateKeyFile(path); err == nil {
		t.Fatal("a key file was overwritten")
	}
	k, err := LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := k.Seal([]byte("bmc-password"), "rack1-bmc")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("bmc-password")) {
		t.Fatal("the password is in the sealed bytes")
	}
	if p, err := k.Open(sealed, "rack1-bmc"); err != nil || string(p) != "bmc-password" {
		t.Fatalf("open: %q %v", p, err)
	}
	if _, err := k.Open(sealed, "rack2-bmc"); !errors.Is(err, ErrOpen) {
		t.Errorf("another label opened: %v", err)
	}
	other := filepath.Join(dir, "other")
	GenerateKeyFile(other)
	k2, _ := LoadKey(other)
	if _, err := k2.Open(sealed, "rack1-bmc"); !errors.Is(err, ErrOpen) {
		t.Errorf("another key opened: %v", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := k.Open(sealed, "rack1-bmc"); !errors.Is(err, ErrOpen) {
		t.Errorf("damaged bytes opened: %v", err)
	}
	os.Chmod(path, 0o644)
	if _, err := LoadKey(path); err == nil {
		t.Error("a world-readable key file loaded")
	}
}
